// Package gateway puts OAuth 2.1 and per-tool policy in front of MCP
// servers that have no authorization of their own: an MCP reverse proxy.
//
// Each [Route] is one protected resource with its own URL (the audience of
// its tokens), its own protected resource metadata (RFC 9728) and its own
// scopes, in front of one upstream MCP server:
//
//   - Streamable HTTP: requests are forwarded with a header allowlist —
//     never the client's Authorization or Cookie — plus the route's own
//     upstream credential; JSON responses are relayed whole, event streams
//     event by event with a flush after each. The upstream's session id is
//     mapped to one the gateway issues.
//   - stdio: a process per MCP session, spoken to as a raw pipe of
//     newline-delimited JSON-RPC messages (so the upstream's capabilities
//     and methods pass unchanged) and served as Streamable HTTP. Processes
//     are limited in number, get only the environment configured for
//     them, and are stopped when their session ends or idles; their
//     standard error goes to the log with the route's name.
//
// Every session id is 256 random bits, issued by the gateway and bound to
// the subject of the token that opened the session: another user
// presenting it is refused (MCP security best practices, session
// hijacking).
//
// Tokens are checked by package rs ([rs.RequireBearer] with an
// [rs.JWTVerifier] per route): 401 challenges, the baseline scopes,
// Origin validation and CORS. The gateway adds what rs cannot express:
// scopes per tool, per prompt and per resource URI with prefix patterns
// and a default for unlisted names (a scope set, or deny), 403
// insufficient_scope step-up challenges, tools/list filtered as the
// route's ListTools says (by default hiding only the tools a deny rule
// refuses, so that a listed tool can start a step-up), and prompts/list
// and resources/list filtered to what the token may use. The policy, the
// challenges and the list and event-stream filtering are package
// mcpauthz's, the same code as rs's, and so is the check that the
// Mcp-Method and Mcp-Name headers (SEP-2243) agree with the body, which
// refuses a mismatch, or a 2026-07-28 request without them, with 400 and
// JSON-RPC HeaderMismatch (-32020) before the policy runs. It
// also checks the Host header against the route's own host (DNS
// rebinding), caps request bodies and upstream messages, times out
// upstream requests with a JSON-RPC error rather than hanging, bounds the
// messages of a JSON-RPC batch, and exports Prometheus metrics per route
// and decision.
//
// Every tool call has its audit record (type [AuditToolCall]) committed
// before or as it is forwarded, and before anything of its answer reaches
// the client, or before it is answered when the policy refuses it; its
// outcome ([AuditToolResult]) follows. "As" only while the store's last
// write succeeded: otherwise the commit comes first (audit.go says
// exactly what is guaranteed). Records are written in batches, one
// transaction per flush. When the store cannot keep up, calls wait, and
// beyond a bounded queue they are refused with a JSON-RPC error
// ([CodeAuditUnavailable]); a record is never dropped.
//
// A misbehaving upstream process — one that crashes, hangs, floods its
// output or writes what is not JSON — costs its own session only.
//
// The stateless MCP protocol (2026-07-28: no initialize, no session)
// works on both kinds: on a stdio route the gateway keeps a process per
// subject for that subject's requests without a session, speaking
// 2026-07-28 to it or, for a server of an older revision, initializing it
// and bridging (stateless.go).
//
// Not supported: resumption of stdio event streams (Last-Event-ID), and
// OAuth towards upstreams (the upstream credential is static).
//
// Dependencies: the gateway uses rs for tokens and metadata, storage for
// the audit event type, and the Prometheus client. It must not import the
// authorization server (internal/as) or a storage backend; the command
// wires those.
package gateway
