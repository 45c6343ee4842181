package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Problem is one thing wrong with a configuration and where it is: a line
// of the config file, an environment variable or a flag.
type Problem struct {
	// Source is where the value came from: the config file's path, or
	// "environment variable GATEHOUSE_…", or "flag --…". Empty when the
	// problem is with a default or with the configuration as a whole.
	Source string
	// Line and Column locate the problem in the config file (1-based); 0
	// when it has no place there (a missing key, a value from elsewhere).
	Line, Column int
	// Path is the key path, such as gateway.routes[1].idle_ttl.
	Path string
	// Message says what is wrong; it names the key.
	Message string

	// fatal marks a file that could not be read or parsed at all.
	fatal bool
	// refused marks a value Load refused (the default stays in its place).
	refused bool
	// cause is the error found, for errors.Is (fs.ErrNotExist).
	cause error
}

// Unwrap returns the error the problem was made from, if any.
func (p Problem) Unwrap() error { return p.cause }

// Error is "source:line:column: message", leaving out what is unknown.
func (p Problem) Error() string {
	switch {
	case p.Source != "" && p.Line > 0 && p.Column > 0:
		return fmt.Sprintf("%s:%d:%d: %s", p.Source, p.Line, p.Column, p.Message)
	case p.Source != "" && p.Line > 0:
		return fmt.Sprintf("%s:%d: %s", p.Source, p.Line, p.Message)
	case p.Source != "":
		return p.Source + ": " + p.Message
	}
	return p.Message
}

// Problems is every problem found with a configuration, in file order.
// Load, Resolve and Validate return it as their error; Collect merges
// them.
type Problems []Problem

// Error lists the problems one per line.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the problems, so that errors.Is and errors.As see their
// causes.
func (ps Problems) Unwrap() []error {
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = p
	}
	return errs
}

// Fatal reports whether the config file could not be read or parsed at
// all: the configuration then holds only defaults and the environment,
// and validating it would only add noise.
func (ps Problems) Fatal() bool {
	return slices.ContainsFunc(ps, func(p Problem) bool { return p.fatal })
}

// err is ps as an error: nil when empty.
func (ps Problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return ps
}

// Collect merges the errors of Load, Resolve and Validate (nil ones are
// skipped) into one list: problems located in a file first, by line, then
// the rest in the order found. A Validate problem about a key whose value
// Load already refused is dropped: it would only repeat that refusal.
func Collect(errs ...error) Problems {
	var ps Problems
	var refused []string
	for _, err := range errs {
		var got Problems
		switch {
		case err == nil:
			continue
		case errors.As(err, &got):
		default:
			got = Problems{{Message: err.Error()}}
		}
		for _, p := range got {
			if p.refused {
				refused = append(refused, p.Path)
			}
		}
		ps = append(ps, got...)
	}
	ps = slices.DeleteFunc(ps, func(p Problem) bool {
		// A problem about a refused value, or about the key holding it
		// ("upstream needs url" once upstream.url was refused), repeats it.
		return !p.refused && slices.ContainsFunc(refused, func(r string) bool {
			return within(p.Path, r) || (strings.ContainsAny(p.Path, ".[") && within(r, p.Path))
		})
	})
	slices.SortStableFunc(ps, func(a, b Problem) int {
		switch {
		case a.Line > 0 && b.Line > 0:
			return cmpInts(a.Line, a.Column, b.Line, b.Column)
		case a.Line > 0:
			return -1
		case b.Line > 0:
			return 1
		}
		return 0
	})
	return ps
}

func cmpInts(l1, c1, l2, c2 int) int {
	if l1 != l2 {
		return l1 - l2
	}
	return c1 - c2
}

// within reports whether the key path p is path r or below it.
func within(p, r string) bool {
	if r == "" || p == "" {
		return false
	}
	return p == r || strings.HasPrefix(p, r+".") || strings.HasPrefix(p, r+"[")
}

// keyError is a problem with the value at a key path, found by Validate or
// Resolve; locate turns it into a Problem.
type keyError struct {
	path string
	err  error
}

func (e *keyError) Error() string { return e.err.Error() }
func (e *keyError) Unwrap() error { return e.err }

// keyErrorf returns a keyError for path; format is fmt.Errorf's.
func keyErrorf(path, format string, args ...any) error {
	return &keyError{path: path, err: fmt.Errorf(format, args...)}
}

// sources remembers where each key's value came from, so that a problem
// found after loading can name its line, environment variable or flag.
// Config and Gateway share one through a pointer, set by Load.
type sources struct {
	file string
	pos  map[string][2]int // key path → line and column of the key in the file
	from map[string]string // key path → "environment variable …" or "flag …"
}

// locate turns the errors of a check into Problems placed at the source of
// each key: the flag or environment variable that set it, else its line in
// the file, else the line of the nearest enclosing key, else the file.
//
// refused marks the problems as values that could not be used (a file
// that could not be read), so that Collect drops what Validate says about
// the key in consequence ("… is required").
func (s *sources) locate(errs []error, refused bool) Problems {
	var ps Problems
	for _, err := range errs {
		p := Problem{Message: err.Error(), refused: refused, cause: err}
		var ke *keyError
		if errors.As(err, &ke) {
			p.Path = ke.path
		}
		if s != nil {
			p.Source, p.Line, p.Column = s.where(p.Path)
		}
		ps = append(ps, p)
	}
	return ps
}

// where is the source of the value at path.
func (s *sources) where(path string) (source string, line, col int) {
	if by, ok := s.from[path]; ok {
		return by, 0, 0
	}
	for p := path; p != ""; p = parentPath(p) {
		if lc, ok := s.pos[p]; ok {
			return s.file, lc[0], lc[1]
		}
	}
	return s.file, 0, 0
}

// parentPath is the key path above p: gateway.routes[1].url →
// gateway.routes[1] → gateway.routes → gateway → "".
func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

// SetFrom records that the value at the key path (such as "listen") was
// set by origin (such as "flag --listen") after Load, so that a problem
// with it names the flag rather than the file's line.
func (c *Config) SetFrom(path, origin string) {
	if c.src == nil {
		c.src = &sources{}
		c.Gateway.src = c.src
	}
	if c.src.from == nil {
		c.src.from = map[string]string{}
	}
	c.src.from[path] = origin
}
