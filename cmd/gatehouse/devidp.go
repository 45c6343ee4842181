package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"

	"github.com/gatehouse-mcp/gatehouse/internal/clientreg"
	"github.com/gatehouse-mcp/gatehouse/internal/config"
)

// devIDPName is the name of the provider --idp adds: it is in the
// redirect URI to register at the provider (/login/oidc/idp/callback) and
// in the user names of its people (oidc:idp:<subject>), so it does not
// change with the issuer.
const devIDPName = "idp"

// devIDPUsage is the form of --idp, quoted by its errors.
const devIDPUsage = "--idp ISSUER,CLIENT_ID,SECRET_FILE"

// parseDevIDP turns the value of `gatehouse dev --idp` into an identity
// provider (issue 14 item 4) with its client secret read from the file.
// The issuer may be http on a loopback host (a provider run locally for
// a try), as dev's own issuer is; anywhere else it must be https. Every
// error names --idp.
func parseDevIDP(v string) (config.IdentityProvider, error) {
	parts := strings.Split(v, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return config.IdentityProvider{}, fmt.Errorf("%s: want three non-empty parts separated by commas (the provider's issuer URL, Gatehouse's client id there, and a file holding its client secret), got %d part(s)%s",
			devIDPUsage, len(parts), emptyPartNote(parts))
	}
	issuer, clientID, secretFile := parts[0], parts[1], parts[2]
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return config.IdentityProvider{}, fmt.Errorf("%s: the issuer %q is not an absolute https URL without query or fragment, such as https://accounts.google.com (or http://127.0.0.1:5556/dex for a provider on this machine)", devIDPUsage, issuer)
	}
	if u.Scheme == "http" && !clientreg.IsLoopbackHost(u.Hostname()) {
		return config.IdentityProvider{}, fmt.Errorf("%s: the issuer %q uses http on a host that is not loopback: use https (http only for a provider on 127.0.0.1, [::1] or localhost)", devIDPUsage, issuer)
	}
	b, err := os.ReadFile(secretFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// The value is not echoed: it may be the secret itself, typed
		// where its file's path belongs.
		return config.IdentityProvider{}, fmt.Errorf("%s: SECRET_FILE names no file: give the path of a file holding the client secret, not the secret itself (the value is not shown)", devIDPUsage)
	case err != nil:
		return config.IdentityProvider{}, fmt.Errorf("%s: cannot read the client secret file: %w", devIDPUsage, err)
	}
	secret := strings.TrimSpace(string(b))
	if secret == "" {
		return config.IdentityProvider{}, fmt.Errorf("%s: the client secret file %s is empty", devIDPUsage, secretFile)
	}
	return config.IdentityProvider{
		Name:             devIDPName,
		DisplayName:      u.Host,
		Issuer:           issuer,
		ClientID:         clientID,
		ClientSecretFile: secretFile,
		ClientSecret:     secret,
	}, nil
}

// emptyPartNote says which parts are empty, if any.
func emptyPartNote(parts []string) string {
	var empty []string
	for i, p := range parts {
		if p == "" && i < 3 {
			empty = append(empty, []string{"ISSUER", "CLIENT_ID", "SECRET_FILE"}[i])
		}
	}
	if len(empty) == 0 {
		return ""
	}
	return "; empty: " + strings.Join(empty, ", ")
}
