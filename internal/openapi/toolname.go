package openapi

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// MaxToolNameLen is the longest tool name this package produces.
//
// The MCP specification (2025-11-25, server/tools, "Tool names") says tool
// names SHOULD be 1 to 128 characters of ASCII letters, digits, "_", "-" and
// ".", case-sensitive and unique within a server. We keep its character set
// but stop at 64: OpenAI-style function names and several MCP clients
// (which also prefix the server's name) refuse names longer than 64.
const MaxToolNameLen = 64

// hashLen is the number of hex digits of SHA-256 appended to a cut name:
// 32 bits keep accidental collisions between long names of one route
// unlikely, and any that remain are resolved by [Namer].
const hashLen = 8

// validToolNameChar reports whether c is allowed in a tool name by the MCP
// specification's guidance: ASCII letters, digits, "_", "-" and ".".
func validToolNameChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '_' || c == '-' || c == '.'
}

// CheckToolName returns an error unless name is 1 to [MaxToolNameLen]
// characters, each an ASCII letter, digit, "_", "-" or ".". It is meant for
// names an operator sets by hand, which are used as given, not rewritten.
func CheckToolName(name string) error {
	if name == "" {
		return fmt.Errorf("tool name is empty")
	}
	if len(name) > MaxToolNameLen {
		return fmt.Errorf("tool name %q is %d characters, more than %d", name, len(name), MaxToolNameLen)
	}
	for i := 0; i < len(name); i++ {
		if !validToolNameChar(name[i]) {
			return fmt.Errorf("tool name %q has %q at byte %d; only ASCII letters, digits, '_', '-' and '.' are allowed", name, name[i], i)
		}
	}
	return nil
}

// ToolName returns the MCP tool name of the operation method path: its
// operationID when that has at least one allowed character, else a name
// derived from the lower-cased method and the path ("GET",
// "/repos/{owner}/{repo}/pulls" → "get_repos_owner_repo_pulls"). Every run
// of characters outside the allowed set becomes one "_", leading and
// trailing "_" are dropped, and a result longer than [MaxToolNameLen] is cut
// and ends with "_" and 8 hex digits of the SHA-256 of the whole sanitised
// name, so the result is deterministic. ToolName does not make names
// unique; [Namer] does.
func ToolName(method, path, operationID string) string {
	if name := sanitize(operationID); name != "" {
		return shorten(name, MaxToolNameLen)
	}
	name := sanitize(strings.ToLower(method) + "_" + path)
	if name == "" {
		// Only reachable with an empty method and a path of symbols; a
		// name is still required.
		name = "operation"
	}
	return shorten(name, MaxToolNameLen)
}

// sanitize replaces each run of disallowed bytes with one "_" and trims "_"
// from both ends. Bytes, not runes: a non-ASCII letter is disallowed too.
func sanitize(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	pendingUnderscore := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !validToolNameChar(c) || c == '_' {
			pendingUnderscore = true
			continue
		}
		if pendingUnderscore && b.Len() > 0 {
			b.WriteByte('_')
		}
		pendingUnderscore = false
		b.WriteByte(c)
	}
	return b.String()
}

// shorten returns name if it fits in max bytes, else its first bytes
// followed by "_" and the hash of the whole name, max bytes in all.
func shorten(name string, max int) string {
	if len(name) <= max {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	suffix := "_" + hex.EncodeToString(sum[:])[:hashLen]
	return name[:max-len(suffix)] + suffix
}

// Namer hands out tool names that are unique within one route. Give it the
// operations in a stable order (the document's path order, then method) so
// that the numeric suffixes, and therefore the names, stay the same across
// restarts. The zero value is ready to use; a Namer is not safe for
// concurrent use.
type Namer struct {
	used map[string]bool
}

// Claim reserves name exactly as given, as for a per-operation override from
// configuration. It returns an error if name breaks [CheckToolName] or is
// already taken. Claim overrides before calling [Namer.Name] so that derived
// names step around them.
func (n *Namer) Claim(name string) error {
	if err := CheckToolName(name); err != nil {
		return err
	}
	if n.used[name] {
		return fmt.Errorf("tool name %q is already used in this route", name)
	}
	n.mark(name)
	return nil
}

// Name returns [ToolName] for the operation, or, when that is taken, the
// same name with the lowest free suffix "_2", "_3", … (the base is cut, and
// given a hash, to keep the whole within [MaxToolNameLen]).
func (n *Namer) Name(method, path, operationID string) string {
	base := ToolName(method, path, operationID)
	if !n.used[base] {
		n.mark(base)
		return base
	}
	for i := 2; ; i++ {
		suffix := "_" + strconv.Itoa(i)
		candidate := shorten(base, MaxToolNameLen-len(suffix)) + suffix
		if !n.used[candidate] {
			n.mark(candidate)
			return candidate
		}
	}
}

func (n *Namer) mark(name string) {
	if n.used == nil {
		n.used = make(map[string]bool)
	}
	n.used[name] = true
}
