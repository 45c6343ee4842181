package as

import (
	"net/url"
	"testing"

	"github.com/gatehouse-mcp/gatehouse/internal/clientreg"
	"github.com/gatehouse-mcp/gatehouse/internal/storage"
)

// TestJWKSRefreshOnlyWhileCIMDAllowed (review finding): a metadata-document
// client stored while documents were on gets no jwks_uri fetch for an
// unknown kid once the operator turns documents off or narrows
// cimd.allow_domains past it: the server fetches nothing on its behalf.
func TestJWKSRefreshOnlyWhileCIMDAllowed(t *testing.T) {
	for _, tt := range []struct {
		name string
		off  func(*testServer)
	}{
		{"documents off", func(ts *testServer) { ts.Server.opts.Registration.CIMD.Enabled = false }},
		{"host no longer allowed", func(ts *testServer) { ts.Server.opts.Registration.CIMD.AllowDomains = []string{"only.example"} }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := newDocServer(t)
			const docPath, jwksPath = "/c/client.json", "/c/jwks.json"
			id := d.URL + docPath
			d.set(docPath, docResponse{body: d.doc(docPath, map[string]any{
				"client_name": "X", "redirect_uris": []string{"https://app.example/cb"},
				"token_endpoint_auth_method": "private_key_jwt", "token_endpoint_auth_signing_alg": "RS256", "jwks_uri": d.URL + jwksPath,
			}), cacheControl: "max-age=3600"})
			k1, k2 := newRSAKey(t, "k1"), newRSAKey(t, "k2")
			d.set(jwksPath, docResponse{body: jwksOf(t, k1)})
			ts := newTestServer(t, cimdOptions(d, nil))
			if _, err := ts.lookupClient(t.Context(), id, cimdTestIP); err != nil {
				t.Fatal(err)
			}
			before := d.count(jwksPath)
			tt.off(ts)
			form := url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {assertionTypeJWT}, "client_assertion": {k2.assertion(t, ts, id)}}
			status, _, body := ts.post(t, "/token", form, "", "")
			if status < 400 {
				t.Errorf("POST /token with an unknown kid = %d %s, want a refusal", status, body)
			}
			if n := d.count(jwksPath); n != before {
				t.Errorf("jwks_uri fetched %d more time(s) with the client's documents %s", n-before, tt.name)
			}
		})
	}
}

// TestJWKSRefreshChargesTheDocumentSite (review finding): a refresh for a
// client whose document is on one site and whose jwks_uri is on another
// counts against both sites' fetch budgets, so documents on an attacker's
// own site cannot spend a popular host's budget on their own account.
func TestJWKSRefreshChargesTheDocumentSite(t *testing.T) {
	d := newDocServer(t)
	const jwksPath = "/c/jwks.json"
	d.set(jwksPath, docResponse{body: jwksOf(t, newRSAKey(t, "k1"))})
	ts := newTestServer(t, cimdOptions(d, nil))
	c := storage.Client{ID: "https://attacker.example/client.json", Origin: storage.OriginCIMD, JWKSURI: d.URL + jwksPath}
	ts.Server.refreshClientJWKS(t.Context(), c) // c is not stored: nothing is updated, but the set is fetched
	if n := d.count(jwksPath); n != 1 {
		t.Fatalf("refreshClientJWKS fetched the jwks_uri %d times, want 1", n)
	}
	for _, site := range []string{"attacker.example", clientreg.DocumentSite(d.URL)} {
		// The next count says how many were spent before it.
		n, _, err := ts.Store.AddFailure(t.Context(), "cimd:fetch:"+site, ts.Clock.Now(), cimdFetchWindow)
		if err != nil {
			t.Fatal(err)
		}
		if n != 2 {
			t.Errorf("fetch budget of %s: %d spent by the refresh, want 1", site, n-1)
		}
	}
}
