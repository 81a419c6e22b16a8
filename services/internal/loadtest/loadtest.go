// Package loadtest is a small closed-loop load driver for loopback
// benchmarks: a fixed number of workers send requests until a request count
// or a duration runs out (both are required), and it reports requests/s and
// latency percentiles. It is not a test: nothing here asserts a speed.
package loadtest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Config bounds one run.
type Config struct {
	Name        string
	Concurrency int           // workers (default 8)
	Requests    int           // at most this many requests (required, ≤ 1e6)
	Duration    time.Duration // and at most this long (required)
	Warmup      int           // requests sent first and not measured
	// Rate, when > 0, paces the run open-loop: request i (0-based) starts no
	// earlier than i/Rate seconds after the start, whichever worker sends it.
	// Concurrency must cover Rate times the latency, or the rate is not met.
	Rate float64
	// Do sends one request; worker is 0..Concurrency-1 and seq is the global
	// sequence number, so callers can make keys unique.
	Do func(ctx context.Context, worker, seq int) error
	// CPU, when set, reads a CPU-time counter (e.g. the server processes'
	// user+system time) before and after the run; the difference per request
	// is reported. Unlike requests/s it barely moves when other programs
	// compete for the cores.
	CPU func() time.Duration
}

// Result is one run's figures.
type Result struct {
	Name          string
	Requests      int
	Errors        int
	FirstError    string
	Elapsed       time.Duration
	RPS           float64
	P50, P90, P99 time.Duration
	Max           time.Duration
	CPUPerRequest time.Duration // zero without Config.CPU
}

func (r Result) String() string {
	s := fmt.Sprintf("%-34s %7d req %6.0f req/s  p50 %8s  p90 %8s  p99 %8s  max %8s  errors %d",
		r.Name, r.Requests, r.RPS, round(r.P50), round(r.P90), round(r.P99), round(r.Max), r.Errors)
	if r.CPUPerRequest > 0 {
		s += fmt.Sprintf("  cpu/req %s", round(r.CPUPerRequest))
	}
	if r.FirstError != "" {
		s += " (first: " + r.FirstError + ")"
	}
	return s
}

func round(d time.Duration) time.Duration {
	switch {
	case d > 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	case d > 100*time.Microsecond:
		return d.Round(time.Microsecond)
	}
	return d.Round(100 * time.Nanosecond)
}

// Run drives the load and returns the figures.
func Run(ctx context.Context, c Config) (Result, error) {
	if c.Requests <= 0 || c.Requests > 1_000_000 || c.Duration <= 0 {
		return Result{}, errors.New("loadtest: Requests (1..1e6) and Duration are both required")
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 8
	}
	if c.Do == nil {
		return Result{}, errors.New("loadtest: Do is required")
	}
	var seq atomic.Int64
	for i := 0; i < c.Warmup; i++ {
		if ctx.Err() != nil {
			break
		}
		_ = c.Do(ctx, 0, int(seq.Add(1)))
	}
	ctx, cancel := context.WithTimeout(ctx, c.Duration)
	defer cancel()
	var (
		mu       sync.Mutex
		lat      = make([]time.Duration, 0, min(c.Requests, 200_000))
		errs     int
		firstErr string
		issued   atomic.Int64
		wg       sync.WaitGroup
	)
	var cpu0 time.Duration
	if c.CPU != nil {
		cpu0 = c.CPU()
	}
	start := time.Now()
	for w := 0; w < c.Concurrency; w++ {
		wg.Go(func() {
			local := make([]time.Duration, 0, 1024)
			var lerrs int
			var lfirst string
			for ctx.Err() == nil {
				i := issued.Add(1)
				if i > int64(c.Requests) {
					break
				}
				if c.Rate > 0 && !sleepUntil(ctx, start.Add(time.Duration(float64(i-1)/c.Rate*float64(time.Second)))) {
					break
				}
				t0 := time.Now()
				err := c.Do(ctx, w, int(seq.Add(1)))
				d := time.Since(t0)
				if err != nil {
					if ctx.Err() != nil {
						break // cut off by the time bound: not counted
					}
					lerrs++
					if lfirst == "" {
						lfirst = err.Error()
					}
				}
				local = append(local, d)
			}
			mu.Lock()
			lat = append(lat, local...)
			errs += lerrs
			if firstErr == "" {
				firstErr = lfirst
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	slices.Sort(lat)
	r := Result{Name: c.Name, Requests: len(lat), Errors: errs, FirstError: firstErr, Elapsed: elapsed}
	if c.CPU != nil && len(lat) > 0 {
		r.CPUPerRequest = (c.CPU() - cpu0) / time.Duration(len(lat))
	}
	if len(lat) > 0 {
		r.RPS = float64(len(lat)) / elapsed.Seconds()
		r.P50, r.P90, r.P99, r.Max = pct(lat, 50), pct(lat, 90), pct(lat, 99), lat[len(lat)-1]
	}
	return r, nil
}

// sleepUntil waits for t; false when ctx ends first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func pct(sorted []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// Client is an HTTP client for load: keep-alive, enough idle connections for
// the workers, no proxy, a per-request timeout.
func Client(concurrency int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConns:        concurrency * 2,
			MaxIdleConnsPerHost: concurrency * 2,
			IdleConnTimeout:     30 * time.Second,
		},
	}
}

// SelfCPU is this process's user+system CPU time.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
