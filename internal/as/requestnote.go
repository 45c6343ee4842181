package as

import (
	"context"
	"sync"

	"github.com/gatehouse-mcp/gatehouse/internal/oauth"
)

// RequestNote records what a request log names about one request that its
// response does not show: the client the request was for and the OAuth
// error code it ended with. [WithRequestNote] puts one into a request's
// context, the server fills it in, and the caller reads it once the
// response is written (gatehouse dev logs a line per request from it). It
// holds no secret: client ids and error codes are public. Safe for
// concurrent use.
type RequestNote struct {
	mu       sync.Mutex
	clientID string
	errCode  string
}

type noteKey struct{}

// WithRequestNote returns ctx carrying a new RequestNote, and the note.
func WithRequestNote(ctx context.Context) (context.Context, *RequestNote) {
	n := &RequestNote{}
	return context.WithValue(ctx, noteKey{}, n), n
}

// ClientID returns the client the request was for: the first client the
// server looked up or audited for it, "" if none.
func (n *RequestNote) ClientID() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.clientID
}

// Error returns the OAuth error code the request ended with, "" if none.
func (n *RequestNote) Error() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.errCode
}

// noteClient records the request's client unless one is recorded already:
// the first one is the client the request named.
func noteClient(ctx context.Context, id string) {
	if n, ok := ctx.Value(noteKey{}).(*RequestNote); ok && id != "" {
		n.mu.Lock()
		if n.clientID == "" {
			n.clientID = id
		}
		n.mu.Unlock()
	}
}

// noteError records the OAuth error code the request ends with.
func noteError(ctx context.Context, code oauth.Code) {
	if n, ok := ctx.Value(noteKey{}).(*RequestNote); ok {
		n.mu.Lock()
		n.errCode = string(code)
		n.mu.Unlock()
	}
}
