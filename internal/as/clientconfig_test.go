package as

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestRegistrationManagement: RFC 7592 read, update and delete with the
// registration access token; anything else is 401 invalid_token.
func TestRegistrationManagement(t *testing.T) {
	ts := newTestServer(t, openRegistration(allowMachineClients))
	conf := `{"client_name":"App","redirect_uris":["https://app.example.com/cb"],"grant_types":["authorization_code","client_credentials"],"token_endpoint_auth_method":"client_secret_post"}`
	r := ts.mustRegister(t, conf)
	id, rat, secret := r.str("client_id"), r.str("registration_access_token"), r.str("client_secret")
	path := "/register/" + id
	other := ts.mustRegister(t, cursorMetadata)

	got := ts.call(t, http.MethodGet, path, "", "", rat)
	if got.status != 200 || got.str("registration_access_token") != rat || got.str("client_name") != "App" || got.str("client_secret") != "" {
		t.Fatalf("GET = %d %s", got.status, got.body)
	}
	if got.header.Get("Cache-Control") != "no-store" {
		t.Error("GET response is cacheable")
	}
	for _, tt := range []struct{ name, path, token string }{
		{"no token", path, ""},
		{"wrong token", path, "nope"},
		{"another client's token", "/register/" + other.str("client_id"), rat},
		{"static client", "/register/" + webClient, rat},
		{"unknown client", "/register/dcr_unknown", rat},
	} {
		g := ts.call(t, http.MethodGet, tt.path, "", "", tt.token)
		assertOAuthError(t, g.status, g.body, 401, "invalid_token")
		if !strings.HasPrefix(g.header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: WWW-Authenticate = %q", tt.name, g.header.Get("WWW-Authenticate"))
		}
	}
	if g := ts.call(t, http.MethodPost, path, "application/json", "{}", rat); g.status != 405 {
		t.Errorf("POST to the configuration endpoint = %d, want 405", g.status)
	}
	if g := ts.call(t, http.MethodOptions, path, "", "", ""); g.status != 204 || !strings.Contains(g.header.Get("Access-Control-Allow-Methods"), "PUT") {
		t.Errorf("CORS preflight = %d %v", g.status, g.header)
	}

	cc := func(sec string) int {
		s, _, _ := ts.post(t, "/token", url.Values{"grant_type": {"client_credentials"}, "resource": {testResource}, "client_id": {id}, "client_secret": {sec}}, "", "")
		return s
	}
	update := func(fields string) regResp {
		return ts.call(t, http.MethodPut, path, "application/json", `{"client_id":"`+id+`",`+fields+`}`, rat)
	}
	base := `"redirect_uris":["https://app.example.com/cb"],"grant_types":["authorization_code","client_credentials"],"token_endpoint_auth_method":"client_secret_post"`
	for _, tt := range []struct {
		name, body string
		code       string
	}{
		{"wrong client_secret", `"client_secret":"guess",` + base, "invalid_client_metadata"},
		{"registration_access_token sent", `"registration_access_token":"` + rat + `",` + base, "invalid_client_metadata"},
		{"bad redirect uri", `"redirect_uris":["javascript:alert(1)"]`, "invalid_redirect_uri"},
	} {
		u := update(tt.body)
		assertOAuthError(t, u.status, u.body, 400, tt.code)
	}
	if u := ts.call(t, http.MethodPut, path, "application/json", `{"client_name":"x",`+base+`}`, rat); u.status != 400 {
		t.Errorf("PUT without client_id = %d %s", u.status, u.body)
	}
	// A cosmetic update keeps the secret.
	u := update(`"client_secret":"` + secret + `","client_name":"App 2","x_extra":1,` + base)
	if u.status != 200 || u.str("client_name") != "App 2" || u.json["x_extra"] != float64(1) || u.str("client_secret") != "" {
		t.Fatalf("PUT = %d %s", u.status, u.body)
	}
	if s := cc(secret); s != 200 {
		t.Fatalf("client_credentials after a cosmetic update = %d", s)
	}
	// Omitted fields are removed (RFC 7592 §2.2): no client_name now.
	u = update(base)
	if _, ok := u.json["client_name"]; u.status != 200 || ok {
		t.Errorf("PUT without client_name = %d %s, want it removed", u.status, u.body)
	}

	// A public client's redirect change revokes its tokens; a cosmetic
	// change does not.
	pub := ts.mustRegister(t, sdkMetadata)
	pid, prat := pub.str("client_id"), pub.str("registration_access_token")
	a := defaultAuth()
	a.clientID = pid
	form := exchange(ts.code(t, a))
	form.Set("client_id", pid)
	s, _, body := ts.post(t, "/token", form, "", "")
	if s != 200 {
		t.Fatal(body)
	}
	var tr tokenResponse
	must(t, json.Unmarshal([]byte(body), &tr))
	refresh := func() (int, string) {
		s, _, b := ts.post(t, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tr.RefreshToken}, "client_id": {pid}}, "", "")
		if s == 200 {
			var next tokenResponse
			must(t, json.Unmarshal([]byte(b), &next))
			tr = next
		}
		return s, b
	}
	sdkWith := func(name, redirect string) string {
		return `{"client_id":"` + pid + `","client_name":"` + name + `","redirect_uris":["` + redirect + `"],"token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"]}`
	}
	if u := ts.call(t, http.MethodPut, "/register/"+pid, "application/json", sdkWith("Renamed", "http://127.0.0.1/callback"), prat); u.status != 200 {
		t.Fatalf("cosmetic PUT = %d %s", u.status, u.body)
	}
	if s, b := refresh(); s != 200 {
		t.Fatalf("refresh after a cosmetic update = %d %s", s, b)
	}
	if u := ts.call(t, http.MethodPut, "/register/"+pid, "application/json", sdkWith("Renamed", "http://127.0.0.1/other"), prat); u.status != 200 {
		t.Fatalf("redirect PUT = %d %s", u.status, u.body)
	}
	if s, b := refresh(); s != 400 || !strings.Contains(b, "invalid_grant") {
		t.Fatalf("refresh after a redirect change = %d %s, want invalid_grant", s, b)
	}
	if g := ts.call(t, http.MethodGet, "/register/"+pid, "", "", prat); g.status != 200 {
		t.Fatalf("the registration access token stopped working after re-creation: %d", g.status)
	}

	// Delete.
	if d := ts.call(t, http.MethodDelete, path, "", "", rat); d.status != 204 {
		t.Fatalf("DELETE = %d %s", d.status, d.body)
	}
	if g := ts.call(t, http.MethodGet, path, "", "", rat); g.status != 401 {
		t.Errorf("GET after DELETE = %d, want 401", g.status)
	}
	if _, err := ts.Store.GetClient(t.Context(), id); err == nil {
		t.Error("client still stored after DELETE")
	}
	if s := cc(secret); s != 401 {
		t.Errorf("client_credentials after DELETE = %d, want 401", s)
	}
}
