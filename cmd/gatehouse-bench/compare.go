package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// runCompare reads the JSON lines written by --json for two targets and
// prints, per scenario and concurrency, both throughputs and their ratio,
// the server CPU per unit of each, peak RSS and errors; then the issue's
// targets for the first target, met or missed. Repeated runs of the same
// scenario and concurrency are summarised by their median.
//
//	gatehouse-bench compare [--a gatehouse] [--b hydra] results.jsonl
func runCompare(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("gatehouse-bench compare", flag.ContinueOnError)
	fs.SetOutput(out)
	a := fs.String("a", "gatehouse", "the target measured against the baseline")
	bName := fs.String("b", "hydra", "the baseline target")
	md := fs.Bool("markdown", false, "print Markdown tables")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("usage: gatehouse-bench compare [flags] results.jsonl")
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()

	type key struct {
		target, scenario string
		conc             int
	}
	runs := map[key][]result{}
	idle := map[string]float64{}
	var order []key
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var hdr struct {
			Target string   `json:"target"`
			Idle   *float64 `json:"idle_rss_mb"`
		}
		if json.Unmarshal(line, &hdr) == nil && hdr.Idle != nil {
			if _, ok := idle[hdr.Target]; !ok && *hdr.Idle >= 0 {
				idle[hdr.Target] = *hdr.Idle // the first one: before any load
			}
			continue
		}
		var r result
		if err := json.Unmarshal(line, &r); err != nil || r.Scenario == "" {
			continue
		}
		k := key{r.Target, r.Scenario, r.Concurrency}
		if _, ok := runs[k]; !ok {
			order = append(order, k)
		}
		runs[k] = append(runs[k], r)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	summary := func(k key) (result, int, bool) {
		rs := runs[k]
		var ok []result
		for _, r := range rs {
			if r.Skipped == "" && r.Units+r.Errors > 0 {
				ok = append(ok, r)
			}
		}
		if len(ok) == 0 {
			return result{}, 0, false
		}
		m := ok[0]
		m.PerSecond = median(ok, func(r result) float64 { return r.PerSecond })
		m.ServerCPUus = median(ok, func(r result) float64 { return r.ServerCPUus })
		m.P50ms = median(ok, func(r result) float64 { return r.P50ms })
		m.P99ms = median(ok, func(r result) float64 { return r.P99ms })
		m.PeakRSSMB = slicesMax(ok, func(r result) float64 { return r.PeakRSSMB })
		m.Errors = 0
		m.Units = 0
		for _, r := range ok {
			m.Errors += r.Errors
			m.Units += r.Units
		}
		return m, len(ok), true
	}

	sep, start, end := "  ", "", ""
	if *md {
		sep, start, end = " | ", "| ", " |"
	}
	row := func(cells ...string) {
		if *md {
			fmt.Fprintln(out, start+strings.Join(cells, sep)+end)
			return
		}
		widths := []int{-34, 5, 10, 10, 8, 10, 10, 7, 9, 9, 14}
		for i, c := range cells {
			w := 10
			if i < len(widths) {
				w = widths[i]
			}
			fmt.Fprintf(out, "%*s%s", w, c, sep)
		}
		fmt.Fprintln(out)
	}
	row("scenario ("+*a+" vs "+*bName+")", "conc", *a+"/s", *bName+"/s", "ratio", *a+" CPU µs", *bName+" CPU µs", "CPU ×", "RSS "+*a, "RSS "+*bName, "errors a/b")
	if *md {
		fmt.Fprintln(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	}
	seen := map[key]bool{}
	for _, k := range order {
		if k.target != *bName && k.target != *a {
			continue
		}
		// Pair each baseline scenario with the measured target's scenario
		// of the same name, or its JWT equivalent for Hydra's opaque ones.
		var ka, kb key
		if k.target == *bName {
			kb = k
			ka = key{*a, strings.TrimSuffix(k.scenario, "_opaque"), k.conc}
		} else {
			ka = k
			kb = key{*bName, k.scenario, k.conc}
			if _, ok := runs[kb]; ok {
				continue // printed with the baseline's row
			}
		}
		if seen[kb] && seen[ka] {
			continue
		}
		seen[ka], seen[kb] = true, true
		ra, na, okA := summary(ka)
		rb, nb, okB := summary(kb)
		if !okA && !okB {
			continue
		}
		name := ka.scenario
		if kb.scenario != ka.scenario && okB {
			name = ka.scenario + " vs " + kb.scenario
		}
		cell := func(ok bool, v float64, f string) string {
			if !ok || v < 0 {
				return "—"
			}
			return fmt.Sprintf(f, v)
		}
		ratio, cpuRatio := "—", "—"
		if okA && okB && rb.PerSecond > 0 {
			ratio = fmt.Sprintf("%.1f×", ra.PerSecond/rb.PerSecond)
		}
		if okA && okB && ra.ServerCPUus > 0 && rb.ServerCPUus > 0 {
			cpuRatio = fmt.Sprintf("%.1f×", rb.ServerCPUus/ra.ServerCPUus)
		}
		runsNote := ""
		if na > 1 || nb > 1 {
			runsNote = fmt.Sprintf(" (median of %d/%d)", na, nb)
		}
		row(name+runsNote, fmt.Sprint(k.conc), cell(okA, ra.PerSecond, "%.0f"), cell(okB, rb.PerSecond, "%.0f"), ratio,
			cell(okA, ra.ServerCPUus, "%.0f"), cell(okB, rb.ServerCPUus, "%.0f"), cpuRatio,
			cell(okA, ra.PeakRSSMB, "%.0f"), cell(okB, rb.PeakRSSMB, "%.0f"),
			fmt.Sprintf("%s/%s", cell(okA, float64(ra.Errors), "%.0f"), cell(okB, float64(rb.Errors), "%.0f")))
	}
	fmt.Fprintf(out, "\nidle RSS: %s %s MB, %s %s MB\n", *a, fmtIdle(idle, *a), *bName, fmtIdle(idle, *bName))

	// The targets of issue 7, for the measured target.
	best := func(s string) (result, bool) {
		var b result
		found := false
		for _, k := range order {
			if k.target == *a && k.scenario == s {
				if r, _, ok := summary(k); ok && (!found || r.PerSecond > b.PerSecond) {
					b, found = r, true
				}
			}
		}
		return b, found
	}
	at := func(target, s string, conc int) (result, bool) {
		r, _, ok := summary(key{target, s, conc})
		return r, ok
	}
	fmt.Fprintf(out, "\ntargets (%s):\n", *a)
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	if r, ok := at(*a, "client_credentials", 32); ok {
		fmt.Fprintf(out, "  client_credentials ≥ 5,000 req/s at concurrency 32: %.0f — %s\n", r.PerSecond, verdict(r.PerSecond >= 5000))
		fmt.Fprintf(out, "  client_credentials ≤ 150 µs server CPU per request: %.0f µs — %s\n", r.ServerCPUus, verdict(r.ServerCPUus >= 0 && r.ServerCPUus <= 150))
		if h, ok := at(*bName, "client_credentials", 32); ok && h.PerSecond > 0 {
			x := r.PerSecond / h.PerSecond
			fmt.Fprintf(out, "  client_credentials ≥ 60× %s JWT: %.0f× — %s\n", *bName, x, verdict(x >= 60))
		}
	}
	for _, t := range []struct {
		s    string
		min  float64
		what string
	}{{"discovery", 20000, "discovery ≥ 20,000 req/s"}, {"jwks", 20000, "JWKS ≥ 20,000 req/s"},
		{"introspect", 10000, "introspection ≥ 10,000 req/s"}, {"code_flow", 1000, "full code flow ≥ 1,000 flows/s (SQLite)"},
		{"refresh", 2000, "refresh ≥ 2,000 req/s (SQLite)"}} {
		if r, ok := best(t.s); ok {
			fmt.Fprintf(out, "  %s: %.0f at concurrency %d — %s\n", t.what, r.PerSecond, r.Concurrency, verdict(r.PerSecond >= t.min))
		}
	}
	if v, ok := idle[*a]; ok {
		fmt.Fprintf(out, "  idle RSS ≤ 30 MB: %.1f MB — %s\n", v, verdict(v <= 30))
	}
	peak := -1.0
	for _, k := range order {
		if k.target == *a {
			for _, r := range runs[k] {
				peak = max(peak, r.PeakRSSMB)
			}
		}
	}
	if peak >= 0 {
		fmt.Fprintf(out, "  RSS under load ≤ 100 MB: peak %.1f MB — %s\n", peak, verdict(peak <= 100))
	}
	return nil
}

func fmtIdle(m map[string]float64, t string) string {
	if v, ok := m[t]; ok {
		return fmt.Sprintf("%.1f", v)
	}
	return "—"
}

func median(rs []result, f func(result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func slicesMax(rs []result, f func(result) float64) float64 {
	m := -1.0
	for _, r := range rs {
		m = max(m, f(r))
	}
	return m
}
