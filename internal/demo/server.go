package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/gatehouse-mcp/gatehouse/internal/mcpauthz"
	"github.com/gatehouse-mcp/gatehouse/rs"
	"github.com/gatehouse-mcp/gatehouse/rs/rsmcp"
)

// Scopes of the demo resource.
const (
	ScopeRead  = "notes:read"
	ScopeWrite = "notes:write"
)

// DefaultToolScopes are the scopes each tool needs.
var DefaultToolScopes = map[string][]string{
	"list_notes":  {ScopeRead},
	"read_note":   {ScopeRead},
	"add_note":    {ScopeWrite},
	"delete_note": {ScopeWrite},
}

// ClockSkew is the demo's tolerance for exp and nbf: the authorization
// server and the demo may run on different machines.
const ClockSkew = 5 * time.Second

// InspectorOrigins are the browser origins of MCP Inspector's web UI,
// allowed to call the demo cross-origin.
var InspectorOrigins = []string{"http://localhost:6274", "http://127.0.0.1:6274"}

// Options configures [NewHandler].
type Options struct {
	// Issuer is the authorization server's issuer. Required.
	Issuer string
	// Resource is the MCP endpoint's URL, such as
	// "http://127.0.0.1:8081/mcp": the audience tokens must carry and the
	// resource of the protected resource metadata. Its path is where the
	// handler serves MCP. Required.
	Resource string
	// Name is the resource_name in the metadata. Empty means "Gatehouse
	// demo notes".
	Name string
	// ToolScopes maps each tool to the scopes it needs; nil means
	// DefaultToolScopes.
	ToolScopes map[string][]string
	// Verifier checks tokens. Nil means an rs.JWTVerifier for Issuer and
	// Resource using HTTPClient.
	Verifier rs.Verifier
	// HTTPClient fetches the authorization server's metadata and keys.
	// Nil means rs's default.
	HTTPClient *http.Client
	// ListTools says which tools tools/list shows a token (see
	// rs.ListMode). Empty means rs.ListGrantable: a notes:read token sees
	// add_note and delete_note, and calling one starts step-up.
	ListTools rs.ListMode
	// AllowedOrigins are the browser origins allowed to call. Nil means
	// InspectorOrigins.
	AllowedOrigins []string
	// DPoPNonces, if set, makes DPoP proofs carry a nonce the server
	// issued (rs.DPoPOptions.Nonces). Nil requires none.
	DPoPNonces rs.DPoPNonces
	// Logger receives the server's log. Nil means no logging.
	Logger *slog.Logger
	// Now returns the current time. Nil means time.Now.
	Now func() time.Time
	// ToolCalled, when set, is told of every tools/call after it was
	// handled (gatehouse dev records them in the audit log, for the
	// account page's "last tool calls"). It must not block for long: the
	// call's response waits for it.
	ToolCalled func(ctx context.Context, c ToolCall)
}

// ToolCall is one tools/call the demo server handled.
type ToolCall struct {
	Time time.Time
	// Tool is the tool's name as the client sent it.
	Tool string
	// Subject and ClientID are the access token's sub and client_id.
	Subject, ClientID string
	// Resource is the demo server's resource URL.
	Resource string
	// Outcome is "ok", "tool_error" (the tool answered with isError) or
	// "error" (the call failed: unknown tool, bad arguments).
	Outcome string
}

// NewHandler returns the demo server: MCP at the path of opts.Resource,
// protected by rs with per-tool scopes, and the protected resource metadata
// at both well-known locations.
func NewHandler(opts Options) (http.Handler, error) {
	if opts.Issuer == "" || opts.Resource == "" {
		return nil, errors.New("demo: Issuer and Resource are required")
	}
	if opts.Name == "" {
		opts.Name = "Gatehouse demo notes"
	}
	if opts.ToolScopes == nil {
		opts.ToolScopes = DefaultToolScopes
	}
	if opts.AllowedOrigins == nil {
		opts.AllowedOrigins = InspectorOrigins
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	v := opts.Verifier
	if v == nil {
		jv, err := rs.NewJWTVerifier(rs.JWTOptions{
			Issuer:     opts.Issuer,
			Resource:   opts.Resource,
			HTTPClient: opts.HTTPClient,
			ClockSkew:  ClockSkew,
			Logger:     log,
			Now:        opts.Now,
		})
		if err != nil {
			return nil, err
		}
		v = jv
	}
	mcpPath, err := pathOf(opts.Resource)
	if err != nil {
		return nil, err
	}

	mux := http.NewServeMux()
	protect := &rs.Options{
		// The 401 challenge asks for notes:read only: notes:write comes
		// by step-up when a client first calls a tool that needs it (MCP
		// scope minimization).
		Scopes:         []string{ScopeRead},
		ToolScopes:     opts.ToolScopes,
		ListTools:      opts.ListTools,
		AllowedOrigins: opts.AllowedOrigins,
		// DPoP-bound tokens (RFC 9449) are checked on the server's clock;
		// one process, so the in-memory replay cache is enough.
		DPoP:   rs.DPoPOptions{Now: opts.Now, Nonces: opts.DPoPNonces},
		Logger: log,
	}
	metadataURL, err := rs.HandleMetadata(mux, rs.ResourceMetadata{
		Resource:             opts.Resource,
		AuthorizationServers: []string{opts.Issuer},
		// Every scope, so that a client knows notes:write exists before
		// the step-up challenge names it.
		ScopesSupported: protect.AllScopes(),
		ResourceName:    opts.Name,
	})
	if err != nil {
		return nil, err
	}
	protect.ResourceMetadataURL = metadataURL
	server := newMCPServer(newNotes(opts.Now))
	if opts.ToolCalled != nil {
		server.AddReceivingMiddleware(reportToolCalls(opts))
	}
	h := mcpHandler(server, log)
	mux.Handle(mcpPath, rsmcp.Protect(h, v, protect))
	if mcpPath != "/" {
		mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprintf(w, "Gatehouse demo MCP server.\n\nMCP endpoint (Streamable HTTP): %s\nProtected resource metadata: %s\nAuthorization server: %s\n",
				opts.Resource, metadataURL, opts.Issuer)
		})
	}
	return mux, nil
}

// statelessRevision is the first MCP revision without initialize and
// sessions (SEP-2575).
const statelessRevision = "2026-07-28"

// mcpHandler serves server over Streamable HTTP in every MCP revision the
// SDK speaks. The SDK answers 2026-07-28 only in stateless mode (a
// stateful handler refuses it with -32022), and sessions, which the older
// revisions need, only in stateful mode; so a request naming 2026-07-28 or
// later in its Mcp-Protocol-Version header, without a session id, goes to
// a stateless handler and every other request to the stateful one. Both
// serve the same server, and so the same notes: a tool finds its user in
// the request's token (subject), not in a session.
func mcpHandler(server *mcp.Server, log *slog.Logger) http.Handler {
	get := func(*http.Request) *mcp.Server { return server }
	stateful := mcp.NewStreamableHTTPHandler(get, &mcp.StreamableHTTPOptions{
		Logger:         log,
		SessionTimeout: 30 * time.Minute,
	})
	stateless := mcp.NewStreamableHTTPHandler(get, &mcp.StreamableHTTPOptions{
		Logger:    log,
		Stateless: true,
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Revisions are dates, so they compare as strings.
		if r.Header.Get("Mcp-Protocol-Version") >= statelessRevision && r.Header.Get("Mcp-Session-Id") == "" {
			stateless.ServeHTTP(w, r)
			return
		}
		stateful.ServeHTTP(w, r)
	})
}

// pathOf returns the ServeMux pattern for the resource's path.
func pathOf(resource string) (string, error) {
	p, err := rs.MetadataPath(resource)
	if err != nil {
		return "", err
	}
	const prefix = "/.well-known/oauth-protected-resource"
	path := p[len(prefix):]
	if path == "" {
		path = "/"
	}
	return path, nil
}

// Tool inputs and outputs.
type (
	listIn  struct{}
	listOut struct {
		Notes []Note `json:"notes" jsonschema:"your notes, without their text"`
	}
	idIn struct {
		ID string `json:"id" jsonschema:"the id of the note"`
	}
	addIn struct {
		Title string `json:"title" jsonschema:"the note's title"`
		Text  string `json:"text,omitempty" jsonschema:"the note's text"`
	}
	deleteOut struct {
		Deleted string `json:"deleted" jsonschema:"the id of the deleted note"`
	}
)

// newMCPServer returns the MCP server with the four tools over store.
func newMCPServer(store *notes) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "gatehouse-demo-notes", Title: "Gatehouse demo notes", Version: "0.1.0"}, &mcp.ServerOptions{
		Instructions: "A notepad per user. list_notes and read_note need notes:read; add_note and delete_note need notes:write.",
	})
	readOnly := &mcp.ToolAnnotations{ReadOnlyHint: true}
	mcp.AddTool(s, &mcp.Tool{Name: "list_notes", Description: "List your notes (id, title, creation time). Needs notes:read.", Annotations: readOnly},
		func(ctx context.Context, req *mcp.CallToolRequest, _ listIn) (*mcp.CallToolResult, listOut, error) {
			user, err := subject(req)
			if err != nil {
				return nil, listOut{}, err
			}
			return nil, listOut{Notes: store.list(user)}, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "read_note", Description: "Read one of your notes. Needs notes:read.", Annotations: readOnly},
		func(ctx context.Context, req *mcp.CallToolRequest, in idIn) (*mcp.CallToolResult, Note, error) {
			user, err := subject(req)
			if err != nil {
				return nil, Note{}, err
			}
			n, err := store.get(user, in.ID)
			return nil, n, err
		})
	mcp.AddTool(s, &mcp.Tool{Name: "add_note", Description: "Add a note. Needs notes:write."},
		func(ctx context.Context, req *mcp.CallToolRequest, in addIn) (*mcp.CallToolResult, Note, error) {
			user, err := subject(req)
			if err != nil {
				return nil, Note{}, err
			}
			n, err := store.add(user, in.Title, in.Text)
			return nil, n, err
		})
	destructive := true
	mcp.AddTool(s, &mcp.Tool{Name: "delete_note", Description: "Delete one of your notes. Needs notes:write.", Annotations: &mcp.ToolAnnotations{DestructiveHint: &destructive}},
		func(ctx context.Context, req *mcp.CallToolRequest, in idIn) (*mcp.CallToolResult, deleteOut, error) {
			user, err := subject(req)
			if err != nil {
				return nil, deleteOut{}, err
			}
			if err := store.remove(user, in.ID); err != nil {
				return nil, deleteOut{}, err
			}
			return nil, deleteOut{Deleted: in.ID}, nil
		})
	return s
}

// reportToolCalls is middleware telling opts.ToolCalled of each
// tools/call once it was handled.
func reportToolCalls(opts Options) mcp.Middleware {
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			res, err := next(ctx, method, req)
			call, ok := req.(*mcp.CallToolRequest)
			if method != "tools/call" || !ok || call.Params == nil {
				return res, err
			}
			// The name is the client's text and reaches the user's
			// account page: clipped as the gateway clips it.
			c := ToolCall{Time: opts.Now(), Tool: mcpauthz.Clip(call.Params.Name), Resource: opts.Resource, Outcome: "ok"}
			if ex := call.Extra; ex != nil && ex.TokenInfo != nil {
				c.Subject = ex.TokenInfo.UserID
				c.ClientID, _ = ex.TokenInfo.Extra[rsmcp.ExtraClientID].(string)
			}
			if r, isResult := res.(*mcp.CallToolResult); err != nil {
				c.Outcome = "error"
			} else if isResult && r != nil && r.IsError {
				c.Outcome = "tool_error"
			}
			opts.ToolCalled(ctx, c)
			return res, err
		}
	}
}

// toolRan, when set (by tests), is called whenever a tool handler starts.
var toolRan func(tool string)

// subject returns the user the request acts for: the verified token's
// subject, which rsmcp put into the SDK's TokenInfo.
func subject(req *mcp.CallToolRequest) (string, error) {
	if toolRan != nil && req.Params != nil {
		toolRan(req.Params.Name)
	}
	if req.Extra == nil || req.Extra.TokenInfo == nil || req.Extra.TokenInfo.UserID == "" {
		// Unreachable behind rs.RequireBearer; refuse rather than share
		// one anonymous notepad.
		return "", errors.New("no authenticated user")
	}
	return req.Extra.TokenInfo.UserID, nil
}
