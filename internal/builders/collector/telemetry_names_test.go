package collector_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/prometheus/prometheus/model/textparse"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/builders/collector"
	"github.com/shopplatform/shop-operator/internal/builders/monitoring"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
)

// The collector's own metric names (monitoring.Metrics(), FromCollector) are
// kept by hand; these tests hold them against the real collector's
// telemetry endpoint, scraped as Prometheus scrapes it.

// producedBy lists, per FromCollector name, the labels that rules.go and
// dashboards.go select or group on, for the names one run can produce.
var producedBy = map[string][]string{
	"otelcol_receiver_accepted_spans":          {"receiver"},
	"otelcol_receiver_accepted_metric_points":  {"receiver"},
	"otelcol_receiver_accepted_log_records":    {"receiver"},
	"otelcol_receiver_refused_spans":           {"receiver"}, // counted (as 0) with every request
	"otelcol_receiver_refused_metric_points":   {"receiver"},
	"otelcol_receiver_refused_log_records":     {"receiver"},
	"otelcol_exporter_sent_spans":              {"exporter"},
	"otelcol_exporter_sent_metric_points":      {"exporter"},
	"otelcol_exporter_sent_log_records":        {"exporter"},
	"otelcol_exporter_send_failed_log_records": {"exporter"}, // the Loki exporter fails on purpose
	"otelcol_processor_incoming_items":         {"processor", "otel_signal"},
	"otelcol_processor_outgoing_items":         {"processor", "otel_signal"},
	"otelcol_exporter_queue_size":              {"exporter"},
	"otelcol_exporter_queue_capacity":          {"exporter"},
	// The sampler tier only (TestTelemetryNamesSampler).
	monitoring.TailSamplingTraces:       {"sampled"},
	monitoring.TailSamplingPolicyTraces: {"policy", "sampled"},
}

// notProduced are the FromCollector names this run cannot produce without
// contortions, and why. They must not appear in another form either.
var notProduced = map[string]string{
	"otelcol_exporter_enqueue_failed_spans":         "needs a full sending queue",
	"otelcol_exporter_enqueue_failed_metric_points": "needs a full sending queue",
	"otelcol_exporter_enqueue_failed_log_records":   "needs a full sending queue",
	// Only the Loki exporter is pointed at a closed port: failing the trace
	// exporter too would starve span metrics, failing the prometheus
	// exporter is not possible (it serves, it does not send).
	"otelcol_exporter_send_failed_spans":         "only the logs exporter fails in this run",
	"otelcol_exporter_send_failed_metric_points": "the prometheus exporter cannot fail to send",
}

// dialect is how a Prometheus scrapes: its Accept header.
type dialect struct{ name, accept string }

// dialects: Prometheus 3 with its defaults (config.DefaultScrapeProtocols,
// OpenMetrics first, metric_name_validation_scheme utf8, hence escaping
// allow-utf-8), and a Prometheus with legacy names (Prometheus 2, or 3 with
// metric_name_validation_scheme legacy), which the collector serves with
// dots escaped to underscores. Over OpenMetrics a counter's samples would
// carry _total whatever the family is called, so the names are checked in
// the format each one negotiates.
var dialects = []dialect{
	{
		name: "prometheus-3-utf8",
		accept: "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5," +
			"application/openmetrics-text;version=0.0.1;q=0.4," +
			"text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3," +
			"text/plain;version=0.0.4;q=0.2,*/*;q=0.1",
	},
	{
		name: "legacy-names",
		accept: "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4," +
			"text/plain;version=0.0.4;q=0.3,*/*;q=0.2",
	},
}

// TestTelemetryNames runs the rendered development gateway with traces,
// metrics and logs flowing and its Loki exporter pointed at a closed
// loopback port, scrapes the collector's own telemetry and checks every
// FromCollector name of monitoring.Metrics() against it.
func TestTelemetryNames(t *testing.T) {
	bin := os.Getenv("SHOP_OTELCOL")
	if bin == "" {
		t.Skip("SHOP_OTELCOL is not set (see TestValidateWithOtelcol)")
	}
	t.Parallel()
	checkListsCoverMetrics(t)

	cfg := collectorConfig(t, withExporters(shopv1.Development, "jaeger", "loki"), "demo")
	// The rendered exporter retries for minutes before it counts a failure:
	// fail at the first refused connection.
	if err := unstructured.SetNestedField(cfg, false, "exporters", "otlp_http/loki", "retry_on_failure", "enabled"); err != nil {
		t.Fatal(err)
	}
	rec, sink := newRecorder(t)
	closed := fmt.Sprintf("http://127.0.0.1:%d/otlp", freePort(t)) // nothing listens there
	lc := runCollector(t, bin, cfg, sink, map[string]string{"otlp_http/loki": closed})

	now := time.Now()
	post(t, "http://"+lc.otlpHTTP+"/v1/traces", resourceSpans(
		span("5b8efff798038103d269b633813fc60c", "GET /api/catalog", now, 20*time.Millisecond, 1, attr("http.route", "/api/catalog"))))
	post(t, "http://"+lc.otlpHTTP+"/v1/metrics", `{"resourceMetrics":[{"resource":{"attributes":[`+attr("service.name", "orders")+`]},`+
		`"scopeMetrics":[{"scope":{"name":"test"},"metrics":[{"name":"shop_test_gauge","gauge":{"dataPoints":[`+
		`{"asDouble":1,"timeUnixNano":"`+fmt.Sprint(now.UnixNano())+`"}]}}]}]}]}`)
	post(t, "http://"+lc.otlpHTTP+"/v1/logs", `{"resourceLogs":[{"resource":{"attributes":[`+attr("service.name", "payment")+`]},`+
		`"scopeLogs":[{"scope":{},"logRecords":[{"timeUnixNano":"`+fmt.Sprint(now.UnixNano())+`","body":{"stringValue":"hello"}}]}]}]}`)

	// The batch processor holds data up to its 5 s timeout; then the trace
	// reaches the sink, and the logs fail against the closed port.
	var s scrape
	eventually(t, 45*time.Second, "the collector's telemetry never showed sent spans, sent metric points and failed log records", func() bool {
		s = scrapeTelemetry(t, lc.telemetry, dialects[0])
		return s.value("otelcol_exporter_sent_spans", "exporter", "otlp_http/jaeger") > 0 &&
			s.value("otelcol_exporter_sent_metric_points", "exporter", "prometheus") > 0 &&
			s.value("otelcol_exporter_send_failed_log_records", "exporter", "otlp_http/loki") > 0
	})
	if rec.all("/v1/traces") == "" {
		t.Error("the trace never reached the sink")
	}
	for _, want := range []struct{ name, label, value string }{
		{"otelcol_receiver_accepted_spans", "receiver", "otlp"},
		{"otelcol_receiver_accepted_metric_points", "receiver", "otlp"},
		{"otelcol_receiver_accepted_log_records", "receiver", "otlp"},
		{"otelcol_processor_incoming_items", "processor", "memory_limiter"},
		{"otelcol_processor_outgoing_items", "processor", "transform/redact"},
	} {
		if s.value(want.name, want.label, want.value) <= 0 {
			t.Errorf("%s{%s=%q} is not positive", want.name, want.label, want.value)
		}
	}
	checkDialects(t, lc.telemetry, withoutPrefix(producedBy, "otelcol_processor_tail_sampling_"))
}

// TestTelemetryNamesSampler: the production sampler tier (<shop>-sampler)
// reports the same receiver and exporter names.
func TestTelemetryNamesSampler(t *testing.T) {
	bin := os.Getenv("SHOP_OTELCOL")
	if bin == "" {
		t.Skip("SHOP_OTELCOL is not set (see TestValidateWithOtelcol)")
	}
	t.Parallel()
	spec := withExporters(shopv1.Production, "jaeger")
	spec.Observability.Collector.SamplingPercentage = ptr.To[int32](100)
	cfg := collectorConfig(t, spec, "demo-sampler")
	if err := unstructured.SetNestedField(cfg, "1s", "processors", "tail_sampling", "decision_wait"); err != nil {
		t.Fatal(err)
	}
	_, sink := newRecorder(t)
	lc := runCollector(t, bin, cfg, sink, nil)
	post(t, "http://"+lc.otlpHTTP+"/v1/traces", resourceSpans(
		span("00000000000000000000000000000e01", "error", time.Now(), 10*time.Millisecond, 2, "")))

	var s scrape
	eventually(t, 45*time.Second, "the sampler never reported the sampled span as sent", func() bool {
		s = scrapeTelemetry(t, lc.telemetry, dialects[0])
		return s.value("otelcol_exporter_sent_spans", "exporter", "otlp_http/jaeger") > 0
	})
	if s.value("otelcol_receiver_accepted_spans", "receiver", "otlp") <= 0 {
		t.Error("otelcol_receiver_accepted_spans{receiver=\"otlp\"} is not positive")
	}
	// tail_sampling is not built on processorhelper: it reports no
	// processor_incoming/outgoing_items; the dashboard shows its decisions
	// from its own counters instead (checked with the other names below).
	if s.value("otelcol_processor_incoming_items", "processor", "tail_sampling") > 0 {
		t.Log("tail_sampling reports otelcol_processor_incoming_items now: the dashboard panel shows sampling")
	}
	if s.value(monitoring.TailSamplingTraces, "sampled", "true") <= 0 {
		t.Errorf("%s{sampled=\"true\"} is not positive", monitoring.TailSamplingTraces)
	}
	if s.value(monitoring.TailSamplingPolicyTraces, "policy", "errors") <= 0 {
		t.Errorf("%s{policy=\"errors\"} is not positive", monitoring.TailSamplingPolicyTraces)
	}
	checkDialects(t, lc.telemetry, withoutSignals(producedBy, "metric_points", "log_records"))
}

// withoutPrefix leaves out the names a run does not produce.
func withoutPrefix(names map[string][]string, prefix string) map[string][]string {
	out := map[string][]string{}
	for n, ls := range names {
		if !strings.HasPrefix(n, prefix) {
			out[n] = ls
		}
	}
	return out
}

// withoutSignals leaves out the names of signals a run does not carry.
func withoutSignals(names map[string][]string, signals ...string) map[string][]string {
	out := map[string][]string{}
	for n, ls := range names {
		if !slices.ContainsFunc(signals, func(s string) bool { return strings.HasSuffix(n, "_"+s) }) {
			out[n] = ls
		}
	}
	return out
}

// checkDialects scrapes once more as each Prometheus dialect and checks the
// names; the scrape is printed when a check failed.
func checkDialects(t *testing.T, addr string, produced map[string][]string) {
	t.Helper()
	for _, d := range dialects {
		s := scrapeTelemetry(t, addr, d)
		if s.body == "" {
			t.Errorf("%s: the telemetry endpoint did not answer", d.name)
			continue
		}
		before := t.Failed()
		checkNames(t, s, produced)
		if t.Failed() && !before {
			t.Logf("%s: scraped as %s:\n%s", d.name, s.contentType, s.body)
		}
	}
}

// checkListsCoverMetrics: every FromCollector name is either produced or
// listed with a reason, and the lists name nothing else.
func checkListsCoverMetrics(t *testing.T) {
	t.Helper()
	for name, src := range monitoring.Metrics() {
		_, p := producedBy[name]
		_, n := notProduced[name]
		if src == monitoring.FromCollector && !p && !n {
			t.Errorf("%s (FromCollector) is neither in producedBy nor in notProduced", name)
		}
	}
	for _, list := range []map[string]string{keysOf(producedBy), notProduced} {
		for name := range list {
			if monitoring.Metrics()[name] != monitoring.FromCollector {
				t.Errorf("%s is listed here but is not a FromCollector name of monitoring.Metrics()", name)
			}
		}
	}
}

// checkNames compares the FromCollector names of monitoring.Metrics() with
// the scraped series: names this run produces must be there with their
// labels; no scraped name may be a near miss (another form) of any of them.
func checkNames(t *testing.T, s scrape, produced map[string][]string) {
	t.Helper()
	for name, src := range monitoring.Metrics() {
		if src != monitoring.FromCollector {
			continue
		}
		for _, got := range s.names() {
			if got != name && sameMetric(got, name) {
				t.Errorf("%s: Metrics() names %s, the collector serves %s", s.dialect.name, name, got)
			}
		}
		wantLabels, ok := produced[name]
		if !ok {
			continue
		}
		series := s.series[name]
		if len(series) == 0 {
			t.Errorf("%s: Metrics() names %s, the collector does not serve it", s.dialect.name, name)
			continue
		}
		for _, l := range wantLabels {
			if !slices.ContainsFunc(series, func(ls labels.Labels) bool { return ls.Get(l) != "" }) {
				t.Errorf("%s: %s has no %s label (rules and dashboards select on it): %v", s.dialect.name, name, l, series)
			}
		}
		// The dotted form of a label the queries use (kept as such by a
		// UTF-8 Prometheus) must be gone after the ServiceMonitor's relabelling.
		for _, l := range wantLabels {
			dotted := strings.ReplaceAll(l, "_", ".")
			if dotted != l && slices.ContainsFunc(series, func(ls labels.Labels) bool { return ls.Has(dotted) }) {
				t.Errorf("%s: %s keeps the label %q besides %s after the ServiceMonitor's relabelling", s.dialect.name, name, dotted, l)
			}
		}
	}
}

// sameMetric tells whether two names are forms of one metric: equal once the
// suffixes exporters add or drop (_total, units, _ratio) are removed.
func sameMetric(a, b string) bool {
	norm := func(n string) string {
		for _, suffix := range []string{"_total", "_ratio", "_items", "_1", "_seconds", "_bytes"} {
			n = strings.TrimSuffix(n, suffix)
		}
		return n
	}
	return norm(a) == norm(b)
}

// scrape is one scrape of the collector's telemetry, as Prometheus would
// store it: series labels by metric name, after the rendered ServiceMonitor's
// metricRelabelings.
type scrape struct {
	dialect           dialect
	contentType, body string
	series            map[string][]labels.Labels
	values            map[string][]float64 // parallel to series
}

func (s scrape) names() []string {
	var out []string
	for n := range s.series {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// value sums the series of name whose label has the given value.
func (s scrape) value(name, label, value string) float64 {
	var sum float64
	for i, ls := range s.series[name] {
		if ls.Get(label) == value {
			sum += s.values[name][i]
		}
	}
	return sum
}

// scrapeTelemetry GETs addr/metrics with the dialect's Accept header and
// parses the answer with Prometheus's own parser for the negotiated format.
func scrapeTelemetry(t *testing.T, addr string, d dialect) scrape {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", d.accept)
	s := scrape{dialect: d, series: map[string][]labels.Labels{}, values: map[string][]float64{}}
	relabelings, err := telemetryRelabelings()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return s // not up yet: the caller polls
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return s
	}
	s.contentType, s.body = resp.Header.Get("Content-Type"), string(b)
	p, err := textparse.New(b, s.contentType, labels.NewSymbolTable(), textparse.ParserOptions{})
	if p == nil {
		t.Fatalf("Prometheus cannot parse %q: %v", s.contentType, err)
	}
	for {
		e, err := p.Next()
		if errors.Is(err, io.EOF) {
			return s
		}
		if err != nil {
			t.Fatalf("parsing the telemetry (%s): %v\n%s", s.contentType, err, b)
		}
		if e != textparse.EntrySeries {
			continue
		}
		var ls labels.Labels
		p.Labels(&ls)
		lb := labels.NewBuilder(ls)
		if !relabel.ProcessBuilder(lb, relabelings...) {
			continue
		}
		ls = lb.Labels()
		_, _, v := p.Series()
		name := ls.Get(labels.MetricName)
		s.series[name] = append(s.series[name], ls)
		s.values[name] = append(s.values[name], v)
	}
}

// moveTelemetry moves the collector's own metrics, which the rendered config
// serves on 0.0.0.0:TelemetryPort (the port the ServiceMonitor scrapes),
// to a free loopback port, and returns host:port.
func moveTelemetry(t *testing.T, cfg map[string]any) string {
	t.Helper()
	readers, _, _ := unstructured.NestedSlice(cfg, "service", "telemetry", "metrics", "readers")
	var prom map[string]any
	for _, r := range readers {
		if p, ok, _ := unstructured.NestedMap(r.(map[string]any), "pull", "exporter", "prometheus"); ok {
			prom = p
		}
	}
	if prom == nil || fmt.Sprint(prom["port"]) != fmt.Sprint(collector.TelemetryPort) {
		t.Fatalf("the rendered config serves no prometheus reader on port %d: %v", collector.TelemetryPort, readers)
	}
	port := freePort(t)
	prom["host"], prom["port"] = "127.0.0.1", int64(port)
	readers = []any{map[string]any{"pull": map[string]any{"exporter": map[string]any{"prometheus": prom}}}}
	if err := unstructured.SetNestedSlice(cfg, readers, "service", "telemetry", "metrics", "readers"); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}

func keysOf(m map[string][]string) map[string]string {
	out := map[string]string{}
	for k := range m {
		out[k] = ""
	}
	return out
}

// telemetryRelabelings are the metricRelabelings of the rendered
// ServiceMonitor endpoint that scrapes the collector's own telemetry, as
// Prometheus's relabel configs (with Prometheus's defaults, validated for
// UTF-8 names as Prometheus 3 does).
var telemetryRelabelings = sync.OnceValues(func() ([]*relabel.Config, error) {
	in := rendertest.Input(shopv1.ShopSpec{Environment: shopv1.Production})
	objs, err := monitoring.Build(in)
	if err != nil {
		return nil, err
	}
	for _, o := range objs {
		sm, ok := o.(*monitoringv1.ServiceMonitor)
		if !ok || sm.Name != in.Name("collector") {
			continue
		}
		for _, ep := range sm.Spec.Endpoints {
			if ep.Port != monitoring.CollectorMonitoringPort {
				continue
			}
			var out []*relabel.Config
			for _, r := range ep.MetricRelabelConfigs {
				c, err := promRelabelConfig(r)
				if err != nil {
					return nil, err
				}
				out = append(out, c)
			}
			return out, nil
		}
	}
	return nil, fmt.Errorf("no ServiceMonitor %s with a %s endpoint rendered", in.Name("collector"), monitoring.CollectorMonitoringPort)
})

// promRelabelConfig converts a prometheus-operator relabelling into
// Prometheus's own, the way the operator writes it into the scrape config:
// unset fields keep Prometheus's defaults.
func promRelabelConfig(r monitoringv1.RelabelConfig) (*relabel.Config, error) {
	c := relabel.DefaultRelabelConfig
	for _, l := range r.SourceLabels {
		c.SourceLabels = append(c.SourceLabels, model.LabelName(l))
	}
	if r.Separator != nil {
		c.Separator = *r.Separator
	}
	if r.Regex != "" {
		re, err := relabel.NewRegexp(r.Regex)
		if err != nil {
			return nil, err
		}
		c.Regex = re
	}
	if r.Replacement != nil {
		c.Replacement = *r.Replacement
	}
	if r.Modulus > 0 {
		c.Modulus = uint64(r.Modulus)
	}
	c.TargetLabel = r.TargetLabel
	if r.Action != "" {
		c.Action = relabel.Action(strings.ToLower(r.Action))
	}
	return &c, c.Validate(model.UTF8Validation)
}
