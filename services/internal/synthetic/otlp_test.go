package synthetic

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestShopdSyntheticPushesOverOTLP: a CronJob pod is never scraped, so the
// results must leave over OTLP before the process exits. `shopd synthetic`
// sends them to a real collector (SHOP_OTELCOL, `make otelcol`), whose
// Prometheus exporter re-exports them with the resource attributes as labels
// (as the Shop's gateway does): the names and labels the dashboard queries.
func TestShopdSyntheticPushesOverOTLP(t *testing.T) {
	bin := os.Getenv("SHOP_OTELCOL")
	if bin == "" {
		t.Skip("SHOP_OTELCOL is not set (make otelcol; SHOP_OTELCOL=$(hack/otelcol/build.sh | tail -1))")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	grpcAddr, promAddr := startCollector(t, ctx, bin)

	out, err := command(ctx, "synthetic", append(urlEnv(stack), "OTEL_EXPORTER_OTLP_ENDPOINT=http://"+grpcAddr, "K8S_POD_NAME=demo-synthetic-29000000-abcde", "SHOP_NAME=demo")...).CombinedOutput()
	if err != nil {
		t.Fatalf("shopd synthetic: %v\n%s", err, out)
	}
	// The exit flushed the metrics; the collector has them (or soon will).
	var body string
	waitFor(t, 30*time.Second, "shop_synthetic_runs_total on the collector", func() bool {
		resp, err := http.Get("http://" + promAddr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return strings.Contains(body, "shop_synthetic_runs_total{")
	})
	fams := scrape(t, "http://"+promAddr+"/metrics")
	runs := fams["shop_synthetic_runs_total"]
	if runs == nil || len(runs.GetMetric()) != 1 {
		t.Fatalf("shop_synthetic_runs_total: %v\n%s", runs, body)
	}
	l := labels(runs.GetMetric()[0])
	for k, want := range map[string]string{"result": Pass, "service_name": "synthetic", "shop_name": "demo", "k8s_pod_name": "demo-synthetic-29000000-abcde"} {
		if l[k] != want {
			t.Errorf("shop_synthetic_runs_total label %s = %q, want %q (labels %v)", k, l[k], want, l)
		}
	}
	steps := map[string]bool{}
	for _, m := range fams["shop_synthetic_step_duration_seconds"].GetMetric() {
		steps[labels(m)["step"]] = true
	}
	for _, s := range Steps {
		if !steps[s] {
			t.Errorf("no shop_synthetic_step_duration_seconds{step=%q}: %v", s, steps)
		}
	}
	if fams["shop_synthetic_last_success_timestamp_seconds"] == nil {
		t.Errorf("no shop_synthetic_last_success_timestamp_seconds:\n%s", body)
	}
}

// startCollector runs the real collector with an OTLP gRPC receiver and a
// Prometheus exporter that turns resource attributes into labels, as the
// Shop's gateway does.
func startCollector(t *testing.T, ctx context.Context, bin string) (grpcAddr, promAddr string) {
	t.Helper()
	grpcAddr, promAddr, telAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	_, telPort, _ := strings.Cut(telAddr, ":")
	cfg := fmt.Sprintf(`receivers:
  otlp:
    protocols:
      grpc: {endpoint: %q}
exporters:
  prometheus:
    endpoint: %q
    resource_to_telemetry_conversion: {enabled: true}
    metric_expiration: 5m
service:
  telemetry:
    metrics:
      readers:
        - pull: {exporter: {prometheus: {host: 127.0.0.1, port: %s}}}
  pipelines:
    metrics: {receivers: [otlp], exporters: [prometheus]}
`, grpcAddr, promAddr, telPort)
	runCollector(t, ctx, bin, cfg, "http://"+promAddr+"/metrics")
	return grpcAddr, promAddr
}

// runCollector runs the real collector with config until the test ends
// (its log is printed when the test failed) and waits until readyURL answers.
func runCollector(t *testing.T, ctx context.Context, bin, config, readyURL string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "otelcol.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	col := exec.CommandContext(ctx, bin, "--config", path)
	colLog := &syncBuffer{}
	col.Stdout, col.Stderr = colLog, colLog
	col.WaitDelay = 5 * time.Second
	if err := col.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = col.Process.Signal(os.Interrupt)
		_ = col.Wait()
		if t.Failed() {
			t.Logf("collector log:\n%s", colLog.String())
		}
	})
	waitFor(t, 30*time.Second, "the collector at "+readyURL, func() bool {
		resp, err := http.Get(readyURL)
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
}

// waitFor polls cond every 200ms until it holds or the limit passes.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); !cond(); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", limit, what)
		}
	}
}

// TestShopdLoadgenPushesOverOTLP: the load generator's metrics reach the
// collector too (flushed at the latest when it stops).
func TestShopdLoadgenPushesOverOTLP(t *testing.T) {
	bin := os.Getenv("SHOP_OTELCOL")
	if bin == "" {
		t.Skip("SHOP_OTELCOL is not set (make otelcol; SHOP_OTELCOL=$(hack/otelcol/build.sh | tail -1))")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	grpcAddr, promAddr := startCollector(t, ctx, bin)
	cmd := command(ctx, "loadgen", append(urlEnv(stack), "ADMIN_ADDR="+freeAddr(t), "OTEL_EXPORTER_OTLP_ENDPOINT=http://"+grpcAddr,
		"LOADGEN_RPS=20", "LOADGEN_DURATION=1s", "LOADGEN_MIX=search=1", "LOADGEN_USERS=1")...)
	log := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "the load generator's run", func() bool { return strings.Contains(log.String(), `"msg":"loadgen done"`) })
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("shopd loadgen: %v\n%s", err, log.String())
	}
	waitFor(t, 30*time.Second, "shop_loadgen_requests_total on the collector", func() bool {
		return scrape(t, "http://"+promAddr+"/metrics")["shop_loadgen_requests_total"] != nil
	})
	fams := scrape(t, "http://"+promAddr+"/metrics")
	for _, m := range fams["shop_loadgen_requests_total"].GetMetric() {
		if l := labels(m); l["scenario"] != "search" || l["outcome"] != "ok" || l["service_name"] != "loadgen" {
			t.Errorf("shop_loadgen_requests_total labels %v", l)
		}
	}
	if fams["shop_loadgen_request_duration_seconds"] == nil {
		t.Errorf("no shop_loadgen_request_duration_seconds on the collector: %v", keys(fams))
	}
}

// syncBuffer is a log a process writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
