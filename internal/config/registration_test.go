package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRegistrationValidate(t *testing.T) {
	if errs := DefaultRegistration().validate(false); len(errs) != 0 {
		t.Fatalf("defaults are invalid: %v", errs)
	}
	tests := []struct {
		name string
		mod  func(*Registration)
		dev  bool
		want string
	}{
		{"bad mode", func(r *Registration) { r.Mode = "public" }, false, "registration.mode"},
		{"negative window", func(r *Registration) { r.RateWindow = -1 }, false, "rate_window"},
		{"bad scope", func(r *Registration) { r.AllowedScopes = []string{"a b"} }, false, "allowed_scopes"},
		{"bad scheme", func(r *Registration) { r.PrivateUseSchemes = []string{"1app"} }, false, "not a URI scheme"},
		{"forbidden scheme", func(r *Registration) { r.PrivateUseSchemes = []string{"javascript"} }, false, "cannot be a private-use scheme"},
		{"bad cimd mode", func(r *Registration) { r.CIMD.Mode = "closed" }, false, "registration.cimd.mode"},
		{"allowlist empty", func(r *Registration) { r.CIMD.Mode = "allowlist" }, false, "needs allow_domains or allow_urls"},
		{"lists without allowlist", func(r *Registration) { r.CIMD.AllowDomains = []string{"claude.ai"} }, false, "only apply with"},
		{"bad domain", func(r *Registration) { r.CIMD.Mode, r.CIMD.AllowDomains = "allowlist", []string{"https://claude.ai"} }, false, "bare domain"},
		{"bad url", func(r *Registration) { r.CIMD.Mode, r.CIMD.AllowURLs = "allowlist", []string{"https://claude.ai/"} }, false, "must have a path"},
		{"ttl order", func(r *Registration) { r.CIMD.MinTTL, r.CIMD.MaxTTL = Duration(time.Hour), Duration(time.Minute) }, false, "at least min_ttl"},
		{"ttl too long", func(r *Registration) { r.CIMD.MaxTTL = Duration(30 * 24 * time.Hour) }, false, "at most 168h"},
		{"allow_hosts outside dev", func(r *Registration) { r.CIMD.AllowHosts = []string{"127.0.0.1"} }, false, "only accepted by `gatehouse dev`"},
		{"client credentials without scopes", func(r *Registration) { r.AllowClientCredentials = true }, false, "needs registration.client_credentials_scopes"},
		{"client credentials scopes without opt-in", func(r *Registration) { r.ClientCredentialsScopes = []string{"a"} }, false, "only applies with registration.allow_client_credentials"},
		{"bad client credentials scope", func(r *Registration) {
			r.AllowClientCredentials, r.ClientCredentialsScopes = true, []string{"a\x7f"}
		}, false, "client_credentials_scopes"},
		{"negative failure_ttl", func(r *Registration) { r.CIMD.FailureTTL = Duration(-time.Second) }, false, "registration.cimd.failure_ttl (-1s) must be between 1s and 1h"},
		{"zero failure_ttl", func(r *Registration) { r.CIMD.FailureTTL = 0 }, false, "registration.cimd.failure_ttl (0s) must be between 1s and 1h"},
		{"failure_ttl too long", func(r *Registration) { r.CIMD.FailureTTL = Duration(2 * time.Hour) }, false, "registration.cimd.failure_ttl (2h0m0s) must be between"},
		{"zero cimd cap", func(r *Registration) { r.CIMD.MaxClients = 0 }, false, "registration.cimd.max_clients must not be 0: leave it out for the default (10000)"},
		{"zero cimd rate", func(r *Registration) { r.CIMD.RateLimit = 0 }, false, "registration.cimd.rate_limit must not be 0: leave it out for the default (60)"},
		{"zero host rate", func(r *Registration) { r.CIMD.HostRateLimit = 0 }, false, "registration.cimd.host_rate_limit must not be 0"},
		{"zero fetch rate", func(r *Registration) { r.CIMD.FetchRateLimit = 0 }, false, "registration.cimd.fetch_rate_limit must not be 0"},
	}
	for _, tt := range tests {
		r := DefaultRegistration()
		tt.mod(&r)
		err := errors.Join(r.validate(tt.dev)...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: validate = %v, want %q", tt.name, err, tt.want)
		}
	}
	r := DefaultRegistration()
	r.CIMD.AllowHosts = []string{"127.0.0.1"}
	if errs := r.validate(true); len(errs) != 0 {
		t.Errorf("allow_hosts in dev: %v", errs)
	}
	for _, tt := range []struct {
		mode string
		dev  bool
		want string
	}{{"", true, "open"}, {"", false, "token"}, {"closed", true, "closed"}, {"open", false, "open"}} {
		if got := (Registration{Mode: tt.mode}).EffectiveMode(tt.dev); got != tt.want {
			t.Errorf("EffectiveMode(%q, dev=%v) = %s, want %s", tt.mode, tt.dev, got, tt.want)
		}
	}
}

// TestRegistrationLoad: the section reads from YAML with the documented
// names (unknown keys are refused by Load).
func TestRegistrationLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	yaml := `registration:
  mode: open
  rate_limit: 5
  allowed_scopes: [notes:read]
  allow_client_credentials: true
  client_credentials_scopes: [notes:read]
  private_use_schemes: []
  cimd:
    mode: allowlist
    allow_domains: [claude.ai]
    max_ttl: 1h
    failure_ttl: 30s
    max_clients: 500
    host_rate_limit: -1
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	r := c.Registration
	if r.Mode != "open" || r.RateLimit != 5 || len(r.AllowedScopes) != 1 || !r.AllowClientCredentials || len(r.ClientCredentialsScopes) != 1 || r.PrivateUseSchemes == nil || len(r.PrivateUseSchemes) != 0 ||
		r.CIMD.Mode != "allowlist" || r.CIMD.AllowDomains[0] != "claude.ai" || time.Duration(r.CIMD.MaxTTL) != time.Hour ||
		time.Duration(r.CIMD.FailureTTL) != 30*time.Second || r.CIMD.MaxClients != 500 || r.CIMD.HostRateLimit != -1 ||
		r.CIMD.RateLimit != 60 || r.CIMD.FetchRateLimit != 60 || r.MaxClients != 10000 {
		t.Errorf("loaded %+v", r)
	}
	// The environment reaches the new keys too.
	env := map[string]string{"GATEHOUSE_REGISTRATION_CIMD_FETCH_RATE_LIMIT": "10", "GATEHOUSE_REGISTRATION_CIMD_FAILURE_TTL": "2m"}
	c, err = Load(path, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil || c.Registration.CIMD.FetchRateLimit != 10 || time.Duration(c.Registration.CIMD.FailureTTL) != 2*time.Minute {
		t.Errorf("from the environment: %+v, %v", c.Registration.CIMD, err)
	}
	if err := os.WriteFile(path, []byte("registration:\n  modes: open\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path, func(string) (string, bool) { return "", false }); err == nil {
		t.Error("an unknown registration key was accepted")
	}
}
