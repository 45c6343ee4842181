package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/gatehouse-mcp/gatehouse/internal/as"
	"github.com/gatehouse-mcp/gatehouse/internal/config"
	"github.com/gatehouse-mcp/gatehouse/internal/token"
)

// upstreamOptions turns identity.providers into the authorization
// server's upstream providers (their secrets already resolved).
func upstreamOptions(id config.Identity) []as.Upstream {
	var ups []as.Upstream
	for _, p := range id.Providers {
		p = p.WithDefaults()
		ups = append(ups, as.Upstream{
			Name:                p.Name,
			DisplayName:         p.DisplayName,
			Issuer:              p.Issuer,
			ClientID:            p.ClientID,
			ClientSecret:        p.ClientSecret,
			ClientKey:           p.PrivateKey,
			ClientKeyID:         p.KeyID,
			Scopes:              p.Scopes,
			SubjectClaim:        p.Claims.Subject,
			EmailClaim:          p.Claims.Email,
			NameClaim:           p.Claims.Name,
			GroupsClaim:         p.Claims.Groups,
			PolicyClaims:        p.PolicyClaims,
			PostSecret:          p.TokenEndpointAuthMethod == "client_secret_post",
			AllowedEmailDomains: p.AllowedEmailDomains,
			RequiredClaims:      p.RequiredClaims,
			LinkByVerifiedEmail: p.LinkByVerifiedEmail,
		})
	}
	return ups
}

// delegateOption turns identity.delegate into the authorization server's
// delegated login (its keys already read), or nil.
func delegateOption(id config.Identity) *as.Delegate {
	d := id.Delegate
	if d == nil {
		return nil
	}
	return &as.Delegate{ID: d.ID, DisplayName: d.DisplayName, LoginURL: d.LoginURL, Keys: d.Keys}
}

// parseDelegateFlag reads `gatehouse dev --delegate ID,LOGIN_URL,PUBLIC_KEY_FILE`
// into identity.delegate, with its key read.
func parseDelegateFlag(v string) (*config.IdentityDelegate, error) {
	parts := strings.Split(v, ",")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return nil, fmt.Errorf("--delegate %q must be ID,LOGIN_URL,PUBLIC_KEY_FILE", v)
	}
	b, err := os.ReadFile(parts[2])
	if err != nil {
		return nil, fmt.Errorf("--delegate: %w", err)
	}
	keys, err := token.ParsePublicKeys(b)
	if err != nil {
		return nil, fmt.Errorf("--delegate: %s: %w", parts[2], err)
	}
	return &config.IdentityDelegate{ID: parts[0], LoginURL: parts[1], PublicKeyFiles: []string{parts[2]}, Keys: keys}, nil
}
