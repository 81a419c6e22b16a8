package synthetic

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/metric/noop"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/shopplatform/shop-operator/services/internal/devstack"
	"github.com/shopplatform/shop-operator/services/internal/loadgen"
)

// costConfig runs the same telemetry twice through a real collector: as
// received (raw) and through the cost controls of docs/operations-testing.md
// (the tail-sampling drop policy for probe traces, the cardinality guard for
// metrics). The collector's own counters tell the difference.
const costConfig = `receivers:
  otlp:
    protocols:
      grpc: {endpoint: %q}
processors:
  transform/cardinality:
    error_mode: ignore
    metric_statements:
      - context: resource
        statements:
          - delete_matching_keys(resource.attributes, "^(k8s\\.pod\\.uid|k8s\\.replicaset\\.(name|uid)|k8s\\.deployment\\.uid|service\\.instance\\.id|process\\..+|host\\..+|os\\..+|telemetry\\.sdk\\..+)$")
      - context: datapoint
        statements:
          - delete_matching_keys(datapoint.attributes, "^(enduser\\..+|user\\.(id|email|name)|session\\.id|order\\.id|payment\\.id|http\\.request\\.header\\..+|url\\.(full|query)|client\\.address|network\\.peer\\..+)$")
          - limit(datapoint.attributes, 10, ["http.route", "http.request.method", "http.response.status_code", "outcome", "scenario", "step", "result", "currency"])
  tail_sampling:
    decision_wait: 1s
    policies:
      - name: drop-probes
        type: drop
        drop:
          drop_sub_policy:
            - name: probe-traces
              type: ottl_condition
              ottl_condition:
                error_mode: ignore
                span:
                  - 'kind == SPAN_KIND_CLIENT and IsRootSpan()'
                  - 'IsMatch(attributes["url.path"], "^/(healthz|readyz|livez|metrics)$")'
      - name: keep-the-rest
        type: always_sample
exporters:
  debug/raw: {verbosity: basic}
  debug/controlled: {verbosity: basic}
  prometheus/raw:
    endpoint: %q
    resource_to_telemetry_conversion: {enabled: true}
  prometheus/controlled:
    endpoint: %q
    resource_to_telemetry_conversion: {enabled: true}
service:
  telemetry:
    metrics:
      readers:
        - pull: {exporter: {prometheus: {host: 127.0.0.1, port: %s}}}
  pipelines:
    traces/raw: {receivers: [otlp], exporters: [debug/raw]}
    traces/controlled: {receivers: [otlp], processors: [tail_sampling], exporters: [debug/controlled]}
    metrics/raw: {receivers: [otlp], exporters: [prometheus/raw]}
    metrics/controlled: {receivers: [otlp], processors: [transform/cardinality], exporters: [prometheus/controlled]}
`

// TestCostControls measures what the recommended collector settings save on
// the real services (a second devstack that exports OTLP): the spans of
// readiness probes, the spans of the load, and the labels of the metrics.
// It asserts only that the probe traces go and the load's stay; the
// figures are logged for docs/operations-testing.md.
func TestCostControls(t *testing.T) {
	bin := os.Getenv("SHOP_OTELCOL")
	if bin == "" {
		t.Skip("SHOP_OTELCOL is not set (make otelcol; SHOP_OTELCOL=$(hack/otelcol/build.sh | tail -1))")
	}
	grpcAddr, rawAddr, ctlAddr, telAddr := freeAddr(t), freeAddr(t), freeAddr(t), freeAddr(t)
	_, telPort, _ := strings.Cut(telAddr, ":")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	runCollector(t, ctx, bin, fmt.Sprintf(costConfig, grpcAddr, rawAddr, ctlAddr, telPort), "http://"+telAddr+"/metrics")

	// The services export everything (no head sampling) with a short batch
	// delay so each phase is counted before the next starts.
	st, err := devstack.Start(ctx, devstack.Options{Shopd: shopd, Env: []string{"LOG_LEVEL=warn",
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + grpcAddr, "OTEL_BSP_SCHEDULE_DELAY=200", "OTEL_METRIC_EXPORT_INTERVAL=1000"}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Stop()

	sent := func(exporter string) float64 {
		// Collector 0.161 serves its own counters without the _total suffix.
		fams := scrape(t, "http://"+telAddr+"/metrics")
		for _, name := range []string{"otelcol_exporter_sent_spans", "otelcol_exporter_sent_spans_total"} {
			for _, m := range fams[name].GetMetric() {
				if labels(m)["exporter"] == exporter {
					return m.GetCounter().GetValue() + m.GetUntyped().GetValue()
				}
			}
		}
		return 0
	}
	// settle waits until both trace pipelines have stopped moving.
	settle := func() (raw, controlled float64) {
		last := -1.0
		waitFor(t, time.Minute, "the trace pipelines to settle", func() bool {
			time.Sleep(1500 * time.Millisecond) // > the batch delay and the decision wait
			raw, controlled = sent("debug/raw"), sent("debug/controlled")
			done := raw+controlled == last
			last = raw + controlled
			return done
		})
		return raw, controlled
	}
	raw0, ctl0 := settle() // start-up: migrations, seeding, the first JWKS fetches

	// Phase 1: what a kubelet does, 20 readiness probes each for the
	// frontend and orders (the two whose /readyz calls peers).
	const probes = 20
	for range probes {
		for _, svc := range []string{"frontend", "orders"} {
			resp, err := http.Get(st.Services[svc].AdminURL() + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
	}
	raw1, ctl1 := settle()
	probeSpans, probeKept := raw1-raw0, ctl1-ctl0
	t.Logf("readiness probes: %.0f spans per frontend+orders probe pair raw, %.0f kept after the drop policy", probeSpans/probes, probeKept/probes)
	// The services trace no readiness work (platform.WithoutTracing), so
	// nothing reaches the collector; its drop policy for probe traces is the
	// second line of defence (tested in internal/builders/collector).
	if probeSpans != 0 || probeKept != 0 {
		t.Errorf("probes: %v spans raw, %v kept; want none", probeSpans, probeKept)
	}

	// Phase 2: the load generator, 40 scenarios of the default mix, its own
	// spans exported too (as in the cluster).
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(grpcAddr), otlptracegrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(200*time.Millisecond)))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	defer func() { otel.SetTracerProvider(prev); _ = tp.Shutdown(context.Background()) }()
	lcfg := loadgen.Config{URLs: urls(st), Rate: 20, Duration: 2 * time.Second, Users: 2}
	lcfg.Mix, _ = loadgen.ParseMix(loadgen.DefaultMix)
	m, err := loadgen.NewMetrics(noop.NewMeterProvider().Meter("test"))
	if err != nil {
		t.Fatal(err)
	}
	g, err := loadgen.New(ctx, lcfg, m)
	if err != nil {
		t.Fatal(err)
	}
	res, err := g.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tp.ForceFlush(ctx); err != nil {
		t.Fatal(err)
	}
	raw2, ctl2 := settle()
	loadSpans, loadKept := raw2-raw1, ctl2-ctl1
	t.Logf("load: %d scenarios (and the set-up: 2 shoppers registered and signed in), %.0f spans raw (%.1f per scenario), %.0f kept", res.Requests, loadSpans, loadSpans/float64(res.Requests), loadKept)
	if loadKept != loadSpans {
		t.Errorf("the drop policy dropped the load's traces: %v of %v kept", loadKept, loadSpans)
	}

	// Metrics: labels per series before and after the cardinality guard.
	rawFams, ctlFams := scrape(t, "http://"+rawAddr+"/metrics"), scrape(t, "http://"+ctlAddr+"/metrics")
	series := func(f map[string]*dto.MetricFamily) (n, labels int) {
		for _, fam := range f {
			for _, m := range fam.GetMetric() {
				n++
				labels += len(m.GetLabel())
			}
		}
		return n, labels
	}
	rn, rl := series(rawFams)
	cn, cl := series(ctlFams)
	t.Logf("metrics: raw %d series, %.1f labels each; guarded %d series, %.1f labels each", rn, float64(rl)/float64(max(rn, 1)), cn, float64(cl)/float64(max(cn, 1)))
	for name, fam := range ctlFams {
		for _, m := range fam.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.HasPrefix(l.GetName(), "telemetry_sdk_") || strings.HasPrefix(l.GetName(), "process_") {
					t.Fatalf("%s kept %s after the guard", name, l.GetName())
				}
			}
		}
	}
}
