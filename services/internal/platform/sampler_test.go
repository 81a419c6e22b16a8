package platform

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopplatform/shop-operator/services/internal/pgtest"
)

// A readiness probe (a database ping and a peer call, whose handler queries
// the database too) starts no span anywhere, and tells the peer so in its
// traceparent; the same call outside a probe is traced end to end.
func TestReadinessProbesMakeNoSpans(t *testing.T) {
	t.Setenv("OTEL_TRACES_SAMPLER", "parentbased_always_on")
	_, rec := recordSpans(t)
	pool, err := OpenDB(t.Context(), pgtest.NewDatabase(t), "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	// The peer: a traced app handler that queries its database.
	var mu sync.Mutex
	var traceparents []string
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/ping", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		traceparents = append(traceparents, r.Header.Get("traceparent"))
		mu.Unlock()
		var n int
		if err := pool.QueryRow(r.Context(), "SELECT 1").Scan(&n); err != nil {
			WriteProblem(w, r, NewProblem(500, "db", err.Error()))
			return
		}
		WriteJSON(w, 200, map[string]int{"n": n})
	})
	peer := httptest.NewServer(Handler("peer", mux))
	defer peer.Close()
	hc := NewHTTPClient(5 * time.Second)
	callPeer := func(ctx context.Context) error { return CallJSON(ctx, hc, "GET", peer.URL+"/api/ping", nil, nil, nil) }

	admin := httptest.NewServer(AdminMux(nil, PingCheck(pool), Check{Name: "peer", Func: callPeer}))
	defer admin.Close()
	for range 3 {
		resp, err := http.Get(admin.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("/readyz: %s", resp.Status)
		}
	}
	if n := len(rec.Started()); n != 0 {
		var names []string
		for _, s := range rec.Started() {
			names = append(names, s.Name())
		}
		t.Errorf("/readyz started %d spans: %v", n, names)
	}
	mu.Lock()
	for _, tp := range traceparents {
		if !strings.HasSuffix(tp, "-00") {
			t.Errorf("probe call's traceparent %q is not marked unsampled", tp)
		}
	}
	if len(traceparents) != 3 {
		t.Errorf("peer saw %d probe calls, want 3", len(traceparents))
	}
	mu.Unlock()

	// The same call outside a probe: client, server and query spans.
	if err := callPeer(t.Context()); err != nil {
		t.Fatal(err)
	}
	kinds := map[string]bool{}
	for i := 0; i < 100 && !kinds["server GET /api/ping"]; i++ { // the server span ends after the response
		time.Sleep(10 * time.Millisecond)
		for _, s := range rec.Ended() {
			kinds[s.SpanKind().String()+" "+s.Name()] = true
		}
	}
	for _, want := range []string{"client HTTP GET", "server GET /api/ping", "client SELECT"} {
		if !kinds[want] {
			t.Errorf("a normal call lacks span %q; has %v", want, kinds)
		}
	}
}

func TestSamplerFromEnv(t *testing.T) {
	for _, c := range []struct{ name, arg, desc string }{
		{"", "", "ParentBased{root:AlwaysOnSampler"},
		{"parentbased_traceidratio", "0.1", "ParentBased{root:TraceIDRatioBased{0.1}"},
		{"traceidratio", "", "TraceIDRatioBased{1}"},
		{"ALWAYS_OFF", "", "AlwaysOffSampler"},
	} {
		t.Setenv("OTEL_TRACES_SAMPLER", c.name)
		t.Setenv("OTEL_TRACES_SAMPLER_ARG", c.arg)
		s, err := samplerFromEnv()
		if err != nil || !strings.HasPrefix(s.Description(), c.desc) {
			t.Errorf("%s %s: %v %v, want %s", c.name, c.arg, s.Description(), err, c.desc)
		}
	}
	for _, c := range [][2]string{{"parentbased_traceidratio", "1.5"}, {"traceidratio", "ten"}, {"jaeger_remote", ""}} {
		t.Setenv("OTEL_TRACES_SAMPLER", c[0])
		t.Setenv("OTEL_TRACES_SAMPLER_ARG", c[1])
		if _, err := samplerFromEnv(); err == nil {
			t.Errorf("%s %s accepted", c[0], c[1])
		}
	}
}
