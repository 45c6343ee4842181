// Package openapi holds the request-building rules the gateway needs to turn
// OpenAPI operations into MCP tools (issue 15 item 1): tool names, path
// templating and query serialisation. It imports only the standard library
// and parses no OpenAPI document; the route that will read documents calls
// these functions with what it found there.
//
// Each rule exists for a reason that matters to an API behind the gateway:
//
//   - Tool names ([ToolName], [Namer]). Most real documents leave operationId
//     out on most operations, so a name is derived from the method and path
//     instead of skipping the operation. Names follow the MCP specification's
//     tool-name guidance (ASCII letters, digits, "_", "-", "."), capped at 64
//     characters rather than the specification's 128 because the model APIs
//     behind MCP clients reject longer function names. A long name is cut and
//     given a hash of the whole name, so two long names that share a prefix
//     stay apart and a name does not change between restarts. A [Namer] keeps
//     names unique within one route, since tools/call finds a tool by name.
//
//   - Path templating ([ExpandPath]). A tool argument is untrusted text from
//     a model; it must never change which resource or host the request
//     reaches. Every value is percent-encoded as exactly one path segment
//     ("/", "?", "#", "%" and every byte outside RFC 3986's unreserved set),
//     so the request has the template's segments and nothing else. The values
//     ".", ".." and "" are refused because no encoding makes them safe: URL
//     parsers, proxies and mock servers resolve "%2E%2E" as "..", and an
//     empty segment merges two segments into "//".
//
//   - Query serialisation ([EncodeQuery]). OpenAPI 3 query parameters default
//     to style form with explode true; arrays and objects are spelled
//     differently with explode false, and a parameter declared with
//     content application/json is sent as JSON text. Values are
//     percent-encoded so that a "," or "&" inside a value cannot be read as a
//     separator, and the API receives exactly the values the tool call held.
package openapi
