package loadtest

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestRunIsBoundedByCountAndReportsErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer srv.Close()
	c := Client(4)
	r, err := Run(context.Background(), Config{Name: "hello", Concurrency: 4, Requests: 200, Duration: time.Minute, Warmup: 5,
		Do: func(ctx context.Context, _, seq int) error {
			if seq%50 == 0 {
				return errors.New("every fiftieth fails")
			}
			req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
			resp, err := c.Do(req)
			if err != nil {
				return err
			}
			io.Copy(io.Discard, resp.Body)
			return resp.Body.Close()
		}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 200 || r.Errors < 3 || r.Errors > 5 || r.FirstError == "" {
		t.Fatalf("result %+v", r)
	}
	if !(r.P50 <= r.P90 && r.P90 <= r.P99 && r.P99 <= r.Max) || r.RPS <= 0 {
		t.Fatalf("percentiles out of order: %v", r)
	}
	if r.String() == "" {
		t.Fatal("empty report")
	}
}

func TestRunRefusesUnboundedConfigs(t *testing.T) {
	do := func(context.Context, int, int) error { return nil }
	for _, c := range []Config{{Requests: 10, Do: do}, {Duration: time.Second, Do: do}, {Requests: 10, Duration: time.Second}} {
		if _, err := Run(context.Background(), c); err == nil {
			t.Errorf("accepted %+v", c)
		}
	}
}

func TestRunStopsAtTheDurationBound(t *testing.T) {
	// A request count that cannot be reached: the duration bound ends the run.
	r, err := Run(context.Background(), Config{Concurrency: 2, Requests: 1_000_000, Duration: 50 * time.Millisecond,
		Do: func(ctx context.Context, _, _ int) error {
			select {
			case <-time.After(time.Millisecond):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests == 0 || r.Requests >= 1_000_000 || r.Errors != 0 {
		t.Fatalf("result %+v", r)
	}
}

func TestRunPacesToTheRate(t *testing.T) {
	// 20 requests at 200/s: the last may start only 95ms after the first,
	// however many workers are idle. A lower bound, so no flakiness.
	r, err := Run(context.Background(), Config{Concurrency: 8, Requests: 20, Duration: time.Minute, Rate: 200,
		Do: func(context.Context, int, int) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if r.Requests != 20 || r.Elapsed < 95*time.Millisecond {
		t.Fatalf("not paced: %v in %s", r, r.Elapsed)
	}
}
