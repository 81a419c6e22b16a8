package backups_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shopplatform/shop-operator/internal/builders/backups"
	"github.com/shopplatform/shop-operator/internal/pgtest"
)

// TestMetricsThroughCollector pushes a real backup's metrics into the real
// collector (hack/otelcol, `make otelcol`; SHOP_OTELCOL names the binary)
// with an OTLP receiver and the Prometheus exporter set as the Shop's
// collector sets it, then scrapes the exporter as Prometheus would: the
// series carry the names the alert and the docs use, and the database label.
func TestMetricsThroughCollector(t *testing.T) {
	bin := os.Getenv("SHOP_OTELCOL")
	if bin == "" {
		t.Skip("SHOP_OTELCOL is not set: run `make otelcol` and set it to the binary")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pg := pgtest.Start(t, superuserPassword, nil)
	pg.MustSQL(t, ctx, "postgres", "CREATE DATABASE orders")
	pg.MustSQL(t, ctx, "orders", "CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders SELECT generate_series(1, 100)")

	otlpPort, promPort := freePort(t), freePort(t)
	// The receiver and the exporter's settings of internal/builders/collector
	// (otlpReceiverConfig, prometheusConfig).
	config := fmt.Sprintf(`receivers:
  otlp:
    protocols:
      http: {endpoint: "127.0.0.1:%d"}
exporters:
  prometheus:
    endpoint: "127.0.0.1:%d"
    resource_to_telemetry_conversion: {enabled: true}
    enable_open_metrics: true
    metric_expiration: 5m
service:
  telemetry:
    metrics: {level: none}
  pipelines:
    metrics: {receivers: [otlp], exporters: [prometheus]}
`, otlpPort, promPort)
	file := filepath.Join(t.TempDir(), "otelcol.yaml")
	if err := os.WriteFile(file, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	col := exec.CommandContext(ctx, bin, "--config="+file)
	var logs strings.Builder
	col.Stdout, col.Stderr = &logs, &logs
	if err := col.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = col.Process.Kill(); _ = col.Wait() }()
	if !waitListening(otlpPort) || !waitListening(promPort) {
		t.Fatalf("the collector did not start:\n%s", logs.String())
	}

	out := runBackup(t, ctx, pg.Env("orders"), t.TempDir(), fmt.Sprintf("http://127.0.0.1:%d/v1/metrics", otlpPort), "3")
	if strings.Contains(out, "could not push") {
		t.Fatalf("the collector refused the push:\n%s\n%s", out, logs.String())
	}
	metrics := scrape(t, promPort)
	for _, name := range []string{backups.MetricLastSuccess, backups.MetricSize, backups.MetricDuration} {
		found := false
		for _, line := range strings.Split(metrics, "\n") {
			if strings.HasPrefix(line, name+"{") && strings.Contains(line, `database="orders"`) &&
				strings.Contains(line, `shop_name="demo"`) && strings.Contains(line, `job="db-backup"`) {
				found = true
				t.Log(line)
			}
		}
		if !found {
			t.Errorf("no %s{database=\"orders\", shop_name=\"demo\", job=\"db-backup\"} in the collector's metrics:\n%s", name, metrics)
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitListening waits (at most about 30 s) until the port accepts connections.
func waitListening(port int) bool {
	for range 300 {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
			c.Close()
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

func scrape(t *testing.T, port int) string {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", port))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
