package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/gatehouse-mcp/gatehouse/internal/as"
	"github.com/gatehouse-mcp/gatehouse/internal/config"
)

// TestClientTokenCommands: create prints a token and its id once; revoke
// takes either; an unknown id is an error.
func TestClientTokenCommands(t *testing.T) {
	data := newDevData(t)
	ctx := context.Background()
	run1 := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := run(ctx, append(args, "--data", data), &out)
		return out.String(), err
	}
	out, err := run1("client", "token", "create", "--ttl", "1h", "--single-use")
	if err != nil || !strings.Contains(out, "initial_access_token: ghiat_") || !strings.Contains(out, "single use:") {
		t.Fatalf("token create = %v\n%s", err, out)
	}
	var id, tok string
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "id:"); ok {
			id = strings.TrimSpace(v)
		}
		if v, ok := strings.CutPrefix(line, "initial_access_token:"); ok {
			tok = strings.TrimSpace(v)
		}
	}
	if _, err := run1("client", "token", "revoke", id); err != nil {
		t.Fatalf("revoke by id: %v", err)
	}
	if _, err := run1("client", "token", "revoke", tok); err != nil {
		t.Fatalf("revoke by token (again): %v", err)
	}
	if _, err := run1("client", "token", "revoke", "00ff"); err == nil {
		t.Error("revoking an unknown token succeeded")
	}
	if _, err := run1("client", "token", "create", "--ttl", "-1h"); err == nil {
		t.Error("a negative --ttl was accepted")
	}
}

// TestRegistrationOptions: the config section maps onto the server's
// options, with the dev-only allowance dropped outside dev.
func TestRegistrationOptions(t *testing.T) {
	r := config.DefaultRegistration()
	r.CIMD.AllowHosts = []string{"127.0.0.1"}
	dev := registrationOptions(r, true)
	if dev.Mode != as.RegistrationOpen || !dev.CIMD.Enabled || dev.CIMD.Fetch.AllowHosts == nil || dev.Redirect.NoReverseDomainSchemes ||
		dev.UnusedTTL != 24*time.Hour || dev.CIMD.MinTTL != 5*time.Minute {
		t.Errorf("dev options = %+v", dev)
	}
	prod := registrationOptions(r, false)
	if prod.Mode != as.RegistrationToken || prod.CIMD.Fetch.AllowHosts != nil {
		t.Errorf("serve options = %+v", prod)
	}
	r.MaxClients, r.CIMD.MaxClients, r.CIMD.RateLimit, r.CIMD.HostRateLimit, r.CIMD.FetchRateLimit, r.CIMD.FailureTTL = 1, 2, 3, 4, 5, config.Duration(6*time.Second)
	if o := registrationOptions(r, false); o.MaxClients != 1 || o.CIMD.MaxClients != 2 || o.CIMD.RateLimit != 3 || o.CIMD.HostRateLimit != 4 ||
		o.CIMD.FetchRateLimit != 5 || o.CIMD.FailureTTL != 6*time.Second {
		t.Errorf("limits = %+v, want each config key mapped", o)
	}
	r.CIMD.Mode, r.CIMD.AllowDomains, r.Mode = "off", []string{"x.example"}, "closed"
	if o := registrationOptions(r, false); o.CIMD.Enabled || o.CIMD.AllowDomains != nil || o.Mode != as.RegistrationClosed {
		t.Errorf("closed/off options = %+v", o)
	}
}
