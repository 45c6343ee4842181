package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gatehouse-mcp/gatehouse/internal/storage"
	"github.com/gatehouse-mcp/gatehouse/internal/storage/sqlite"
)

// TestOpenAPIRouteServe (issue 15) through `gatehouse serve`'s config path:
// an OpenAPI route with token exchange registers its API as a resource
// with the route's scopes and scope_policies, and derives the exchange
// policy, so the gateway's client exchanges a token issued for the route
// (and only such a token) for one for the API.
func TestOpenAPIRouteServe(t *testing.T) {
	asPort, gwPort := freePort(t), freePort(t)
	issuer := "http://127.0.0.1:" + strconv.Itoa(asPort)
	routeURL := fmt.Sprintf("http://127.0.0.1:%d/pets/mcp", gwPort)
	dir := t.TempDir()
	doc := filepath.Join(dir, "pets.json")
	must(t, os.WriteFile(doc, []byte(`{"openapi":"3.1.0","info":{"title":"Pets","version":"1"},"paths":{
	  "/pets":{"get":{"operationId":"listPets","responses":{"200":{"description":"ok"}}},
	           "post":{"operationId":"createPet","responses":{"201":{"description":"ok"}}}}}}`), 0o600))
	secretFile := filepath.Join(dir, "gw-secret")
	cfg := serveConfig(t, issuer, fmt.Sprintf(`allow_insecure_issuer: true
gateway:
  listen: 127.0.0.1:%d
  routes:
    - name: pets
      url: %s
      scopes: [pets:read]
      scope_policies: {pets:write: {groups: [editors]}}
      upstream:
        openapi:
          document: %s
          base_url: http://127.0.0.1:9/v1
          scopes: {read: [pets:read], write: [pets:write]}
        auth:
          token_exchange: {resource: "https://pets.example.test/api", client_id: gw, client_secret_file: %s}
`, gwPort, routeURL, doc, secretFile))
	pw := filepath.Join(dir, "pw")
	must(t, os.WriteFile(pw, []byte("a-long-password\n"), 0o600))
	var out strings.Builder
	for _, args := range [][]string{
		{"user", "add", "alice", "--password-file", pw},
		{"client", "create", "--id", "cli", "--redirect-uri", "http://127.0.0.1/callback"},
		{"client", "create", "--id", "gw", "--confidential"},
	} {
		out.Reset()
		if err := run(t.Context(), append(args, "--config", cfg), &out); err != nil {
			t.Fatalf("gatehouse %s: %v", strings.Join(args, " "), err)
		}
	}
	m := regexp.MustCompile(`client_secret:\s+(\S+)`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("client create printed no secret:\n%s", out.String())
	}
	must(t, os.WriteFile(secretFile, []byte(m[1]+"\n"), 0o600))
	startServe(t, "--config", cfg, "--listen", "127.0.0.1:"+strconv.Itoa(asPort))

	st, err := sqlite.Open(t.Context(), sqlite.Options{Path: filepath.Join(filepath.Dir(cfg), "gatehouse.db"), Now: time.Now})
	must(t, err)
	res, err := st.GetResource(t.Context(), "https://pets.example.test/api")
	st.Close()
	must(t, err)
	var names []string
	for _, s := range res.Scopes {
		names = append(names, s.Name)
	}
	if diff := cmp.Diff([]string{"pets:read", "pets:write"}, names); diff != "" {
		t.Errorf("the API resource's scopes (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]storage.ScopePolicy{"pets:write": {Groups: []string{"editors"}}}, res.ScopePolicies); diff != "" {
		t.Errorf("the API resource's scope policies (-want +got): the route's must apply to its API too\n%s", diff)
	}

	exchange := func(subject string) (int, map[string]any) {
		form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "subject_token": {subject},
			"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"}, "resource": {"https://pets.example.test/api"}, "scope": {"pets:read"}}
		req, _ := http.NewRequest(http.MethodPost, issuer+"/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("gw", m[1])
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var body map[string]any
		json.Unmarshal(b, &body)
		return resp.StatusCode, body
	}
	_, routeToken := consentAndToken(t, issuer, signInToConsent(t, issuer, "alice", routeURL, "pets:read"))
	if status, body := exchange(routeToken); status != http.StatusOK || body["scope"] != "pets:read" {
		t.Errorf("the gateway's exchange of a route token = %d %v, want 200 with pets:read", status, body)
	}
	// A token for the API itself is not the route's: the derived policy
	// lets the gateway exchange tokens of the route only.
	_, apiToken := consentAndToken(t, issuer, signInToConsent(t, issuer, "alice", "https://pets.example.test/api", "pets:read"))
	if status, body := exchange(apiToken); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Errorf("the gateway's exchange of a token not for the route = %d %v, want 400 invalid_grant", status, body)
	}
}
