package oauth

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestIntrospectionMarshal pins what the authorization server writes: an
// inactive token is {"active":false} and nothing else (RFC 7662 §2.2), a
// single audience is a string, times are whole seconds, and an absent nbf
// is left out.
func TestIntrospectionMarshal(t *testing.T) {
	exp := time.Unix(1700000600, 900_000_000)
	tests := []struct {
		name string
		in   Introspection
		want string
	}{
		{"inactive", Introspection{}, `{"active":false}`},
		{"access token", Introspection{
			Active: true, Scope: "notes:read", ClientID: "c1", TokenType: "Bearer",
			Exp: NewNumericDate(exp), Iat: NewNumericDate(time.Unix(1700000000, 0)), Nbf: NewNumericDate(time.Time{}),
			Sub: "u1", Aud: OneAudience("https://mcp.example.com/mcp"), Iss: "https://as.example.com", JTI: "j1",
		}, `{"active":true,"scope":"notes:read","client_id":"c1","token_type":"Bearer","exp":1700000600,"iat":1700000000,"sub":"u1","aud":"https://mcp.example.com/mcp","iss":"https://as.example.com","jti":"j1"}`},
		{"no resource", Introspection{Active: true, Sub: "u1", Aud: OneAudience("")}, `{"active":true,"sub":"u1"}`},
		{"two audiences", Introspection{Active: true, Aud: Audience{"a", "b"}}, `{"active":true,"aud":["a","b"]}`},
		{"the epoch is a date", Introspection{Active: true, Nbf: NewNumericDate(time.Unix(0, 0))}, `{"active":true,"nbf":0}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.in)
			if err != nil {
				t.Fatalf("json.Marshal(%+v): %v", tt.in, err)
			}
			if string(b) != tt.want {
				t.Errorf("json.Marshal(%+v) = %s, want %s", tt.in, b, tt.want)
			}
		})
	}
}

// TestIntrospectionUnmarshal checks what rs accepts from any
// authorization server: aud as a string or an array (RFC 7519 §4.1.3),
// fractional NumericDates (RFC 7519 §2), and absent or null members as
// absent; and what it refuses.
func TestIntrospectionUnmarshal(t *testing.T) {
	type got struct {
		Active         bool
		Aud            []string
		Exp, Iat       time.Time
		ExpSet, NbfSet bool
	}
	tests := []struct {
		name string
		in   string
		want got
	}{
		{"aud string", `{"active":true,"aud":"r","exp":10}`, got{Active: true, Aud: []string{"r"}, Exp: time.Unix(10, 0), ExpSet: true}},
		{"aud array", `{"active":true,"aud":["r","s"]}`, got{Active: true, Aud: []string{"r", "s"}}},
		{"aud empty string", `{"active":true,"aud":""}`, got{Active: true}},
		{"aud null, nbf null", `{"active":true,"aud":null,"nbf":null}`, got{Active: true}},
		{"fractional", `{"active":true,"exp":10.5,"iat":0}`, got{Active: true, Exp: time.Unix(10, 500_000_000), ExpSet: true, Iat: time.Unix(0, 0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Introspection
			if err := json.Unmarshal([]byte(tt.in), &r); err != nil {
				t.Fatalf("json.Unmarshal(%s): %v", tt.in, err)
			}
			g := got{Active: r.Active, Aud: r.Aud, Exp: r.Exp.Time(), Iat: r.Iat.Time(), ExpSet: !r.Exp.IsZero(), NbfSet: !r.Nbf.IsZero()}
			if diff := cmp.Diff(tt.want, g); diff != "" {
				t.Errorf("json.Unmarshal(%s) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
	for _, in := range []string{
		`{"aud":7}`,
		`{"aud":[7]}`,
		`{"exp":"10"}`,
		`{"exp":-1}`,
		`{"exp":253402300800}`,
	} {
		var r Introspection
		if err := json.Unmarshal([]byte(in), &r); err == nil {
			t.Errorf("json.Unmarshal(%s) = nil error, want one", in)
		}
	}
}
