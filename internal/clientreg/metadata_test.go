package clientreg

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRedirectPolicyCheck(t *testing.T) {
	def := RedirectPolicy{}
	strict := RedirectPolicy{PrivateUseSchemes: []string{}, NoReverseDomainSchemes: true}
	tests := []struct {
		name    string
		p       RedirectPolicy
		uri     string
		appType string
		want    string // "" for accepted, else a substring of the error
	}{
		{"https web", def, "https://app.example.com/cb", AppWeb, ""},
		{"https native (claimed https)", def, "https://app.example.com/cb", AppNative, ""},
		{"https with query", def, "https://app.example.com/cb?x=1", AppWeb, ""},
		{"loopback ip native", def, "http://127.0.0.1/callback", AppNative, ""},
		{"loopback ip port native", def, "http://127.0.0.1:33418/callback", AppNative, ""},
		{"loopback v6 native", def, "http://[::1]/callback", AppNative, ""},
		{"localhost native", def, "http://localhost/callback", AppNative, ""},
		{"loopback web", def, "http://127.0.0.1/callback", AppWeb, "only native apps may use"},
		{"cursor native", def, "cursor://anysphere.cursor-mcp/oauth/callback", AppNative, ""},
		{"claude native", def, "claude://claude.ai/mcp-auth-callback/sdk", AppNative, ""},
		{"vscode native", def, "vscode://vscode.github-authentication/did-authenticate", AppNative, ""},
		{"scheme case-insensitive", def, "Cursor://anysphere.cursor-mcp/oauth/callback", AppNative, ""},
		{"reverse-domain native", def, "com.example.app:/oauth2redirect", AppNative, ""},
		{"bidi override", def, "https://app.example.com/\u202ebc", AppWeb, "invisible character U+202E"},
		{"reverse-domain refused by policy", strict, "com.example.app:/oauth2redirect", AppNative, "does not allow"},
		{"cursor refused by empty list", strict, "cursor://anysphere.cursor-mcp/oauth/callback", AppNative, "does not allow; allowed: none"},
		{"unlisted private scheme", def, "myapp://callback", AppNative, "does not allow; allowed: reverse-domain"},
		{"private scheme web", def, "cursor://anysphere.cursor-mcp/oauth/callback", AppWeb, "only native apps may use"},
		{"opaque private scheme", def, "com.example.app:callback", AppNative, "must have the form"},
		{"javascript", def, "javascript:alert(1)", AppNative, "javascript: scheme, which is never allowed"},
		{"javascript upper", def, "JavaScript://x/%0aalert(1)", AppNative, "never allowed"},
		{"data", def, "data:text/html,<script>alert(1)</script>", AppNative, "data: scheme"},
		{"file", def, "file:///etc/passwd", AppNative, "file: scheme"},
		{"vbscript", def, "vbscript:msgbox", AppNative, "vbscript: scheme"},
		{"blob", def, "blob:https://a/b", AppNative, "blob: scheme"},
		{"fragment", def, "https://app.example.com/cb#frag", AppWeb, "fragment"},
		{"empty fragment", def, "https://app.example.com/cb#", AppWeb, "fragment"},
		{"wildcard host", def, "https://*.example.com/cb", AppWeb, "wildcard"},
		{"wildcard path", def, "https://app.example.com/*", AppWeb, "wildcard"},
		{"non-loopback http", def, "http://app.example.com/cb", AppNative, "not loopback"},
		{"http 127.0.0.2", def, "http://127.0.0.2/cb", AppNative, "not loopback"},
		{"http 0.0.0.0", def, "http://0.0.0.0/cb", AppNative, "not loopback"},
		{"http localhost.evil", def, "http://localhost.evil.com/cb", AppNative, "not loopback"},
		{"userinfo https", def, "https://user@app.example.com/cb", AppWeb, "user information"},
		{"userinfo loopback", def, "http://evil@127.0.0.1/cb", AppNative, "user information"},
		{"relative", def, "/callback", AppWeb, "not an absolute URI"},
		{"empty", def, "", AppWeb, "empty"},
		{"space", def, "https://app.example.com/c b", AppWeb, "spaces or control"},
		{"newline", def, "https://app.example.com/cb\n", AppWeb, "spaces or control"},
		{"https no host", def, "https:///cb", AppWeb, "no host"},
		{"too long", def, "https://a.example/" + strings.Repeat("x", 2048), AppWeb, "longer than 2048"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Check(tt.uri, tt.appType)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Check(%q, %s) = %v, want accepted", tt.uri, tt.appType, err)
				}
				return
			}
			var ce *Error
			if !errors.As(err, &ce) || ce.Code != CodeInvalidRedirectURI || !strings.Contains(ce.Description, tt.want) {
				t.Fatalf("Check(%q, %s) = %v, want invalid_redirect_uri containing %q", tt.uri, tt.appType, err, tt.want)
			}
			if tt.uri != "" && len(tt.uri) < 200 && !strings.Contains(ce.Description, fmt.Sprintf("%q", tt.uri)) {
				t.Errorf("error %q does not name the URI %q", ce.Description, tt.uri)
			}
		})
	}
}

func TestInferApplicationType(t *testing.T) {
	for _, tt := range []struct {
		uris []string
		want string
	}{
		{nil, AppWeb},
		{[]string{"https://a.example/cb"}, AppWeb},
		{[]string{"https://a.example/cb", "http://127.0.0.1/cb"}, AppNative},
		{[]string{"cursor://x/cb"}, AppNative},
		{[]string{"http://localhost/cb"}, AppNative},
	} {
		if got := InferApplicationType(tt.uris); got != tt.want {
			t.Errorf("InferApplicationType(%q) = %s, want %s", tt.uris, got, tt.want)
		}
	}
}

func TestParseDefaultsAndUnknownFields(t *testing.T) {
	body := `{"redirect_uris":["cursor://anysphere.cursor-mcp/oauth/callback","cursor://anysphere.cursor-mcp/oauth/callback"],
		"client_name":"Cursor","token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"],
		"x_vendor":{"n":1.50,"list":[1,2]},"client_name#ja":"カーソル","software_statement":"eyJ...","scope":"notes:read openid"}`
	md, err := Parse([]byte(body), Options{Kind: Register})
	if err != nil {
		t.Fatal(err)
	}
	if md.ApplicationType != AppNative {
		t.Errorf("ApplicationType = %q, want native (inferred from a private-use scheme)", md.ApplicationType)
	}
	if !slices.Equal(md.RedirectURIs, []string{"cursor://anysphere.cursor-mcp/oauth/callback"}) {
		t.Errorf("RedirectURIs = %q, want the duplicate removed", md.RedirectURIs)
	}
	want := `{"application_type":"native","client_name":"Cursor","client_name#ja":"カーソル","grant_types":["authorization_code","refresh_token"],"redirect_uris":["cursor://anysphere.cursor-mcp/oauth/callback"],"response_types":["code"],"scope":"notes:read openid","token_endpoint_auth_method":"none","x_vendor":{"list":[1,2],"n":1.50}}`
	if diff := cmp.Diff(want, md.JSON()); diff != "" {
		t.Errorf("JSON() mismatch (-want +got):\n%s", diff)
	}

	md, err = Parse([]byte(`{"redirect_uris":["https://app.example.com/cb"]}`), Options{Kind: Register})
	if err != nil {
		t.Fatal(err)
	}
	if md.TokenEndpointAuthMethod != "client_secret_basic" || !md.Confidential() || md.ApplicationType != AppWeb ||
		!slices.Equal(md.GrantTypes, []string{"authorization_code"}) || !slices.Equal(md.ResponseTypes, []string{"code"}) {
		t.Errorf("defaults = %+v, want client_secret_basic, web, [authorization_code], [code] (RFC 7591 §2)", md)
	}
}

// TestParseDPoPBound: dpop_bound_access_tokens (RFC 9449 §5.2) is read,
// kept in the stored metadata, and false when absent.
func TestParseDPoPBound(t *testing.T) {
	md, err := Parse([]byte(`{"redirect_uris":["https://app.example.com/cb"],"dpop_bound_access_tokens":true}`), Options{Kind: Register})
	if err != nil {
		t.Fatal(err)
	}
	if !md.DPoPBound || !strings.Contains(md.JSON(), `"dpop_bound_access_tokens":true`) {
		t.Errorf("DPoPBound = %v, JSON %s; want true, kept", md.DPoPBound, md.JSON())
	}
	md, err = Parse([]byte(`{"redirect_uris":["https://app.example.com/cb"]}`), Options{Kind: Register})
	if err != nil || md.DPoPBound {
		t.Errorf("without the member: DPoPBound = %v, %v; want false", md.DPoPBound, err)
	}
}

func TestParseErrors(t *testing.T) {
	const doc = "https://client.example.com/meta.json"
	reg := func(s string) string { return `{"redirect_uris":["https://a.example/cb"],` + s + `}` }
	tests := []struct {
		name string
		kind Kind
		body string
		code string
		want string
	}{
		{"not json", Register, `{`, CodeInvalidClientMetadata, "not valid JSON"},
		{"array", Register, `[]`, CodeInvalidClientMetadata, "must be a JSON object"},
		{"trailing data", Register, `{} {}`, CodeInvalidClientMetadata, "data after"},
		{"invalid utf-8", Register, "{\"client_name\":\"\xff\"}", CodeInvalidClientMetadata, "UTF-8"},
		{"duplicate key", Register, `{"redirect_uris":["https://a.example/cb"],"redirect_uris":["https://evil.example/cb"]}`, CodeInvalidClientMetadata, `"redirect_uris" appears more than once`},
		{"nested duplicate key", Register, reg(`"x":{"a":1,"a":2}`), CodeInvalidClientMetadata, `"a" appears more than once`},
		{"too deep", Register, reg(`"x":` + strings.Repeat("[", 20) + strings.Repeat("]", 20)), CodeInvalidClientMetadata, "nested more than"},
		{"case-variant key is not redirect_uris", Register, `{"Redirect_URIs":["https://a.example/cb"]}`, CodeInvalidRedirectURI, "redirect_uris is required"},
		{"client_id sent", Register, reg(`"client_id":"x"`), CodeInvalidClientMetadata, "client_id is issued by the server"},
		{"registration_access_token sent", Register, reg(`"registration_access_token":"x"`), CodeInvalidClientMetadata, "registration_access_token is issued"},
		{"redirect_uris not array", Register, `{"redirect_uris":"https://a.example/cb"}`, CodeInvalidRedirectURI, "array of strings"},
		{"too many redirect_uris", Register, `{"redirect_uris":[` + strings.TrimSuffix(strings.Repeat(`"https://a.example/cb",`, 21), ",") + `]}`, CodeInvalidRedirectURI, "at most 20"},
		{"application_type bad", Register, reg(`"application_type":"desktop"`), CodeInvalidClientMetadata, "application_type"},
		{"unknown auth method", Register, reg(`"token_endpoint_auth_method":"tls_client_auth"`), CodeInvalidClientMetadata, `"tls_client_auth" is not supported`},
		{"client_secret_jwt", Register, reg(`"token_endpoint_auth_method":"client_secret_jwt"`), CodeInvalidClientMetadata, "client_secret_jwt is not supported"},
		{"grant implicit", Register, reg(`"grant_types":["implicit"]`), CodeInvalidClientMetadata, `grant type "implicit" is not allowed`},
		{"grant password", Register, reg(`"grant_types":["authorization_code","password"]`), CodeInvalidClientMetadata, `"password" is not allowed`},
		{"refresh alone", Register, reg(`"grant_types":["refresh_token"]`), CodeInvalidClientMetadata, "refresh_token needs authorization_code"},
		{"client_credentials with none", Register, `{"grant_types":["client_credentials"],"token_endpoint_auth_method":"none"}`, CodeInvalidClientMetadata, "needs a confidential client"},
		{"response type token", Register, reg(`"response_types":["token"]`), CodeInvalidClientMetadata, `response type "token" is not supported`},
		{"dpop_bound_access_tokens a string (RFC 9449 §5.2)", Register, reg(`"dpop_bound_access_tokens":"true"`), CodeInvalidClientMetadata, "dpop_bound_access_tokens must be true or false"},
		{"jwks and jwks_uri", Register, reg(`"token_endpoint_auth_method":"private_key_jwt","jwks":{"keys":[{"kty":"EC"}]},"jwks_uri":"https://a.example/jwks"`), CodeInvalidClientMetadata, "must not both be present"},
		{"jwks_uri registered", Register, reg(`"token_endpoint_auth_method":"private_key_jwt","jwks_uri":"https://a.example/jwks"`), CodeInvalidClientMetadata, "jwks_uri is not supported"},
		{"private_key_jwt without keys", Register, reg(`"token_endpoint_auth_method":"private_key_jwt"`), CodeInvalidClientMetadata, "needs the client's public keys"},
		{"jwks private key", Register, reg(`"jwks":{"keys":[{"kty":"EC","d":"secret"}]}`), CodeInvalidClientMetadata, `private member "d"`},
		{"jwks symmetric key", Register, reg(`"jwks":{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`), CodeInvalidClientMetadata, "symmetric"},
		{"jwks empty", Register, reg(`"jwks":{"keys":[]}`), CodeInvalidClientMetadata, "non-empty keys"},
		{"client_name too long", Register, reg(`"client_name":"` + strings.Repeat("n", 201) + `"`), CodeInvalidClientMetadata, "client_name is longer than 200"},
		{"client_name control", Register, reg(`"client_name":"a\u0007b"`), CodeInvalidClientMetadata, "control characters"},
		{"client_name not string", Register, reg(`"client_name":42`), CodeInvalidClientMetadata, "client_name must be a string"},
		{"client_name bidi override", Register, reg(`"client_name":"Evil\u202egnp.exe"`), CodeInvalidClientMetadata, "client_name contains the invisible character U+202E"},
		{"client_name zero-width space", Register, reg(`"client_name":"Git\u200bHub"`), CodeInvalidClientMetadata, "client_name contains the invisible character U+200B"},
		{"client_name Hangul fillers", Register, reg(`"client_name":"\u3164\u3164"`), CodeInvalidClientMetadata, "client_name contains the invisible character U+3164"},
		{"client_name no-break space", Register, reg(`"client_name":"Git\u00a0Hub"`), CodeInvalidClientMetadata, "client_name contains the invisible character U+00A0"},
		{"client_name soft hyphen", Register, reg(`"client_name":"Git\u00adHub"`), CodeInvalidClientMetadata, "U+00AD"},
		{"client_name tag character", Register, reg(`"client_name":"GitHub\udb40\udc41"`), CodeInvalidClientMetadata, "U+E0041"},
		{"client_uri format char", Register, reg(`"client_uri":"https://a.example/\u2066x"`), CodeInvalidClientMetadata, "client_uri contains the invisible character U+2066"},
		{"tos_uri format char", Register, reg(`"tos_uri":"https://a.example/\ufefftos"`), CodeInvalidClientMetadata, "tos_uri contains the invisible character U+FEFF"},
		{"contacts format char", Register, reg(`"contacts":["a@b.c","\u202eadmin@b.c"]`), CodeInvalidClientMetadata, "contacts contains the invisible character U+202E"},
		{"software_version format char", Register, reg(`"software_version":"1\u200d"`), CodeInvalidClientMetadata, "software_version contains the invisible character U+200D"},
		{"redirect_uris format char", Register, `{"redirect_uris":["https://a.example/cb\u202e"]}`, CodeInvalidRedirectURI, "redirect_uris contains the invisible character U+202E"},
		{"update client_name format char", Update, reg(`"client_id":"c1","client_name":"\u202e"`), CodeInvalidClientMetadata, "client_name contains the invisible character U+202E"},
		{"doc client_name format char", Document, reg(`"client_id":"` + doc + `","client_name":"Evil\u202egnp"`), CodeInvalidClientMetadata, "client_name contains the invisible character U+202E"},
		{"client_uri javascript", Register, reg(`"client_uri":"javascript:alert(1)"`), CodeInvalidClientMetadata, "client_uri"},
		{"logo_uri too long", Register, reg(`"logo_uri":"https://a.example/` + strings.Repeat("l", 2048) + `"`), CodeInvalidClientMetadata, "logo_uri is longer"},
		{"contacts not array", Register, reg(`"contacts":"me@example.com"`), CodeInvalidClientMetadata, "contacts must be an array"},
		{"too many contacts", Register, reg(`"contacts":[` + strings.TrimSuffix(strings.Repeat(`"a@b.c",`, 11), ",") + `]`), CodeInvalidClientMetadata, "at most 10"},
		{"scope bad char", Register, reg(`"scope":"a\"b"`), CodeInvalidClientMetadata, "invalid value"},
		{"too many members", Register, reg(manyMembers(70)), CodeInvalidClientMetadata, "at most 64"},
		{"long member name", Register, reg(`"` + strings.Repeat("k", 101) + `":1`), CodeInvalidClientMetadata, "member name"},
		{"update without client_id", Update, reg(`"client_name":"x"`), CodeInvalidClientMetadata, "client_id must be sent"},
		{"update with client_id_issued_at", Update, reg(`"client_id":"c1","client_id_issued_at":1`), CodeInvalidClientMetadata, "client_id_issued_at must not be sent"},
		{"doc without client_id", Document, reg(`"client_name":"x"`), CodeInvalidClientMetadata, "no client_id"},
		{"doc client_id mismatch", Document, reg(`"client_id":"https://client.example.com/meta.json/","client_name":"x"`), CodeInvalidClientMetadata, "does not equal its URL"},
		{"doc secret method", Document, reg(`"client_id":"` + doc + `","client_name":"x","token_endpoint_auth_method":"client_secret_basic"`), CodeInvalidClientMetadata, "must not use token_endpoint_auth_method client_secret_basic"},
		{"doc client_secret", Document, reg(`"client_id":"` + doc + `","client_name":"x","client_secret":"s"`), CodeInvalidClientMetadata, "must not contain client_secret"},
		{"doc client_secret_expires_at", Document, reg(`"client_id":"` + doc + `","client_name":"x","client_secret_expires_at":0`), CodeInvalidClientMetadata, "client_secret_expires_at"},
		{"doc no client_name", Document, reg(`"client_id":"` + doc + `"`), CodeInvalidClientMetadata, "no client_name"},
		{"doc no redirect_uris", Document, `{"client_id":"` + doc + `","client_name":"x"}`, CodeInvalidRedirectURI, "no redirect_uris"},
		{"doc private_key_jwt without keys", Document, reg(`"client_id":"` + doc + `","client_name":"x","token_endpoint_auth_method":"private_key_jwt"`), CodeInvalidClientMetadata, "jwks or jwks_uri"},
		{"doc jwks_uri http", Document, reg(`"client_id":"` + doc + `","client_name":"x","token_endpoint_auth_method":"private_key_jwt","jwks_uri":"http://a.example/jwks"`), CodeInvalidClientMetadata, "absolute https URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.body), Options{Kind: tt.kind, ClientID: map[Kind]string{Update: "c1", Document: doc}[tt.kind]})
			var ce *Error
			if !errors.As(err, &ce) || ce.Code != tt.code || !strings.Contains(ce.Description, tt.want) {
				t.Fatalf("Parse(%.80q) = %v, want %s containing %q", tt.body, err, tt.code, tt.want)
			}
		})
	}
}

func manyMembers(n int) string {
	var parts []string
	for i := range n {
		parts = append(parts, fmt.Sprintf(`"x%d":%d`, i, i))
	}
	return strings.Join(parts, ",")
}

func TestParseDocument(t *testing.T) {
	const id = "https://claude.ai/oauth/claude-code-client-metadata"
	body := `{"client_id":"` + id + `","client_name":"Claude Code","redirect_uris":["http://localhost/callback","http://127.0.0.1/callback"],"grant_types":["authorization_code","refresh_token"],"response_types":["code"]}`
	md, err := Parse([]byte(body), Options{Kind: Document, ClientID: id})
	if err != nil {
		t.Fatal(err)
	}
	if md.TokenEndpointAuthMethod != "none" || md.ApplicationType != AppNative || md.ClientName != "Claude Code" {
		t.Errorf("document = %+v, want none, native, Claude Code", md)
	}
	if _, ok := md.Fields["client_id"]; ok {
		t.Errorf("Fields keeps client_id; it is the row id, not metadata")
	}

	// VS Code's published document lists the device grant: a document is
	// written for every server, so unsupported values are ignored.
	const vscode = "https://vscode.dev/oauth/client-metadata.json"
	body = `{"client_name":"Visual Studio Code","grant_types":["authorization_code","refresh_token","urn:ietf:params:oauth:grant-type:device_code"],
		"response_types":["code"],"token_endpoint_auth_method":"none","application_type":"native","client_id":"` + vscode + `",
		"client_uri":"https://vscode.dev/product","redirect_uris":["http://127.0.0.1:33418/","https://vscode.dev/redirect"]}`
	md, err = Parse([]byte(body), Options{Kind: Document, ClientID: vscode})
	if err != nil {
		t.Fatalf("VS Code's document: %v", err)
	}
	if !slices.Equal(md.GrantTypes, []string{"authorization_code", "refresh_token"}) {
		t.Errorf("VS Code grant types = %q", md.GrantTypes)
	}
	if _, err := Parse([]byte(`{"client_id":"`+vscode+`","client_name":"x","redirect_uris":["https://a.example/cb"],"grant_types":["implicit"]}`), Options{Kind: Document, ClientID: vscode}); err == nil {
		t.Error("a document with no supported grant type was accepted")
	}
}

func TestCheckClientIDURL(t *testing.T) {
	for _, tt := range []struct {
		url    string
		isURL  bool
		wantOK bool
	}{
		{"https://claude.ai/oauth/claude-code-client-metadata", true, true},
		{"https://example.com:8443/client.json", true, true},
		{"https://example.com/client.json?v=1", true, true},
		{"https://example.com/", false, false},
		{"https://example.com", false, false},
		{"https://example.com?x=/y", false, false},
		{"http://example.com/client.json", false, false},
		{"my-client", false, false},
		{"https://example.com/a/../client.json", true, false},
		{"https://example.com/a/%2e%2e/client.json", true, false},
		{"https://example.com/./client.json", true, false},
		{"https://user@example.com/client.json", true, false},
		{"https://example.com/client.json#x", true, false},
		{"https://example.com/c lient.json", true, false},
		{"https://example.com/\u202enosj.json", true, false},
		{"https://example.com/client.json?\u200b", true, false},
		{"https://example.com/\u202eclient.json", true, false},
		{"https://example.com/cli\u200bent.json", true, false},
		{"https://example.com/client\u2028.json", true, false},
		{"https://example.com/client\u0085.json", true, false},
		{"https://example.com/client\x7f.json", true, false},
		{"https://example.com/cli\u00e9nt.json", true, false},
		{"https://\u00e9xample.com/client.json", true, false},
		{"https://xn--xample-9ua.com/client.json", true, true},
		{"https://example.com/cli%C3%A9nt.json?v=%E2%80%AE", true, true},
		{"https://example.com/client.json?v=\u202e", true, false},
	} {
		if got := IsClientIDURL(tt.url); got != tt.isURL {
			t.Errorf("IsClientIDURL(%q) = %v, want %v", tt.url, got, tt.isURL)
		}
		if err := CheckClientIDURL(tt.url); (err == nil) != tt.wantOK && tt.isURL {
			t.Errorf("CheckClientIDURL(%q) = %v, want ok=%v", tt.url, err, tt.wantOK)
		}
	}
	for _, tt := range []struct{ url, site string }{
		{"https://claude.ai/oauth/client", "claude.ai"},
		{"https://a.b.evil.example.com:8443/x?y=1", "example.com"},
		{"https://A.Example.CO.UK/x", "example.co.uk"},
		{"https://alice.github.io/client.json", "alice.github.io"}, // a shared public suffix
		{"https://127.0.0.1:9/x", "127.0.0.1"},
		{"https://[::1]:9/x", "::1"},
		{"https://localhost/x", "localhost"},
		{"https://example.com./x", "example.com"},
		{"::", ""},
	} {
		if got := DocumentSite(tt.url); got != tt.site {
			t.Errorf("DocumentSite(%q) = %q, want %q", tt.url, got, tt.site)
		}
	}
	if !HostMatchesDomain("app.claude.ai", "claude.ai") || !HostMatchesDomain("claude.ai", ".claude.ai") || HostMatchesDomain("evilclaude.ai", "claude.ai") {
		t.Error("HostMatchesDomain matches wrongly")
	}
}

// FuzzParseRegistration: any body either fails with an RFC 7591 code or
// yields metadata whose every redirect URI passes the policy, whose
// canonical JSON parses again to itself, and which never keeps a
// server-issued member.
func FuzzParseRegistration(f *testing.F) {
	for _, s := range []string{
		`{"redirect_uris":["https://a.example/cb"]}`,
		`{"redirect_uris":["http://127.0.0.1/cb"],"application_type":"native","token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"]}`,
		`{"redirect_uris":["cursor://anysphere.cursor-mcp/oauth/callback"],"client_name":"Cursor","x":{"y":[1,2,{"z":null}]}}`,
		`{"grant_types":["client_credentials"],"token_endpoint_auth_method":"client_secret_post","scope":"a b"}`,
		`{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"private_key_jwt","jwks":{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b"}]}}`,
		`{"redirect_uris":["javascript:alert(1)"]}`, `{"a":1,"a":2}`, `[]`, `{"redirect_uris":null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		md, err := Parse(body, Options{Kind: Register})
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) || (ce.Code != CodeInvalidClientMetadata && ce.Code != CodeInvalidRedirectURI) || ce.Description == "" {
				t.Fatalf("Parse(%q) error %v is not an RFC 7591 error", body, err)
			}
			return
		}
		for _, r := range md.RedirectURIs {
			if err := (RedirectPolicy{}).Check(r, md.ApplicationType); err != nil {
				t.Fatalf("Parse(%q) accepted redirect URI %q: %v", body, r, err)
			}
		}
		for _, k := range append([]string{"client_id", "client_secret", "software_statement"}, serverFields...) {
			if _, ok := md.Fields[k]; ok {
				t.Fatalf("Parse(%q) kept %s", body, k)
			}
		}
		again, err := Parse([]byte(md.JSON()), Options{Kind: Register})
		if err != nil {
			t.Fatalf("Parse(JSON()) of %q = %v", body, err)
		}
		if again.JSON() != md.JSON() {
			t.Fatalf("canonical JSON is not stable:\n%s\n%s", md.JSON(), again.JSON())
		}
	})
}

// FuzzParseDocument: an accepted metadata document is always public or
// private_key_jwt with keys, has a name and redirect URIs, and never
// carries a shared secret.
func FuzzParseDocument(f *testing.F) {
	const id = "https://client.example.com/meta.json"
	for _, s := range []string{
		`{"client_id":"` + id + `","client_name":"C","redirect_uris":["http://localhost/callback"]}`,
		`{"client_id":"` + id + `","client_name":"C","redirect_uris":["https://c.example/cb"],"token_endpoint_auth_method":"private_key_jwt","jwks_uri":"https://c.example/jwks"}`,
		`{"client_id":"` + id + `","client_name":"C","redirect_uris":["https://c.example/cb"],"client_secret":"x"}`,
		`{"client_id":"https://other.example/meta.json","client_name":"C","redirect_uris":["https://c.example/cb"]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		md, err := Parse(body, Options{Kind: Document, ClientID: id})
		if err != nil {
			return
		}
		switch md.TokenEndpointAuthMethod {
		case "none":
		case "private_key_jwt":
			if md.JWKS == "" && md.JWKSURI == "" {
				t.Fatalf("Parse(%q): private_key_jwt without keys", body)
			}
		default:
			t.Fatalf("Parse(%q): document with auth method %q", body, md.TokenEndpointAuthMethod)
		}
		if strings.TrimSpace(md.ClientName) == "" || len(md.RedirectURIs) == 0 {
			t.Fatalf("Parse(%q): document without client_name or redirect_uris", body)
		}
		if _, ok := md.Fields["client_secret"]; ok {
			t.Fatalf("Parse(%q): document kept client_secret", body)
		}
	})
}
