package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// events builds `go test -json` input, in the shape go test writes it.
type events struct{ b strings.Builder }

func (e *events) add(action, pkg, test, output string) *events {
	m := map[string]any{"Time": "2026-12-07T16:34:15Z", "Action": action, "Package": pkg}
	if test != "" {
		m["Test"] = test
	}
	if output != "" {
		m["Output"] = output
	}
	b, _ := json.Marshal(m)
	e.b.Write(append(b, '\n'))
	return e
}

// test adds a test's run, its log lines and its result (pass, skip, fail).
func (e *events) test(pkg, name, result string, logs ...string) *events {
	e.add("run", pkg, name, "").add("output", pkg, name, "=== RUN   "+name+"\n")
	for _, l := range logs {
		e.add("output", pkg, name, "    x_test.go:7: "+l+"\n")
	}
	e.add("output", pkg, name, "--- "+strings.ToUpper(result)+": "+name+" (0.00s)\n")
	return e.add(result, pkg, name, "")
}

// end adds the package's final lines and event.
func (e *events) end(pkg, result string) *events {
	if result == "fail" {
		e.add("output", pkg, "", "FAIL\n").add("output", pkg, "", "FAIL\t"+pkg+"\t0.004s\n")
	} else {
		e.add("output", pkg, "", "PASS\n").add("output", pkg, "", "ok  \t"+pkg+"\t0.004s\n")
	}
	return e.add(result, pkg, "", "")
}

const pkgA = "example.com/m/internal/a"

// skips is a package with a passing test, a skipped test and a skipped
// subtest.
func skips() string {
	var e events
	e.add("start", pkgA, "", "")
	e.test(pkgA, "TestPass", "pass")
	e.test(pkgA, "TestSkip", "skip", "no chromium")
	e.add("run", pkgA, "TestSub", "").add("output", pkgA, "TestSub", "=== RUN   TestSub\n")
	e.test(pkgA, "TestSub/ok", "pass")
	e.test(pkgA, "TestSub/dyn_reg", "skip", "setup", "no registration endpoint")
	e.add("output", pkgA, "TestSub", "--- PASS: TestSub (0.00s)\n").add("pass", pkgA, "TestSub", "")
	e.end(pkgA, "pass")
	return e.b.String()
}

func TestSkips(t *testing.T) {
	for _, tt := range []struct {
		name                    string
		failSkips               bool
		allowlist               string
		passed, failed, skipped int
		want, notWant           []string
	}{
		{
			name:   "locally every skip is a skip, printed with its reason",
			passed: 3, skipped: 2,
			want: []string{
				"SKIP " + pkgA + ".TestSkip: x_test.go:7: no chromium [not in the allowlist]",
				"SKIP " + pkgA + ".TestSub/dyn_reg: x_test.go:7: no registration endpoint [not in the allowlist]",
				"go test: 3 passed, 0 failed, 2 skipped",
			},
			notWant: []string{"failed tests"},
		},
		{
			name:      "under CI a skip not in the allowlist fails",
			failSkips: true,
			passed:    3, failed: 2,
			want: []string{
				"SKIP " + pkgA + ".TestSkip: x_test.go:7: no chromium [not in the allowlist: a failure under CI=true]",
				"FAIL " + pkgA + ".TestSkip (skipped: x_test.go:7: no chromium)",
				"FAIL " + pkgA + ".TestSub/dyn_reg (skipped: x_test.go:7: no registration endpoint)",
				"go test: 3 passed, 2 failed, 0 skipped",
			},
		},
		{
			name:      "allowlisted by import path end and exact subtest",
			failSkips: true,
			allowlist: "# header\n\ninternal/a TestSub/dyn_reg  # the endpoint is optional\n",
			passed:    3, failed: 1, skipped: 1,
			want: []string{
				"SKIP " + pkgA + ".TestSub/dyn_reg: x_test.go:7: no registration endpoint [allowlisted: the endpoint is optional]",
				"FAIL " + pkgA + ".TestSkip (skipped: x_test.go:7: no chromium)",
			},
			notWant: []string{"FAIL " + pkgA + ".TestSub/dyn_reg"},
		},
		{
			name:      "a pattern matches the subtests of what it matches; * stays in one element",
			failSkips: true,
			allowlist: pkgA + " TestSu*  # whole test\nexample.com/m/internal/a Test*/dyn_*  # never used first\nb TestSkip # another package\n",
			passed:    3, failed: 1, skipped: 1,
			want: []string{
				"[allowlisted: whole test]",
				"FAIL " + pkgA + ".TestSkip (skipped",
				"skip allowlist entries that matched no skip (2;",
				"line 2: example.com/m/internal/a Test*/dyn_*  # never used first",
				"line 3: b TestSkip  # another package",
			},
		},
		{
			name:      "a pattern does not match another element",
			failSkips: true,
			allowlist: "internal/a TestSub/ok  # not the skipped one\ninternal/a TestSkip/x  # deeper than the skip\nnternal/a TestSub  # not a whole path element\ninternal/a *Skip*  # any test named so\n",
			passed:    3, failed: 1, skipped: 1,
			want: []string{
				"SKIP " + pkgA + ".TestSkip: x_test.go:7: no chromium [allowlisted: any test named so]",
				"FAIL " + pkgA + ".TestSub/dyn_reg (skipped",
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			allow, err := parseAllowlist(strings.NewReader(tt.allowlist))
			if err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			r, err := run(strings.NewReader(skips()), &out, options{failSkips: tt.failSkips, allow: allow})
			if err != nil {
				t.Fatal(err)
			}
			if r.passed != tt.passed || r.failed != tt.failed || r.skipped != tt.skipped {
				t.Errorf("counts = %d passed, %d failed, %d skipped; want %d, %d, %d\n%s", r.passed, r.failed, r.skipped, tt.passed, tt.failed, tt.skipped, out.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("report lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(out.String(), w) {
					t.Errorf("report has %q:\n%s", w, out.String())
				}
			}
		})
	}
}

func TestParseAllowlistErrors(t *testing.T) {
	for _, tt := range []struct {
		in, want string
	}{
		{"internal/a TestX\n", "line 1: internal/a TestX has no reason"},
		{"internal/a TestX #   \n", "line 1: internal/a TestX has no reason"},
		{"# ok\ninternal/a  # reason\n", "line 2: want `PACKAGE TEST-PATTERN  # reason`"},
		{"internal/a TestX extra # reason\n", "line 1: want"},
		{"internal/a Test[  # reason\n", `line 1: pattern "Test["`},
	} {
		_, err := parseAllowlist(strings.NewReader(tt.in))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("parseAllowlist(%q) = %v, want an error containing %q", tt.in, err, tt.want)
		}
	}
}

// TestFailures checks the rest of the report: a failed test's output,
// a build failure, a package that never ended.
func TestFailures(t *testing.T) {
	var e events
	e.test(pkgA, "TestOK", "pass")
	e.test(pkgA, "TestBoom", "fail", "before", "boom")
	e.end(pkgA, "fail")
	e.add("build-output", "", "", "# example.com/m/b\nb.go:3:1: syntax error\n")
	e.add("output", "example.com/m/b", "", "FAIL\texample.com/m/b [build failed]\n")
	e.b.WriteString(`{"Action":"fail","Package":"example.com/m/b","FailedBuild":"example.com/m/b"}` + "\n")
	e.test("example.com/m/c", "TestHang", "pass")
	e.add("output", "example.com/m/c", "", "panic: test timed out after 10m0s\n")
	e.b.WriteString("not json\n")
	var out strings.Builder
	r, err := run(strings.NewReader(e.b.String()), &out, options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.passed != 2 || r.failed != 3 || r.skipped != 0 {
		t.Errorf("counts = %d passed, %d failed, %d skipped; want 2, 3, 0\n%s", r.passed, r.failed, r.skipped, out.String())
	}
	for _, w := range []string{
		"x_test.go:7: before\n", "x_test.go:7: boom\n", "--- FAIL: TestBoom",
		"b.go:3:1: syntax error", "FAIL " + pkgA + ".TestBoom", "FAIL example.com/m/b (build failed)",
		"panic: test timed out", "FAIL example.com/m/c (no final result)", "not json\n",
	} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("report lacks %q:\n%s", w, out.String())
		}
	}
	if strings.Contains(out.String(), "--- PASS: TestOK") {
		t.Errorf("report shows a passing test's output:\n%s", out.String())
	}
}
