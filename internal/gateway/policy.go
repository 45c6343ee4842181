package gateway

import "github.com/gatehouse-mcp/gatehouse/internal/mcpauthz"

// Rules maps names (tool names, prompt names, resource URIs) to the scopes
// using them needs, on top of a route's baseline scopes (see
// [mcpauthz.Rules], whose policy the gateway and package rs share): a key
// ending in "*" is a prefix, "*" alone matches everything, an exact key
// wins over prefixes and a longer prefix over a shorter one.
type Rules = mcpauthz.Rules
