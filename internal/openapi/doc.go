// Package openapi turns the operations of an OpenAPI 3.0 or 3.1 document
// into MCP tools, and a tool call into the HTTP request to the API (issue
// 15 items 1 and 2, library part): [Load] parses a document,
// [Document.Tools] makes the tools, [Tool.Request] builds a call's request
// and [Tool.Result] reads the response.
//
// # Parser
//
// Documents are parsed with github.com/pb33f/libopenapi, not
// github.com/getkin/kin-openapi. Both read OpenAPI 3.0 and 3.1, JSON and
// YAML, and resolve local $refs; the choice was made on the largest real
// document we must support, GitHub's REST API description (13 MB of JSON,
// 1,223 operations), against issue 15's budget of 2 s and 300 MB for
// converting it. kin-openapi needed 2.7 to 3.1 s just to load it (its
// decoder re-reads every nested schema, and it tries YAML first), while
// libopenapi loads it in about 0.6 s and the whole conversion takes about
// 0.6 to 0.9 s at a peak of 270 to 290 MB. libopenapi also keeps the
// document's order of paths, operations and properties, so tool lists and
// schemas are stable from run to run. It is configured never to read a
// file or URL. Schemas are converted from the YAML nodes libopenapi keeps,
// not from its schema objects, whose construction for every schema of
// GitHub's description cost more memory than the budget left.
//
// # Rules
//
// Each rule exists for a reason that matters to an API behind the gateway:
//
//   - References. Only local references ("#/...") are followed. A $ref to
//     another file or a URL is refused by [Load] with its line, as is a
//     local $ref that does not resolve: nothing outside the document is
//     ever read.
//
//   - Schemas. Tool schemas are JSON Schema 2020-12, as MCP requires. An
//     OpenAPI 3.0 schema is converted: nullable becomes a "null" type (and
//     a null enum value), or, on a schema without a type (GitHub writes
//     it next to allOf and oneOf), an anyOf with {"type": "null"}; a boolean exclusiveMinimum/exclusiveMaximum
//     becomes the bound itself, example, discriminator, xml and extensions
//     are dropped. A pattern that Go's regexp cannot compile (ECMA-262
//     lookaround, backreferences) is dropped rather than failing the
//     operation; the API still checks it. A recursive schema becomes a
//     "$defs" entry at the tool schema's root and a "$ref" to it where the
//     recursion closes, so schemas stay finite without losing the
//     recursion; inline nesting deeper than 48 levels is cut to {}.
//     Referenced schemas are otherwise inlined, and each is converted once
//     per document.
//
//   - Tools ([Document.Tools]). Each selected operation becomes a tool
//     whose input schema is an object with one property per path, query
//     and header parameter (by its name) and "body" for a JSON request
//     body, with no other properties allowed. Operations are skipped, with
//     the reason in [Skipped], when they cannot be called faithfully: a
//     request body with no JSON media type (multipart, octet-stream,
//     text), a required cookie parameter, a required header that a tool
//     may not set (Host, Cookie, hop-by-hop headers, Content-Length), a
//     required query parameter in a style other than form, two parameters
//     with one name, or a schema that does not resolve. Optional
//     parameters of those kinds are left out of the tool instead. Header
//     parameters named Accept, Content-Type or Authorization are ignored,
//     as OpenAPI says.
//
//   - Tool names ([ToolName], [Namer]). Most real documents leave
//     operationId out on most operations, so a name is derived from the
//     method and path instead of skipping the operation. Names use ASCII
//     letters, digits, "_", "-" and "." (the MCP specification's set),
//     capped at 64 characters rather than the specification's 128 because
//     the model APIs behind MCP clients reject longer function names. A
//     long name is cut and given a hash of the whole name, so two long
//     names that share a prefix stay apart and a name does not change
//     between restarts. A [Namer] keeps names unique within one route,
//     since tools/call finds a tool by name.
//
//   - Scopes ([ScopeRules]). An operation's OAuth2 or OpenID Connect
//     security requirement gives its scopes when the document has them;
//     most real documents declare only API keys, so rules by operation,
//     tag and method (read for GET/HEAD/OPTIONS, write otherwise) apply
//     too.
//
//   - Arguments ([Tool.Request]). Arguments are validated against the
//     input schema (github.com/google/jsonschema-go) before any request,
//     and an [ArgError] names the argument at fault, so an invalid call
//     never reaches the API. null for an optional parameter means the
//     parameter is left out.
//
//   - Path templating ([ExpandPath]). A tool argument is untrusted text from
//     a model; it must never change which resource or host the request
//     reaches. Every value is percent-encoded as exactly one path segment
//     ("/", "?", "#", "%" and every byte outside RFC 3986's unreserved set),
//     so the request has the template's segments and nothing else. The values
//     ".", ".." and "" are refused because no encoding makes them safe: URL
//     parsers, proxies and mock servers resolve "%2E%2E" as "..", and an
//     empty segment merges two segments into "//". The request goes to the
//     route's base URL, whose path is a prefix; the document's servers are
//     ignored.
//
//   - Query serialisation ([EncodeQuery]). OpenAPI 3 query parameters default
//     to style form with explode true; arrays and objects are spelled
//     differently with explode false, and a parameter declared with
//     content application/json is sent as JSON text. Values are
//     percent-encoded so that a "," or "&" inside a value cannot be read as a
//     separator, and the API receives exactly the values the tool call held.
//
//   - Results ([Tool.Result]). MCP's structuredContent must be a JSON
//     object. A 2xx JSON object is both the text content and the
//     structured content. A JSON array is text, and is also structured
//     content as {"items": [...]} when the tool's output schema says so
//     (the document declares an array response); a scalar is text only.
//     A non-2xx response is an error result that starts with the status
//     ("HTTP 404 Not Found: ") and a bounded excerpt of the body. Bodies
//     are read up to a caller's cap, and a cut body says so.
package openapi
