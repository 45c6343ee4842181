package oauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// Code is an OAuth error code as it appears on the wire.
type Code string

// Error codes from RFC 6749 §4.1.2.1 and §5.2, RFC 6750 §3.1, RFC 7591
// §3.2.2, RFC 8707 §2 and RFC 7009 §2.2.1.
const (
	InvalidRequest          Code = "invalid_request"
	InvalidClient           Code = "invalid_client"
	InvalidGrant            Code = "invalid_grant"
	UnauthorizedClient      Code = "unauthorized_client"
	UnsupportedGrantType    Code = "unsupported_grant_type"
	InvalidScope            Code = "invalid_scope"
	AccessDenied            Code = "access_denied"
	UnsupportedResponseType Code = "unsupported_response_type"
	ServerError             Code = "server_error"
	TemporarilyUnavailable  Code = "temporarily_unavailable"
	InvalidTarget           Code = "invalid_target"
	InvalidToken            Code = "invalid_token"
	InsufficientScope       Code = "insufficient_scope"
	UnsupportedTokenType    Code = "unsupported_token_type"
	InvalidRedirectURI      Code = "invalid_redirect_uri"
	InvalidClientMetadata   Code = "invalid_client_metadata"
	LoginRequired           Code = "login_required"
	ConsentRequired         Code = "consent_required"
	SlowDown                Code = "slow_down"
	// InvalidDPoPProof and UseDPoPNonce are RFC 9449's (§5, §8, §9).
	InvalidDPoPProof Code = "invalid_dpop_proof"
	UseDPoPNonce     Code = "use_dpop_nonce"
)

// Error is an OAuth error response. Code and Description are sent to the
// client; Cause is for the log only and is never serialized.
type Error struct {
	Code        Code
	Description string
	URI         string
	// Status is the HTTP status; zero means 400 (500 for server_error).
	Status int
	// Header holds extra response headers, e.g. WWW-Authenticate or Retry-After.
	Header http.Header
	// Cause is the underlying error. It is logged, never sent.
	Cause error
}

// New returns a fresh error with code and a description formatted from
// format and args. Descriptions must never contain secrets.
func New(code Code, format string, args ...any) *Error {
	d := format
	if len(args) > 0 {
		d = fmt.Sprintf(format, args...)
	}
	return &Error{Code: code, Description: d}
}

// Error implements error. It includes the cause, so use it for logs only.
func (e *Error) Error() string {
	s := string(e.Code)
	if e.Description != "" {
		s += ": " + e.Description
	}
	if e.Cause != nil {
		s += " (" + e.Cause.Error() + ")"
	}
	return s
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Cause }

// WithStatus returns e with the HTTP status set.
func (e *Error) WithStatus(status int) *Error { e.Status = status; return e }

// WithCause returns e with the cause set.
func (e *Error) WithCause(err error) *Error { e.Cause = err; return e }

// WithHeader returns e with a response header added.
func (e *Error) WithHeader(key, value string) *Error {
	if e.Header == nil {
		e.Header = http.Header{}
	}
	e.Header.Add(key, value)
	return e
}

// HTTPStatus returns the status the error is sent with.
func (e *Error) HTTPStatus() int {
	switch {
	case e.Status != 0:
		return e.Status
	case e.Code == ServerError:
		return http.StatusInternalServerError
	case e.Code == TemporarilyUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusBadRequest
}

// Internal returns a server_error that hides err from the client.
func Internal(err error) *Error {
	return &Error{Code: ServerError, Description: "the server hit an internal error; try again later", Cause: err}
}

// As returns err as an *Error, converting anything else into an internal
// server_error that hides its text.
func As(err error) *Error {
	var oe *Error
	if errors.As(err, &oe) {
		return oe
	}
	return Internal(err)
}

// body is the JSON error response of RFC 6749 §5.2.
type body struct {
	Error       Code   `json:"error"`
	Description string `json:"error_description,omitempty"`
	URI         string `json:"error_uri,omitempty"`
}

// WriteJSON writes err as an RFC 6749 §5.2 JSON error response with
// Cache-Control: no-store. The description passes through SafeText: §5.2
// allows only printable ASCII without '"' and '\' in it.
func WriteJSON(w http.ResponseWriter, err error) {
	oe := As(err)
	h := w.Header()
	for k, vs := range oe.Header {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(oe.HTTPStatus())
	b, _ := json.Marshal(body{Error: oe.Code, Description: SafeText(oe.Description), URI: oe.URI})
	w.Write(append(b, '\n'))
}
