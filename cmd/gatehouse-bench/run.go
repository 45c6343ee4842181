package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// op is one unit of a scenario (a request, or a whole flow) run by one
// worker. It returns how many HTTP requests it made and an error when the
// unit failed.
type op func() (requests int, err error)

// scenario is a named load: setup prepares one worker (not measured) and
// returns its op.
type scenario struct {
	name string
	unit string // "req" or "flow"
	desc string
	// newWorker prepares worker i for a run at concurrency n.
	newWorker func(ctx context.Context, i, n int) (op, func(), error)
}

// limits bound every run: in time and in units.
type limits struct {
	duration    time.Duration
	warmup      time.Duration
	maxUnits    int64
	minUnits    int64
	concurrency int
}

// result is the outcome of one scenario at one concurrency.
type result struct {
	Target      string  `json:"target"`
	Scenario    string  `json:"scenario"`
	Unit        string  `json:"unit"`
	Concurrency int     `json:"concurrency"`
	Units       int64   `json:"units"`
	Errors      int64   `json:"errors"`
	Requests    int64   `json:"http_requests"`
	Seconds     float64 `json:"seconds"`
	PerSecond   float64 `json:"per_second"`
	P50ms       float64 `json:"p50_ms"`
	P90ms       float64 `json:"p90_ms"`
	P99ms       float64 `json:"p99_ms"`
	ServerCPUus float64 `json:"server_cpu_us_per_unit"` // -1: unknown
	ServerCores float64 `json:"server_cores"`           // server CPU seconds per wall second
	ClientCPUus float64 `json:"client_cpu_us_per_unit"`
	PeakRSSMB   float64 `json:"server_peak_rss_mb"` // -1: unknown
	RSSAfterMB  float64 `json:"server_rss_after_mb"`
	FirstError  string  `json:"first_error,omitempty"`
	Skipped     string  `json:"skipped,omitempty"`
}

// run measures sc at l.concurrency. Workers are prepared first; then a
// warmup (not recorded) and the measured window, which ends at
// l.duration or after l.maxUnits units, whichever comes first.
func run(ctx context.Context, target string, sc scenario, l limits, pid int) (result, error) {
	res := result{Target: target, Scenario: sc.name, Unit: sc.unit, Concurrency: l.concurrency, ServerCPUus: -1, PeakRSSMB: -1, RSSAfterMB: -1}
	n := l.concurrency
	ops := make([]op, n)
	var cleanups []func()
	defer func() {
		for _, c := range cleanups {
			c()
		}
	}()
	{
		// Prepare workers a few at a time: setup may involve a login or a
		// first code flow each.
		var (
			mu   sync.Mutex
			wg   sync.WaitGroup
			errs []error
			sem  = make(chan struct{}, 4)
		)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				o, c, err := sc.newWorker(ctx, i, n)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					return
				}
				ops[i] = o
				if c != nil {
					cleanups = append(cleanups, c)
				}
			}()
		}
		wg.Wait()
		if len(errs) > 0 {
			return res, fmt.Errorf("%s: setup: %w", sc.name, errs[0])
		}
	}

	type workerStats struct {
		lat      []time.Duration
		errors   int64
		requests int64
		firstErr error
	}
	stats := make([]workerStats, n)
	var (
		issued    atomic.Int64
		finished  atomic.Int64 // units measured, with or without an error
		measuring atomic.Bool
		stop      atomic.Bool
		wg        sync.WaitGroup
	)
	capHint := 1 << 14
	if l.maxUnits > 0 && l.maxUnits/int64(n)+16 < int64(capHint) {
		capHint = int(l.maxUnits/int64(n)) + 16
	}
	for i := 0; i < n; i++ {
		stats[i].lat = make([]time.Duration, 0, capHint)
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := &stats[i]
			o := ops[i]
			for !stop.Load() && ctx.Err() == nil {
				rec := measuring.Load()
				if rec && l.maxUnits > 0 && issued.Add(1) > l.maxUnits {
					return
				}
				t0 := time.Now()
				reqs, err := o()
				d := time.Since(t0)
				if !rec || !measuring.Load() {
					continue // warmup, or the window closed while this unit ran
				}
				st.requests += int64(reqs)
				finished.Add(1)
				if err != nil {
					st.errors++
					if st.firstErr == nil {
						st.firstErr = err
					}
					continue
				}
				st.lat = append(st.lat, d)
			}
		}()
	}
	if l.warmup > 0 {
		sleepCtx(ctx, l.warmup)
	}

	var (
		cpu0, cpu1       time.Duration
		cpuOK            = pid > 0
		sampler          *rssSampler
		hwmReset         bool
		selfCPU0, selfC1 time.Duration
	)
	if pid > 0 {
		hwmReset = resetPeakRSS(pid)
		sampler = startRSSSampler(pid, 20*time.Millisecond)
		var err error
		if cpu0, err = procCPU(pid); err != nil {
			cpuOK = false
		}
	}
	selfCPU0, _ = procCPU(os.Getpid())
	start := time.Now()
	measuring.Store(true)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	timer := time.NewTimer(l.duration)
	select {
	case <-timer.C:
		// On a machine so busy that no unit finished within the
		// duration, the window stays open until minUnits have: a
		// measurement of nothing says nothing.
		for finished.Load() < l.minUnits && ctx.Err() == nil {
			select {
			case <-done:
			case <-ctx.Done():
			case <-time.After(5 * time.Millisecond):
				continue
			}
			break
		}
	case <-done: // every worker hit maxUnits
	case <-ctx.Done():
	}
	measuring.Store(false)
	elapsed := time.Since(start)
	if pid > 0 {
		var err error
		if cpu1, err = procCPU(pid); err != nil {
			cpuOK = false
		}
	}
	selfC1, _ = procCPU(os.Getpid())
	stop.Store(true)
	timer.Stop()
	<-done

	var all []time.Duration
	for i := range stats {
		st := &stats[i]
		res.Errors += st.errors
		res.Requests += st.requests
		all = append(all, st.lat...)
		if st.firstErr != nil && res.FirstError == "" {
			res.FirstError = st.firstErr.Error()
		}
	}
	res.Units = int64(len(all))
	res.Seconds = elapsed.Seconds()
	res.PerSecond = float64(res.Units) / elapsed.Seconds()
	slices.Sort(all)
	res.P50ms = ms(percentile(all, 0.50))
	res.P90ms = ms(percentile(all, 0.90))
	res.P99ms = ms(percentile(all, 0.99))
	if total := res.Units + res.Errors; total > 0 {
		if cpuOK {
			res.ServerCPUus = float64((cpu1 - cpu0).Microseconds()) / float64(total)
			res.ServerCores = (cpu1 - cpu0).Seconds() / elapsed.Seconds()
		}
		res.ClientCPUus = float64((selfC1 - selfCPU0).Microseconds()) / float64(total)
	}
	if sampler != nil {
		peak := sampler.finish()
		if rss, hwm, err := procMem(pid); err == nil {
			if hwmReset && hwm > peak {
				peak = hwm
			}
			res.RSSAfterMB = mb(rss)
		}
		res.PeakRSSMB = mb(peak)
	}
	return res, nil
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
func mb(b int64) float64         { return float64(b) / (1 << 20) }

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
