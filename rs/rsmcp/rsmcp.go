package rsmcp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/auth"

	"github.com/gatehouse-mcp/gatehouse/rs"
)

// Keys of [auth.TokenInfo.Extra] set by [TokenInfo].
const (
	ExtraClientID = "client_id"
	ExtraIssuer   = "issuer"
	ExtraTokenID  = "jti"
)

// TokenInfo converts rs's view of a verified token to the SDK's: UserID is
// the subject (sub). It returns nil for nil.
func TokenInfo(ti *rs.TokenInfo) *auth.TokenInfo {
	if ti == nil {
		return nil
	}
	return &auth.TokenInfo{
		Scopes:     ti.Scopes,
		Expiration: ti.Expiry,
		UserID:     ti.Subject,
		Extra: map[string]any{
			ExtraClientID: ti.ClientID,
			ExtraIssuer:   ti.Issuer,
			ExtraTokenID:  ti.ID,
		},
	}
}

// TokenVerifier adapts v to the SDK's [auth.TokenVerifier], for use with
// [auth.RequireBearerToken]. A token v refuses becomes [auth.ErrInvalidToken]
// carrying only the safe [rs.ErrorDescription] (the SDK writes the error
// text into the response); an outage becomes a plain error, which the SDK
// answers with 500.
//
// auth.RequireBearerToken has no per-tool scopes and no RFC 6750 error
// codes; prefer [Protect], which keeps both.
func TokenVerifier(v rs.Verifier) auth.TokenVerifier {
	return func(ctx context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
		ti, err := v.Verify(ctx, token)
		if err != nil {
			if errors.Is(err, rs.ErrInvalidToken) {
				return nil, fmt.Errorf("%w: %s", auth.ErrInvalidToken, rs.ErrorDescription(err))
			}
			return nil, errors.New("token verification unavailable")
		}
		return TokenInfo(ti), nil
	}
}

// Protect returns h behind [rs.RequireBearer] with v and opts. Requests
// that pass reach h with both [rs.TokenInfoFromContext] and the SDK's
// [auth.TokenInfoFromContext] set, so the SDK binds sessions to the token's
// subject and tool handlers find the token in RequestExtra.TokenInfo.
func Protect(h http.Handler, v rs.Verifier, opts *rs.Options) http.Handler {
	// The SDK keeps its context key private: the only way to give it a
	// TokenInfo is its own middleware, which here re-reads what
	// rs.RequireBearer has already verified instead of verifying again.
	fromContext := func(ctx context.Context, _ string, _ *http.Request) (*auth.TokenInfo, error) {
		ti := rs.TokenInfoFromContext(ctx)
		if ti == nil {
			return nil, errors.New("rsmcp: no rs.TokenInfo in the request context")
		}
		return TokenInfo(ti), nil
	}
	inner := auth.RequireBearerToken(fromContext, &auth.RequireBearerTokenOptions{
		// rs.RequireBearer has checked exp (with its own skew); a token
		// without exp (possible from introspection) was accepted there.
		AllowMissingExpiration: true,
		ClockSkew:              maxSkew,
	})(h)
	return rs.RequireBearer(v, opts)(dpopAsBearer(inner))
}

// dpopAsBearer hands the SDK's middleware, which reads only the Bearer
// scheme, a request whose DPoP-bound token rs.RequireBearer has accepted
// with its proof (Authorization: DPoP, RFC 9449 §7.1) as if it were sent
// as Bearer: the SDK only reads the TokenInfo rs put in the context.
func dpopAsBearer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "DPoP") && rs.TokenInfoFromContext(r.Context()) != nil {
			r = r.Clone(r.Context())
			r.Header.Set("Authorization", "Bearer "+strings.Trim(tok, " "))
		}
		next.ServeHTTP(w, r)
	})
}

// maxSkew keeps the SDK's expiry check from refusing a token that
// rs.RequireBearer accepted a moment earlier.
const maxSkew = 1 << 62
