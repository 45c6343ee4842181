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
		r.CIMD.Mode != "allowlist" || r.CIMD.AllowDomains[0] != "claude.ai" || time.Duration(r.CIMD.MaxTTL) != time.Hour {
		t.Errorf("loaded %+v", r)
	}
	if err := os.WriteFile(path, []byte("registration:\n  modes: open\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path, func(string) (string, bool) { return "", false }); err == nil {
		t.Error("an unknown registration key was accepted")
	}
}
