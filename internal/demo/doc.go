// Package demo is the notes MCP server that `gatehouse dev` serves next to
// the authorization server: a small, real MCP server (official Go SDK,
// Streamable HTTP) protected by package rs, to try the whole OAuth flow
// with any MCP client, such as MCP Inspector.
//
// Each user — the subject of the access token — has their own notes, kept
// in memory. list_notes and read_note need the scope notes:read (also the
// baseline every request needs); add_note and delete_note need notes:write,
// which a client gets by step-up when it first calls one of them.
//
// It speaks MCP 2026-07-28 statelessly (server/discover, no initialize and
// no session: a request naming that revision in Mcp-Protocol-Version
// without a session id goes to a stateless SDK handler) and the earlier
// revisions 2025-11-25, 2025-06-18 and 2025-03-26 with sessions, bound to
// the token's subject. The notes are the same either way: a tool finds
// its user in the request's token.
//
// It imports rs, rs/rsmcp and the MCP SDK, and nothing else of this module:
// it is what a third-party MCP server using Gatehouse looks like.
package demo
