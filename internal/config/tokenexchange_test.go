package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTokenExchangeLoad: the token_exchange section loads from a file,
// keeps its default lifetime, and Validate names each bad key with its
// line.
func TestTokenExchangeLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	load := func(yaml string) (Config, error) {
		t.Helper()
		if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		return Load(path, func(string) (string, bool) { return "", false })
	}
	c, err := load("token_exchange:\n  clients:\n    - client_id: gw\n      subject_audiences: [https://mcp.example.com/mcp]\n      audiences: [https://api.example.com]\n      scopes: [notes:read]\n")
	if err != nil {
		t.Fatal(err)
	}
	x := c.TokenExchange
	if time.Duration(x.Lifetime) != 5*time.Minute || len(x.Clients) != 1 || x.Clients[0].ClientID != "gw" || x.Clients[0].Audiences[0] != "https://api.example.com" || x.Clients[0].Scopes[0] != "notes:read" {
		t.Errorf("loaded %+v", x)
	}
	if d := Default().TokenExchange; time.Duration(d.Lifetime) != 5*time.Minute || d.Clients != nil {
		t.Errorf("default %+v, want lifetime 5m and no clients", d)
	}
	for _, tt := range []struct{ yaml, key string }{
		{"token_exchange:\n  lifetime: 2h\n", "token_exchange.lifetime"},
		{"token_exchange:\n  clients:\n    - subject_audiences: [https://a.example.com]\n      audiences: [https://b.example.com]\n", "token_exchange.clients[0].client_id"},
		{"token_exchange:\n  clients:\n    - client_id: gw\n      audiences: [https://b.example.com]\n", "token_exchange.clients[0].subject_audiences"},
		{"token_exchange:\n  clients:\n    - client_id: gw\n      subject_audiences: [https://a.example.com]\n", "token_exchange.clients[0].audiences"},
		{"token_exchange:\n  clients:\n    - client_id: gw\n      subject_audiences: [https://a.example.com]\n      audiences: [my-api]\n", `c.yaml:6:19: token_exchange.clients[0].audiences: "my-api" is not a resource identifier`},
		{"token_exchange:\n  clients:\n    - client_id: gw\n      subject_audiences: [https://a.example.com]\n      audiences: [https://b.example.com]\n      scopes: [\"a b\"]\n", `c.yaml:7:16: token_exchange.clients[0].scopes: "a b" is not a scope value`},
		{"token_exchange:\n  client: []\n", "client"},
	} {
		c, err := load("issuer: https://as.example.com\n" + tt.yaml)
		if err == nil {
			err = c.Validate(true)
		}
		if err == nil || !strings.Contains(err.Error(), tt.key) {
			t.Errorf("%q: error %v, want one naming %s", tt.yaml, err, tt.key)
		}
	}
}
