package main

import (
	"github.com/gatehouse-mcp/gatehouse/internal/as"
	"github.com/gatehouse-mcp/gatehouse/internal/config"
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
			Scopes:              p.Scopes,
			SubjectClaim:        p.Claims.Subject,
			EmailClaim:          p.Claims.Email,
			NameClaim:           p.Claims.Name,
			GroupsClaim:         p.Claims.Groups,
			PostSecret:          p.TokenEndpointAuthMethod == "client_secret_post",
			AllowedEmailDomains: p.AllowedEmailDomains,
			RequiredClaims:      p.RequiredClaims,
		})
	}
	return ups
}
