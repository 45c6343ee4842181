// Command testreport reads `go test -json` events on stdin and prints what a
// plain `go test` prints (the ok / FAIL / ? line of each package, the full
// output of every failed test, build errors), plus the reason of every
// skipped test, and finally the counts of tests (subtests included).
//
// scripts/test.sh pipes its `go test -json` runs through it:
//
//	go test -json ./... 2>&1 | go run ./scripts/testreport -counts FILE
//
// It exits 1 when a test or a package failed (a build failure or a failure
// outside any test counts as one failed test of that package), and writes
// "PASSED FAILED SKIPPED" to the -counts file. Lines that are not JSON are
// copied through.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
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
	skipped map[string]bool
	anyFail bool // a test of this package failed
}

type report struct {
	out                     io.Writer
	pkgs                    map[string]*pkgState
	passed, failed, skipped int
	failures                []string // pkg.Test of every failed test, and failed packages
	skips                   []string // pkg.Test: reason
}

func main() {
	counts := flag.String("counts", "", "write \"PASSED FAILED SKIPPED\" to this file")
	flag.Parse()
	r := &report{out: os.Stdout, pkgs: map[string]*pkgState{}}
	sc := bufio.NewScanner(os.Stdin)
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
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(2)
	}
	r.finish()
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

func (r *report) pkg(name string) *pkgState {
	p := r.pkgs[name]
	if p == nil {
		p = &pkgState{failed: map[string]bool{}, skipped: map[string]bool{}}
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
			r.skipped++
			p.skipped[e.Test] = true
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
// line of failed tests, and the skip lines of skipped tests.
func (r *report) flush(name string, p *pkgState, failed bool) {
	delete(r.pkgs, name)
	lastReason := map[string]string{}
	for _, l := range p.lines {
		switch {
		case l.test == "":
			if strings.TrimSpace(l.text) == "PASS" {
				continue // plain `go test` prints only the ok line
			}
			fmt.Fprint(r.out, l.text)
		case p.failed[l.test] || (failed && !p.anyFail):
			fmt.Fprint(r.out, l.text)
		case p.skipped[l.test]:
			t := strings.TrimSpace(l.text)
			if strings.HasPrefix(t, "=== ") {
				continue
			}
			if strings.HasPrefix(t, "--- SKIP") {
				fmt.Fprint(r.out, l.text)
				r.skips = append(r.skips, name+"."+l.test+": "+lastReason[l.test])
				continue
			}
			lastReason[l.test] = t
			fmt.Fprint(r.out, l.text)
		}
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
	if len(r.failures) > 0 {
		fmt.Fprintf(r.out, "\nfailed tests (%d):\n", len(r.failures))
		for _, f := range r.failures {
			fmt.Fprintf(r.out, "  FAIL %s\n", f)
		}
	}
	fmt.Fprintf(r.out, "\ngo test: %d passed, %d failed, %d skipped (tests and subtests)\n", r.passed, r.failed, r.skipped)
}
