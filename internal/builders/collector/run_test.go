package collector_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
)

// These tests run the real collector (SHOP_OTELCOL) on loopback with a
// rendered config whose listen addresses and exporter endpoints are moved to
// free local ports, and send it OTLP/JSON: they prove what validation cannot,
// that the redaction, resource, span metrics and tail sampling settings do
// what docs/observability.md says. k8s_attributes needs a cluster and is
// taken out of the pipelines.

// recorder is an OTLP/HTTP endpoint that keeps every request body by path.
type recorder struct {
	mu     sync.Mutex
	bodies map[string][]string
}

func newRecorder(t *testing.T) (*recorder, string) {
	r := &recorder{bodies: map[string][]string{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var body io.Reader = req.Body
		if req.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(req.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		b, _ := io.ReadAll(body)
		r.mu.Lock()
		r.bodies[req.URL.Path] = append(r.bodies[req.URL.Path], string(b))
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("{}"))
	}))
	t.Cleanup(srv.Close)
	return r, srv.URL
}

func (r *recorder) all(path string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.bodies[path], "\n")
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

// eventually polls cond every 200ms until it holds or the bound passes.
func eventually(t *testing.T, bound time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(bound); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("after %s: %s", bound, what)
}

// loopbackCollector is a running collector and its OTLP/HTTP, prometheus
// exporter and own telemetry (otelcol_*) addresses.
type loopbackCollector struct{ otlpHTTP, prometheus, telemetry string }

// runCollector starts the collector on cfg, moved to loopback: receivers,
// the prometheus exporter and its own telemetry on free ports, every OTLP
// exporter sending OTLP/JSON to sink.
// keep maps exporter IDs to leave as rendered except for their endpoint.
func runCollector(t *testing.T, bin string, cfg map[string]any, sink string, keep map[string]string) loopbackCollector {
	t.Helper()
	cfg = deepCopy(cfg)
	lc := loopbackCollector{
		otlpHTTP:   fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		prometheus: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
	}
	set := func(v any, path ...string) {
		if err := unstructured.SetNestedField(cfg, v, path...); err != nil {
			t.Fatal(err)
		}
	}
	set(fmt.Sprintf("127.0.0.1:%d", freePort(t)), "receivers", "otlp", "protocols", "grpc", "endpoint")
	set(map[string]any{"endpoint": lc.otlpHTTP}, "receivers", "otlp", "protocols", "http")
	lc.telemetry = moveTelemetry(t, cfg)
	ex := cfg["exporters"].(map[string]any)
	for _, id := range componentIDs(ex) {
		switch {
		case id == "prometheus":
			set(lc.prometheus, "exporters", id, "endpoint")
		case keep[id] != "":
			set(keep[id], "exporters", id, "endpoint")
		case strings.HasPrefix(id, "otlp_grpc/"), strings.HasPrefix(id, "otlp_http/"):
			// Every OTLP exporter sends OTLP/JSON over HTTP to the sink.
			delete(ex, id)
			to := "otlp_http/" + strings.SplitN(id, "/", 2)[1]
			ex[to] = map[string]any{"endpoint": sink, "encoding": "json", "retry_on_failure": map[string]any{"enabled": false}}
			rename(cfg, id, to)
		}
	}
	// k8s_attributes needs a cluster.
	delete(cfg["processors"].(map[string]any), "k8s_attributes")
	pipelines, _, _ := unstructured.NestedMap(cfg, "service", "pipelines")
	for name, p := range pipelines {
		pm := p.(map[string]any)
		var procs []any
		for _, id := range pm["processors"].([]any) {
			if id != "k8s_attributes" {
				procs = append(procs, id)
			}
		}
		pm["processors"] = procs
		pipelines[name] = pm
	}
	set(pipelines, "service", "pipelines")

	start(t, bin, cfg)
	eventually(t, 30*time.Second, "the collector's OTLP/HTTP receiver never answered", func() bool {
		resp, err := http.Post("http://"+lc.otlpHTTP+"/v1/traces", "application/json", strings.NewReader("{}"))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return lc
}

func componentIDs(m map[string]any) []string {
	var ids []string
	for id := range m {
		ids = append(ids, id)
	}
	return ids
}

// start runs bin --config on cfg until the test ends; its config and log
// are printed when the test failed.
func start(t *testing.T, bin string, cfg map[string]any) {
	t.Helper()
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--config="+file)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("%s config:\n%s\nlog:\n%s", filepath.Base(bin), b, logs.String())
		}
	})
}

// rename replaces a component ID in every pipeline.
func rename(cfg map[string]any, from, to string) {
	pipelines, _, _ := unstructured.NestedMap(cfg, "service", "pipelines")
	for name, p := range pipelines {
		pm := p.(map[string]any)
		for _, list := range []string{"receivers", "exporters"} {
			ids, _ := pm[list].([]any)
			for i, id := range ids {
				if id == from {
					ids[i] = to
				}
			}
		}
		pipelines[name] = pm
	}
	_ = unstructured.SetNestedMap(cfg, pipelines, "service", "pipelines")
}

func collectorConfig(t *testing.T, spec shopv1.ShopSpec, name string) map[string]any {
	t.Helper()
	for _, u := range renderObjects(t, spec) {
		if u.GetKind() == "OpenTelemetryCollector" && u.GetName() == name {
			cfg, _, err := unstructured.NestedMap(u.Object, "spec", "config")
			if err != nil {
				t.Fatal(err)
			}
			return cfg
		}
	}
	t.Fatalf("no collector %s rendered", name)
	return nil
}

func post(t *testing.T, url, body string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST %s: %s %s", url, resp.Status, b)
	}
}

// span returns one OTLP/JSON span of its own trace.
func span(traceID, name string, start time.Time, d time.Duration, statusCode int, attrs string) string {
	return fmt.Sprintf(`{"traceId":%q,"spanId":"eee19b7ec3c1b174","name":%q,"kind":2,`+
		`"startTimeUnixNano":"%d","endTimeUnixNano":"%d","attributes":[%s],"status":{"code":%d}}`,
		traceID, name, start.UnixNano(), start.Add(d).UnixNano(), attrs, statusCode)
}

func resourceSpans(spans ...string) string {
	return `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"orders"}},` +
		`{"key":"deployment.environment.name","value":{"stringValue":"spoofed"}}]},` +
		`"scopeSpans":[{"scope":{"name":"test"},"spans":[` + strings.Join(spans, ",") + `]}]}]}`
}

func attr(k, v string) string {
	return fmt.Sprintf(`{"key":%q,"value":{"stringValue":%q}}`, k, v)
}

const (
	card  = "4111 1111 1111 1111"
	email = "jane.doe@example.com"
	jwt   = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl"
)

// TestRunGateway: the development gateway redacts PII in spans and logs,
// stamps the environment and shop name, and derives span metrics that the
// prometheus exporter serves.
func TestRunGateway(t *testing.T) {
	bin := os.Getenv("SHOP_OTELCOL")
	if bin == "" {
		t.Skip("SHOP_OTELCOL is not set (see TestValidateWithOtelcol)")
	}
	t.Parallel()
	rec, sink := newRecorder(t)
	// The Loki exporter stays as rendered (OTLP protobuf, gzip) with the
	// sink standing in for Loki at <sink>/otlp: it must post to /otlp/v1/logs.
	lc := runCollector(t, bin, collectorConfig(t, withExporters(shopv1.Development, "jaeger", "loki"), "demo"), sink,
		map[string]string{"otlp_http/loki": sink + "/otlp"})

	now := time.Now()
	withEvent := strings.TrimSuffix(span("5b8efff798038103d269b633813fc60c", "POST /api/orders", now, 120*time.Millisecond, 1,
		strings.Join([]string{
			attr("payment.card", card), attr("user.email", email),
			attr("http.request.header.authorization", "Bearer "+jwt),
			attr("http.request.method", "POST"), attr("http.route", "/api/orders"),
		}, ",")), "}") + fmt.Sprintf(`,"events":[{"name":"exception","timeUnixNano":"%d","attributes":[%s]}]}`,
		now.UnixNano(), attr("exception.message", "card "+card+" declined"))
	post(t, "http://"+lc.otlpHTTP+"/v1/traces", resourceSpans(withEvent))
	post(t, "http://"+lc.otlpHTTP+"/v1/logs", `{"resourceLogs":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"payment"}}]},`+
		`"scopeLogs":[{"scope":{},"logRecords":[{"timeUnixNano":"`+fmt.Sprint(now.UnixNano())+`",`+
		`"body":{"stringValue":"charging `+card+` for `+email+`"},"attributes":[`+attr("token", jwt)+`]}]}]}]}`)

	eventually(t, 30*time.Second, "no traces and logs exported", func() bool {
		return rec.all("/v1/traces") != "" && rec.all("/otlp/v1/logs") != ""
	})
	for _, path := range []string{"/v1/traces", "/otlp/v1/logs"} {
		got := rec.all(path)
		for _, secret := range []string{card, email, jwt, "Bearer"} {
			if strings.Contains(got, secret) {
				t.Errorf("%s exported %q unredacted:\n%s", path, secret, got)
			}
		}
		if !strings.Contains(got, "[REDACTED]") {
			t.Errorf("%s: nothing redacted:\n%s", path, got)
		}
		// Traces arrive as OTLP/JSON, logs as protobuf, where strings are raw.
		for _, want := range []string{"deployment.environment.name", "development", "shop.name", "demo"} {
			if !strings.Contains(got, want) {
				t.Errorf("%s lacks %s:\n%s", path, want, got)
			}
		}
	}
	if strings.Contains(rec.all("/v1/traces"), "spoofed") {
		t.Error("the resource processor kept the client's deployment.environment.name")
	}
	if !strings.Contains(rec.all("/v1/traces"), `"card [REDACTED] declined"`) {
		t.Errorf("the span event's attribute was not redacted:\n%s", rec.all("/v1/traces"))
	}
	if !strings.Contains(rec.all("/v1/traces"), `"/api/orders"`) {
		t.Error("the route attribute was redacted too")
	}

	// Span metrics reach the prometheus exporter, with the documented names.
	var metrics string
	eventually(t, 45*time.Second, "no span metrics on the prometheus exporter", func() bool {
		resp, err := http.Get("http://" + lc.prometheus + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		metrics = string(b)
		return strings.Contains(metrics, "traces_span_metrics_calls_total")
	})
	for _, want := range []string{
		`traces_span_metrics_calls_total{`, `traces_span_metrics_duration_milliseconds_bucket{`,
		`service_name="orders"`, `span_name="POST /api/orders"`, `http_route="/api/orders"`,
		`deployment_environment_name="development"`, `shop_name="demo"`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("prometheus exporter lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", metrics)
	}
}

// TestRunSampler: the production sampler keeps errors and slow traces and,
// with samplingPercentage 0, drops the rest.
func TestRunSampler(t *testing.T) {
	bin := os.Getenv("SHOP_OTELCOL")
	if bin == "" {
		t.Skip("SHOP_OTELCOL is not set (see TestValidateWithOtelcol)")
	}
	t.Parallel()
	spec := withExporters(shopv1.Production, "jaeger")
	spec.Observability.Collector.SamplingPercentage = ptr.To[int32](0)
	cfg := collectorConfig(t, spec, "demo-sampler")
	// Decide after 2 s instead of 10 s: the test waits for the decisions.
	if err := unstructured.SetNestedField(cfg, "2s", "processors", "tail_sampling", "decision_wait"); err != nil {
		t.Fatal(err)
	}
	rec, sink := newRecorder(t)
	lc := runCollector(t, bin, cfg, sink, nil)

	now := time.Now()
	post(t, "http://"+lc.otlpHTTP+"/v1/traces", resourceSpans(
		span("00000000000000000000000000000e01", "error", now, 10*time.Millisecond, 2, ""),
		span("00000000000000000000000000000510", "slow", now, 3*time.Second, 1, ""),
		span("000000000000000000000000000000f1", "ordinary", now, 10*time.Millisecond, 1, ""),
		// A failing readiness probe: dropped even though errors are kept.
		span("00000000000000000000000000000b01", "probe", now, 10*time.Millisecond, 2, attr("url.path", "/readyz")),
	))
	// Traces are decided in the order they arrived, and exported in that
	// order: once a later error trace is out, the ordinary one was decided.
	post(t, "http://"+lc.otlpHTTP+"/v1/traces", resourceSpans(
		span("00000000000000000000000000000e02", "late-error", time.Now(), 10*time.Millisecond, 2, "")))
	eventually(t, 30*time.Second, "the error and slow traces were not exported", func() bool {
		got := rec.all("/v1/traces")
		return strings.Contains(got, `"error"`) && strings.Contains(got, `"slow"`) && strings.Contains(got, `"late-error"`)
	})
	if got := rec.all("/v1/traces"); strings.Contains(got, `"ordinary"`) {
		t.Errorf("samplingPercentage 0 kept an ordinary trace:\n%s", got)
	}
	if got := rec.all("/v1/traces"); strings.Contains(got, `"probe"`) {
		t.Errorf("the drop-probes policy kept a /readyz trace:\n%s", got)
	}
}

// TestRunJaeger sends a span through the rendered development gateway into
// the rendered development Jaeger, both real, and reads it back from
// Jaeger's query API, redacted.
func TestRunJaeger(t *testing.T) {
	otelcol, jaeger := os.Getenv("SHOP_OTELCOL"), os.Getenv("SHOP_JAEGER")
	if otelcol == "" || jaeger == "" {
		t.Skip("SHOP_OTELCOL and SHOP_JAEGER must both be set (see TestValidateWithOtelcol, TestJaegerConfigValidates)")
	}
	t.Parallel()
	spec := withExporters(shopv1.Development, "jaeger")
	var jcfg map[string]any
	for _, u := range renderObjects(t, spec) {
		if u.GetKind() == "ConfigMap" && u.GetName() == "demo-jaeger" {
			data, _, _ := unstructured.NestedString(u.Object, "data", "config.yaml")
			if err := yaml.Unmarshal([]byte(data), &jcfg); err != nil {
				t.Fatal(err)
			}
		}
	}
	addr := func() string { return fmt.Sprintf("127.0.0.1:%d", freePort(t)) }
	otlpGRPC, health, query := addr(), addr(), addr()
	for v, path := range map[string][]string{
		otlpGRPC: {"receivers", "otlp", "protocols", "grpc", "endpoint"},
		addr():   {"receivers", "otlp", "protocols", "http", "endpoint"},
		health:   {"extensions", "healthcheckv2", "http", "endpoint"},
		query:    {"extensions", "jaeger_query", "http", "endpoint"},
		addr():   {"extensions", "jaeger_query", "grpc", "endpoint"},
	} {
		if err := unstructured.SetNestedField(jcfg, v, path...); err != nil {
			t.Fatal(err)
		}
	}
	if err := unstructured.SetNestedField(jcfg, map[string]any{"level": "none"}, "service", "telemetry", "metrics"); err != nil {
		t.Fatal(err)
	}
	start(t, jaeger, jcfg)
	eventually(t, 30*time.Second, "Jaeger never became healthy", func() bool {
		resp, err := http.Get("http://" + health + "/status")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	_, sink := newRecorder(t)
	lc := runCollector(t, otelcol, collectorConfig(t, spec, "demo"), sink, map[string]string{"otlp_grpc/jaeger": otlpGRPC})
	const traceID = "7a3c0de5f00dfeed7a3c0de5f00dfeed"
	post(t, "http://"+lc.otlpHTTP+"/v1/traces", resourceSpans(span(traceID, "POST /api/payments", time.Now(), 40*time.Millisecond, 1,
		attr("payment.card", card))))
	var got string
	eventually(t, 30*time.Second, "the trace never reached Jaeger", func() bool {
		resp, err := http.Get("http://" + query + "/api/traces/" + traceID)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		got = string(b)
		return resp.StatusCode == http.StatusOK && strings.Contains(got, "POST /api/payments")
	})
	if strings.Contains(got, card) || !strings.Contains(got, "[REDACTED]") {
		t.Errorf("Jaeger holds the span unredacted:\n%s", got)
	}
}
