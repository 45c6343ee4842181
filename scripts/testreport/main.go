// Command testreport reads `go test -json` events on stdin and prints what a
// plain `go test` prints (the ok / FAIL / ? line of each package, the full
// output of every failed test, build errors), plus the reason of every
// skipped test, and finally the counts of tests (subtests included).
//
// scripts/test.sh pipes its `go test -json` runs through it:
//
//	go test -json ./... 2>&1 | go run ./scripts/testreport -counts FILE [-fail-skips -allowlist FILE]
//
// It exits 1 when a test or a package failed (a build failure or a failure
// outside any test counts as one failed test of that package), and writes
// "PASSED FAILED SKIPPED" to the -counts file. Lines that are not JSON are
// copied through.
//
// With -fail-skips (scripts/test.sh sets it under CI=true) a skipped test
// counts as failed unless it matches a line of the -allowlist file:
//
//	# comment
//	PACKAGE TEST-PATTERN  # reason (required)
//
// PACKAGE is an import path, or its end after a slash
// (internal/clientreg). TEST-PATTERN is a test name with its subtests,
// matched element by element (split at "/") with path.Match, so "*"
// stays within one element; a pattern with fewer elements also matches
// the subtests of what it matches. Every skip is printed with its reason
// and whether the allowlist let it pass; allowlist lines that matched no
// skip are listed too, so stale entries can be removed.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"
)

// event is one test2json event (go doc cmd/test2json).
type event struct {
	Time        time.Time
	Action      string
	Package     string
	ImportPath  string // build-output and build-fail events
	Test        string
	Elapsed     float64
	Output      string
	FailedBuild string
}

// line is one output line of a package, with the test that printed it.
type line struct {
	test, text string
}

// pkgState is what is kept of a package until its final event.
type pkgState struct {
	lines   []line
	failed  map[string]bool // tests (and subtests) that failed
	skipped []string        // tests (and subtests) that skipped, in order
	anyFail bool            // a test of this package failed
}

// allowEntry is one line of the skip allowlist.
type allowEntry struct {
	pkg     string
	pattern []string // the test pattern split at "/"
	reason  string
	line    int
	used    bool
}

// options are the command's flags.
type options struct {
	// failSkips counts a skipped test that no allowlist entry matches as
	// a failure.
	failSkips bool
	allow     []*allowEntry
}

type report struct {
	out                     io.Writer
	opts                    options
	pkgs                    map[string]*pkgState
	passed, failed, skipped int
	failures                []string // pkg.Test of every failed test, and failed packages
	skips                   []string // pkg.Test: reason (verdict)
}

func main() {
	counts := flag.String("counts", "", "write \"PASSED FAILED SKIPPED\" to this file")
	failSkips := flag.Bool("fail-skips", false, "count a skipped test as failed unless the -allowlist file lists it (scripts/test.sh sets it under CI=true)")
	allowFile := flag.String("allowlist", "", "file of skips -fail-skips lets pass: lines `PACKAGE TEST-PATTERN  # reason`")
	flag.Parse()
	opts := options{failSkips: *failSkips}
	if *allowFile != "" {
		f, err := os.Open(*allowFile)
		if err == nil {
			opts.allow, err = parseAllowlist(f)
			f.Close()
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "testreport: %s: %v\n", *allowFile, err)
			os.Exit(2)
		}
	}
	r, err := run(os.Stdin, os.Stdout, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(2)
	}
	if *counts != "" {
		if err := os.WriteFile(*counts, fmt.Appendf(nil, "%d %d %d\n", r.passed, r.failed, r.skipped), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "testreport:", err)
			os.Exit(2)
		}
	}
	if r.failed > 0 {
		os.Exit(1)
	}
}

// run reads the events of in and writes the report to out.
func run(in io.Reader, out io.Writer, opts options) (*report, error) {
	r := &report{out: out, opts: opts, pkgs: map[string]*pkgState{}}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		text := sc.Text()
		var e event
		if !strings.HasPrefix(text, "{") || json.Unmarshal([]byte(text), &e) != nil {
			fmt.Fprintln(r.out, text)
			continue
		}
		r.handle(e)
	}
	if err := sc.Err(); err != nil {
		return r, err
	}
	r.finish()
	return r, nil
}

// parseAllowlist reads the skip allowlist: `PACKAGE TEST-PATTERN  # reason`
// lines, blank lines and # comments. A line without both fields or
// without a reason is an error: a skip let through must say why.
func parseAllowlist(in io.Reader) ([]*allowEntry, error) {
	var out []*allowEntry
	var errs []error
	sc := bufio.NewScanner(in)
	for n := 1; sc.Scan(); n++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		spec, reason, _ := strings.Cut(text, "#")
		fields := strings.Fields(spec)
		reason = strings.TrimSpace(reason)
		switch {
		case len(fields) != 2:
			errs = append(errs, fmt.Errorf("line %d: want `PACKAGE TEST-PATTERN  # reason`, got %q", n, text))
			continue
		case reason == "":
			errs = append(errs, fmt.Errorf("line %d: %s %s has no reason (`# why this skip is acceptable under CI`)", n, fields[0], fields[1]))
			continue
		}
		pattern := strings.Split(fields[1], "/")
		for _, p := range pattern {
			if _, err := path.Match(p, ""); err != nil {
				errs = append(errs, fmt.Errorf("line %d: pattern %q: %v", n, fields[1], err))
			}
		}
		out = append(out, &allowEntry{pkg: fields[0], pattern: pattern, reason: reason, line: n})
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, err)
	}
	return out, errors.Join(errs...)
}

// matches reports whether e allows the skip of test in pkg.
func (e *allowEntry) matches(pkg, test string) bool {
	if pkg != e.pkg && !strings.HasSuffix(pkg, "/"+e.pkg) {
		return false
	}
	elems := strings.Split(test, "/")
	if len(elems) < len(e.pattern) {
		return false
	}
	for i, p := range e.pattern {
		if ok, _ := path.Match(p, elems[i]); !ok {
			return false
		}
	}
	return true
}

// allowed returns the allowlist entry that lets the skip of test in pkg
// pass, or nil.
func (r *report) allowed(pkg, test string) *allowEntry {
	for _, e := range r.opts.allow {
		if e.matches(pkg, test) {
			return e
		}
	}
	return nil
}

func (r *report) pkg(name string) *pkgState {
	p := r.pkgs[name]
	if p == nil {
		p = &pkgState{failed: map[string]bool{}}
		r.pkgs[name] = p
	}
	return p
}

func (r *report) handle(e event) {
	switch e.Action {
	case "build-output":
		fmt.Fprint(r.out, e.Output)
		return
	case "build-fail":
		return // reported by the package's fail event
	}
	if e.Package == "" {
		if e.Output != "" {
			fmt.Fprint(r.out, e.Output)
		}
		return
	}
	p := r.pkg(e.Package)
	switch e.Action {
	case "output":
		p.lines = append(p.lines, line{e.Test, e.Output})
	case "pass":
		if e.Test != "" {
			r.passed++
			return
		}
		r.flush(e.Package, p, false)
	case "skip":
		if e.Test != "" {
			p.skipped = append(p.skipped, e.Test)
			return
		}
		r.flush(e.Package, p, false)
	case "fail":
		if e.Test != "" {
			r.failed++
			p.failed[e.Test] = true
			p.anyFail = true
			r.failures = append(r.failures, e.Package+"."+e.Test)
			return
		}
		if !p.anyFail {
			// A build failure, a panic outside tests, TestMain, a timeout:
			// count the package as one failed test.
			r.failed++
			why := "package failed outside any test"
			if e.FailedBuild != "" {
				why = "build failed"
			}
			r.failures = append(r.failures, e.Package+" ("+why+")")
		}
		r.flush(e.Package, p, true)
	}
}

// flush prints a finished package: its own lines (ok / FAIL / ?), every
// line of failed tests, and the skip lines of skipped tests; then it
// counts the skips, as failures where the allowlist must let them pass
// and does not.
func (r *report) flush(name string, p *pkgState, failed bool) {
	delete(r.pkgs, name)
	skipped := map[string]bool{}
	for _, t := range p.skipped {
		skipped[t] = true
	}
	reason := map[string]string{}
	ended := map[string]bool{} // its --- SKIP line was seen
	for _, l := range p.lines {
		switch {
		case l.test == "":
			if strings.TrimSpace(l.text) == "PASS" {
				continue // plain `go test` prints only the ok line
			}
			fmt.Fprint(r.out, l.text)
		case p.failed[l.test] || (failed && !p.anyFail):
			fmt.Fprint(r.out, l.text)
		case skipped[l.test]:
			t := strings.TrimSpace(l.text)
			if strings.HasPrefix(t, "=== ") {
				continue
			}
			if strings.HasPrefix(t, "--- SKIP") {
				ended[l.test] = true
			} else if !ended[l.test] {
				reason[l.test] = t // the last line before --- SKIP says why
			}
			fmt.Fprint(r.out, l.text)
		}
	}
	for _, t := range p.skipped {
		why := reason[t]
		if why == "" {
			why = "(no reason given)"
		}
		verdict := "not in the allowlist"
		e := r.allowed(name, t)
		switch {
		case e != nil:
			e.used = true
			verdict = "allowlisted: " + e.reason
			r.skipped++
		case r.opts.failSkips:
			verdict = "not in the allowlist: a failure under CI=true"
			r.failed++
			r.failures = append(r.failures, name+"."+t+" (skipped: "+why+")")
		default:
			r.skipped++
		}
		r.skips = append(r.skips, name+"."+t+": "+why+" ["+verdict+"]")
	}
}

func (r *report) finish() {
	// Packages that never ended (go test was killed): report what they said.
	names := make([]string, 0, len(r.pkgs))
	for n := range r.pkgs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := r.pkgs[n]
		r.failed++
		r.failures = append(r.failures, n+" (no final result)")
		for _, l := range p.lines {
			fmt.Fprint(r.out, l.text)
		}
	}
	if len(r.skips) > 0 {
		fmt.Fprintf(r.out, "\nskipped tests (%d):\n", len(r.skips))
		for _, s := range r.skips {
			fmt.Fprintf(r.out, "  SKIP %s\n", s)
		}
	}
	var unused []string
	for _, e := range r.opts.allow {
		if !e.used {
			unused = append(unused, fmt.Sprintf("  line %d: %s %s  # %s", e.line, e.pkg, strings.Join(e.pattern, "/"), e.reason))
		}
	}
	if len(unused) > 0 {
		fmt.Fprintf(r.out, "\nskip allowlist entries that matched no skip (%d; remove them once they never do):\n%s\n", len(unused), strings.Join(unused, "\n"))
	}
	if len(r.failures) > 0 {
		fmt.Fprintf(r.out, "\nfailed tests (%d):\n", len(r.failures))
		for _, f := range r.failures {
			fmt.Fprintf(r.out, "  FAIL %s\n", f)
		}
	}
	fmt.Fprintf(r.out, "\ngo test: %d passed, %d failed, %d skipped (tests and subtests)\n", r.passed, r.failed, r.skipped)
}
