// Command saaslogin is an example SaaS that keeps its own users and login
// page and signs them in to Gatehouse by delegated login
// (identity.delegate, docs/identity.md). It has its users in memory, its
// own login form, and its own ES256 signing key in a file; Gatehouse only
// ever sees the public half.
//
//	go run ./examples/saaslogin genkey -key saas.key -pub saas.pub
//	gatehouse dev --delegate saas,http://127.0.0.1:9000/login,saas.pub &
//	go run ./examples/saaslogin serve -key saas.key -gatehouse http://127.0.0.1:8080
//
// Gatehouse sends the browser to /login?login_challenge=…; after a
// correct username and password this app sends it back to
// <gatehouse>/login/delegate/callback?assertion=<JWS>, whose claims say
// who signed in (sub is the app's own user id) and answer that challenge.
// README.md goes through it step by step.
package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"log"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: saaslogin genkey|serve [flags]  (-h for the flags of each)")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "genkey":
		err = genkey(os.Args[2:])
	case "serve":
		err = serve(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q: genkey or serve", os.Args[1])
	}
	if err != nil {
		log.Fatal(err)
	}
}

// genkey writes a new ECDSA P-256 key: the private key (PKCS #8 PEM, mode
// 0600) for this app, the public key (PKIX PEM) for Gatehouse.
func genkey(args []string) error {
	fs := flag.NewFlagSet("genkey", flag.ExitOnError)
	keyFile := fs.String("key", "saas.key", "private key file to write (kept by the SaaS)")
	pubFile := fs.String("pub", "saas.pub", "public key file to write (given to Gatehouse: identity.delegate.public_key_files)")
	fs.Parse(args)
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	priv, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return err
	}
	if err := os.WriteFile(*keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: priv}), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(*pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
		return err
	}
	fmt.Printf("wrote %s (private, keep it) and %s (public, for Gatehouse)\n", *keyFile, *pubFile)
	return nil
}

// user is one of the app's own users.
type user struct {
	ID, Name, Email string
	Groups          []string
	pwHash          [32]byte // a real app uses a password hash such as argon2id or bcrypt
}

// app is the SaaS.
type app struct {
	id       string // identity.delegate.id in Gatehouse: the iss of the assertions
	issuer   string // Gatehouse's issuer: the aud of the assertions
	ttl      time.Duration
	signer   jose.Signer
	users    map[string]user // by login name
	loginTpl *template.Template
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:9000", "listen address")
	keyFile := fs.String("key", "saas.key", "private key file (from genkey)")
	issuer := fs.String("gatehouse", "http://127.0.0.1:8080", "Gatehouse's issuer: assertions are addressed to it and the browser is sent back to it")
	id := fs.String("id", "saas", "this app's id at Gatehouse (identity.delegate.id)")
	ttl := fs.Duration("assertion-ttl", 2*time.Minute, "lifetime of an assertion (Gatehouse accepts at most 5m)")
	var extra userFlag
	fs.Var(&extra, "user", "a user as name:password (repeatable); default alice:alice-password and bob:bob-password")
	fs.Parse(args)
	b, err := os.ReadFile(*keyFile)
	if err != nil {
		return err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return fmt.Errorf("%s: not a PKCS #8 PRIVATE KEY PEM file (make one with genkey)", *keyFile)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return err
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok || ec.Curve != elliptic.P256() {
		return fmt.Errorf("%s: not an ECDSA P-256 key", *keyFile)
	}
	// The kid is the RFC 7638 thumbprint of the public key: what
	// Gatehouse names a PEM key by, so a rotation (two keys registered)
	// finds the right one.
	sum, err := (&jose.JSONWebKey{Key: &ec.PublicKey}).Thumbprint(crypto.SHA256)
	if err != nil {
		return err
	}
	kid := base64.RawURLEncoding.EncodeToString(sum)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: ec, KeyID: kid}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return err
	}
	a := &app{id: *id, issuer: strings.TrimSuffix(*issuer, "/"), ttl: *ttl, signer: signer, users: map[string]user{}, loginTpl: template.Must(template.New("login").Parse(loginPage))}
	if len(extra) == 0 {
		extra = userFlag{"alice:alice-password", "bob:bob-password"}
	}
	for i, u := range extra {
		name, pw, _ := strings.Cut(u, ":")
		a.users[name] = user{ID: fmt.Sprintf("u-%d", 1001+i), Name: strings.ToUpper(name[:1]) + name[1:], Email: name + "@saas.example", Groups: []string{"staff"}, pwHash: sha256.Sum256([]byte(pw))}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", a.showLogin)
	mux.HandleFunc("POST /login", a.login)
	log.Printf("saaslogin: listening on http://%s (Gatehouse %s, id %s, kid %s)", *listen, a.issuer, a.id, kid)
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return srv.ListenAndServe()
}

// showLogin is the app's own login page, shown with Gatehouse's
// login_challenge, which the form carries on.
func (a *app) showLogin(w http.ResponseWriter, r *http.Request) {
	ch := r.URL.Query().Get("login_challenge")
	if ch == "" || len(ch) > 256 {
		http.Error(w, "This page signs you in to an app through Gatehouse: start from the app.", http.StatusBadRequest)
		return
	}
	a.render(w, http.StatusOK, ch, "")
}

func (a *app) render(w http.ResponseWriter, status int, challenge, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	a.loginTpl.Execute(w, map[string]string{"Challenge": challenge, "Error": msg})
}

// login checks the app's own password; on success it signs the
// assertion and sends the browser back to Gatehouse.
func (a *app) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	ch := r.PostForm.Get("login_challenge")
	if ch == "" || len(ch) > 256 {
		http.Error(w, "the form has no login_challenge: start from the app", http.StatusBadRequest)
		return
	}
	u, ok := a.users[r.PostForm.Get("username")]
	sum := sha256.Sum256([]byte(r.PostForm.Get("password")))
	if !ok || subtle.ConstantTimeCompare(sum[:], u.pwHash[:]) != 1 {
		a.render(w, http.StatusUnauthorized, ch, "Wrong username or password.")
		return
	}
	now := time.Now()
	claims := map[string]any{
		"iss": a.id, "aud": a.issuer, "login_challenge": ch,
		"sub": u.ID, "name": u.Name, "email": u.Email, "groups": u.Groups,
		"iat": now.Unix(), "exp": now.Add(a.ttl).Unix(),
		"auth_time": now.Unix(), // the password was checked just now
	}
	assertion, err := a.sign(claims)
	if err != nil {
		log.Printf("sign: %v", err)
		http.Error(w, "could not sign you in", http.StatusInternalServerError)
		return
	}
	http.Redirect(w, r, a.issuer+"/login/delegate/callback?assertion="+url.QueryEscape(assertion), http.StatusSeeOther)
}

func (a *app) sign(claims map[string]any) (string, error) {
	b, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	jws, err := a.signer.Sign(b)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// userFlag collects -user name:password.
type userFlag []string

func (f *userFlag) String() string { return strings.Join(*f, ",") }
func (f *userFlag) Set(v string) error {
	if name, pw, ok := strings.Cut(v, ":"); !ok || name == "" || pw == "" {
		return errors.New("want name:password")
	}
	*f = append(*f, v)
	return nil
}

const loginPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in to Acme Notes</title></head>
<body>
<h1>Acme Notes</h1>
<p>Sign in with your Acme Notes account.</p>
{{if .Error}}<p id="error" role="alert">{{.Error}}</p>{{end}}
<form id="saas-login" method="post" action="/login">
<input type="hidden" name="login_challenge" value="{{.Challenge}}">
<label>Username <input name="username" autocomplete="username" required></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Sign in</button>
</form>
</body></html>
`
