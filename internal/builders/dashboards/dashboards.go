package dashboards

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"k8s.io/utils/ptr"

	"github.com/shopplatform/shop-operator/internal/builders/monitoring"
	"github.com/shopplatform/shop-operator/internal/render"
)

// rate is Grafana's rate window for the panel's resolution.
const rate = "$__rate_interval"

func (b *builder) requests(by, extra string) string {
	return fmt.Sprintf(`sum by (%s) (rate(%s%s[%s]))`, by, monitoring.HTTPServerDurationCount, b.s(extra), rate)
}

func (b *builder) errorRatio(by, extra, window string) string {
	errs := "http_response_status_code=~\"5..\""
	if extra != "" {
		errs = extra + ", " + errs
	}
	total := fmt.Sprintf(`sum by (%s) (rate(%s%s[%s]))`, by, monitoring.HTTPServerDurationCount, b.s(extra), window)
	// "or 0 * total": no 5xx at all is a ratio of 0, not an empty panel.
	return fmt.Sprintf(`(
  sum by (%s) (rate(%s%s[%s]))
  or
  0 * %s
)
/
%s`, by, monitoring.HTTPServerDurationCount, b.s(errs), window, total, total)
}

func (b *builder) quantile(phi, by, extra string) string {
	if by != "" {
		by += ", "
	}
	return fmt.Sprintf(`histogram_quantile(%s, sum by (%sle) (rate(%s%s[%s])))`, phi, by, monitoring.HTTPServerDurationBucket, b.s(extra), rate)
}

func (b *builder) sumRate(metric, by, extra string) string {
	return fmt.Sprintf(`sum by (%s) (rate(%s%s[%s]))`, by, metric, b.s(extra), rate)
}

func svcMatcher(svc string) string { return fmt.Sprintf("service=%q", svc) }

// allServices matches the commerce services (not a re-export by the collector).
func allServices() string { return fmt.Sprintf("service=~%q", strings.Join(render.Services, "|")) }

// overview: RED per service, SLO burn, orders and revenue.
func overview(b *builder) *dashboard.DashboardBuilder {
	slo := b.in.Spec.Observability.Alerting.SLO
	errorBudget, err := monitoring.Budget("alerting.slo.availability", slo.Availability)
	d := dashboard.NewDashboardBuilder(b.title("Overview")).
		Description("Rate, errors and duration of every service, SLO burn rates, orders and revenue.")
	if err != nil {
		return d.RecordError("slo", err)
	}
	all := allServices()
	return d.
		WithRow(dashboard.NewRowBuilder("Business")).
		WithPanel(single("Orders per minute", "short", q{fmt.Sprintf(`sum(rate(%s%s[%s])) * 60`, monitoring.OrdersPlaced, b.s(""), rate), ""})).
		WithPanel(single("Revenue, last hour", "short", q{fmt.Sprintf(`sum(increase(%s%s[1h])) / 100`, monitoring.OrderValueSum, b.s("")), ""})).
		WithPanel(single("Checkout success", "percentunit", q{fmt.Sprintf(`sum(rate(%s%s[%s])) / sum(rate(%s%s[%s]))`,
			monitoring.Checkouts, b.s(`outcome="confirmed"`), rate, monitoring.Checkouts, b.s(""), rate), ""})).
		WithPanel(single("Logins per minute", "short", q{fmt.Sprintf(`sum(rate(%s%s[%s])) * 60`, monitoring.AuthLogins, b.s(`outcome="success"`), rate), ""})).
		WithPanel(graph("Orders and revenue per hour", "short",
			q{fmt.Sprintf(`sum by (currency) (increase(%s%s[1h]))`, monitoring.OrdersPlaced, b.s("")), "orders {{currency}}"},
			q{fmt.Sprintf(`sum by (currency) (increase(%s%s[1h])) / 100`, monitoring.OrderValueSum, b.s("")), "revenue {{currency}}"})).
		WithPanel(graph("Checkouts by outcome", "reqps", q{b.sumRate(monitoring.Checkouts, "outcome", ""), "{{outcome}}"})).
		WithRow(dashboard.NewRowBuilder("Services (RED)")).
		WithPanel(graph("Requests per second", "reqps", q{b.requests("service", all), "{{service}}"})).
		WithPanel(graph("Server error ratio", "percentunit", q{b.errorRatio("service", all, rate), "{{service}}"})).
		WithPanel(latency("p99 latency", q{b.quantile("0.99", "service", all), "{{service}}"})).
		WithPanel(graph("Pods up", "short", q{fmt.Sprintf(`sum by (service) (%s%s)`, monitoring.Up, b.s(all)), "{{service}}"})).
		WithRow(dashboard.NewRowBuilder("SLO burn rate (1 = the budget lasts exactly 30 days)")).
		WithPanel(graph(fmt.Sprintf("Availability burn rate, 1h (target %s%%)", slo.Availability), "short",
			q{fmt.Sprintf("(\n%s\n) / %s", b.errorRatio("service", all, "1h"), num(errorBudget)), "{{service}}"})).
		WithPanel(graph(fmt.Sprintf("Availability burn rate, 6h (target %s%%)", slo.Availability), "short",
			q{fmt.Sprintf("(\n%s\n) / %s", b.errorRatio("service", all, "6h"), num(errorBudget)), "{{service}}"}))
}

// service: one commerce service, by route.
func service(b *builder, svc string) *dashboard.DashboardBuilder {
	sel := svcMatcher(svc)
	d := dashboard.NewDashboardBuilder(b.title("Service " + svc)).
		Description("Requests, errors and latency of " + svc + " by route; restarts; CPU, memory, goroutines and GC; its business metrics.").
		WithRow(dashboard.NewRowBuilder("HTTP")).
		WithPanel(graph("Requests per second by route", "reqps", q{b.requests("http_route, http_request_method", sel), "{{http_request_method}} {{http_route}}"})).
		WithPanel(graph("Errors by route and status", "reqps", q{b.sumRate(monitoring.HTTPServerDurationCount, "http_route, http_response_status_code",
			sel+`, http_response_status_code=~"[45].."`), "{{http_response_status_code}} {{http_route}}"})).
		WithPanel(latency("Latency percentiles (exemplars link to traces)",
			q{b.quantile("0.5", "", sel), "p50"}, q{b.quantile("0.95", "", sel), "p95"}, q{b.quantile("0.99", "", sel), "p99"})).
		WithPanel(latency("p99 latency by route", q{b.quantile("0.99", "http_route", sel), "{{http_route}}"})).
		WithRow(dashboard.NewRowBuilder("Pods")).
		WithPanel(graph("Targets up", "short", q{fmt.Sprintf(`sum(%s%s)`, monitoring.Up, b.s(sel)), "up"})).
		WithPanel(graph("Container restarts (15m)", "short", q{fmt.Sprintf(`sum by (pod) (increase(%s{namespace=%q, pod=~"%s-.+"}[15m]))`,
			monitoring.KubeContainerRestarts, b.in.Shop.Namespace, b.in.Name(svc)), "{{pod}}"})).
		WithRow(dashboard.NewRowBuilder("Resources")).
		WithPanel(graph("CPU (cores)", "short", q{b.sumRate(monitoring.ProcessCPUSeconds, "pod", sel), "{{pod}}"})).
		WithPanel(graph("Memory", "bytes",
			q{fmt.Sprintf(`sum by (pod) (%s%s)`, monitoring.ProcessResidentMemory, b.s(sel)), "resident {{pod}}"},
			q{fmt.Sprintf(`sum by (pod) (%s%s)`, monitoring.GoHeapAlloc, b.s(sel)), "heap {{pod}}"})).
		WithPanel(graph("Goroutines", "short", q{fmt.Sprintf(`sum by (pod) (%s%s)`, monitoring.GoGoroutines, b.s(sel)), "{{pod}}"})).
		WithPanel(graph("GC", "short",
			q{b.sumRate(monitoring.GoGCDurationCount, "pod", sel), "cycles/s {{pod}}"},
			q{b.sumRate(monitoring.GoGCDurationSum, "pod", sel), "pause s/s {{pod}}"}))
	business := map[string][]*q{
		render.Auth: {
			{b.sumRate(monitoring.AuthLogins, "outcome", ""), "logins {{outcome}}"},
			{b.sumRate(monitoring.AuthRegistrations, "service", ""), "registrations"},
		},
		render.Catalog: {
			{b.sumRate(monitoring.StockReservations, "operation", ""), "{{operation}}"},
			{b.sumRate(monitoring.StockConflicts, "service", ""), "conflicts"},
		},
		render.Orders: {
			{b.sumRate(monitoring.Checkouts, "outcome", ""), "checkout {{outcome}}"},
			{b.sumRate(monitoring.OrdersPlaced, "currency", ""), "placed {{currency}}"},
		},
		render.Payment: {
			{b.sumRate(monitoring.Payments, "outcome", ""), "{{outcome}}"},
			{b.sumRate(monitoring.PaymentRefunds, "service", ""), "refunds"},
		},
	}
	if qs := business[svc]; qs != nil {
		d = d.WithRow(dashboard.NewRowBuilder("Business"))
		for _, x := range qs {
			d = d.WithPanel(graph(x.legend+" per second", "short", *x))
		}
	}
	return d
}

// payments: charges by outcome, provider failures, refunds, latency.
func payments(b *builder) *dashboard.DashboardBuilder {
	failed := fmt.Sprintf(`outcome=~%q`, monitoring.PaymentFailedOutcomes)
	return dashboard.NewDashboardBuilder(b.title("Payments")).
		Description("Charges by outcome, provider failures (declined cards are not failures), refunds and latency.").
		WithPanel(single("Provider failure ratio", "percentunit", q{fmt.Sprintf(`sum(rate(%s%s[%s])) / sum(rate(%s%s[%s]))`,
			monitoring.Payments, b.s(failed), rate, monitoring.Payments, b.s(""), rate), ""})).
		WithPanel(single("Charges per minute", "short", q{fmt.Sprintf(`sum(rate(%s%s[%s])) * 60`, monitoring.Payments, b.s(""), rate), ""})).
		WithPanel(single("Declined ratio", "percentunit", q{fmt.Sprintf(`sum(rate(%s%s[%s])) / sum(rate(%s%s[%s]))`,
			monitoring.Payments, b.s(`outcome=~"card_declined|insufficient_funds"`), rate, monitoring.Payments, b.s(""), rate), ""})).
		WithPanel(single("Refunds per hour", "short", q{fmt.Sprintf(`sum(increase(%s%s[1h]))`, monitoring.PaymentRefunds, b.s("")), ""})).
		WithPanel(graph("Charges by outcome", "short", q{b.sumRate(monitoring.Payments, "outcome, currency", ""), "{{outcome}} {{currency}}"})).
		WithPanel(latency("Payment API latency", q{b.quantile("0.5", "", svcMatcher(render.Payment)), "p50"},
			q{b.quantile("0.99", "", svcMatcher(render.Payment)), "p99"}))
}

// databases: the postgres_exporter sidecars.
func databases(b *builder) *dashboard.DashboardBuilder {
	return dashboard.NewDashboardBuilder(b.title("Databases")).
		Description("Postgres of auth, catalog and orders, from the postgres_exporter sidecars.").
		WithPanel(graph("Up", "short", q{fmt.Sprintf(`max by (service) (%s%s)`, monitoring.PgUp, b.s("")), "{{service}}"})).
		WithPanel(graph("Connections in use / max_connections", "percentunit", q{fmt.Sprintf("sum by (service) (%s%s)\n/\nmax by (service) (%s%s)",
			monitoring.PgStatActivityCount, b.s(""), monitoring.PgMaxConnections, b.s("")), "{{service}}"})).
		WithPanel(graph("Transactions per second", "short",
			q{b.sumRate(monitoring.PgXactCommit, "service", ""), "{{service}} commit"},
			q{b.sumRate(monitoring.PgXactRollback, "service", ""), "{{service}} rollback"})).
		WithPanel(graph("Deadlocks per second", "short", q{b.sumRate(monitoring.PgDeadlocks, "service", ""), "{{service}}"})).
		WithPanel(graph("Database size", "bytes", q{fmt.Sprintf(`sum by (service) (%s%s)`, monitoring.PgDatabaseSize, b.s("")), "{{service}}"}))
}

// collector: accepted, refused and dropped data per signal and exporter.
func collector(b *builder) *dashboard.DashboardBuilder {
	d := dashboard.NewDashboardBuilder(b.title("Collector")).
		Description("The OpenTelemetry collector's own telemetry: data accepted and refused by receivers, sent, failed and dropped by exporters.")
	for _, s := range []struct{ signal, title string }{{"spans", "Spans"}, {"metric_points", "Metric points"}, {"log_records", "Log records"}} {
		m := func(kind string) string { return "otelcol_" + kind + "_" + s.signal }
		d = d.WithRow(dashboard.NewRowBuilder(s.title)).
			WithPanel(graph(s.title+" received", "short",
				q{b.sumRate(m("receiver_accepted"), "receiver", ""), "accepted {{receiver}}"},
				q{b.sumRate(m("receiver_refused"), "receiver", ""), "refused {{receiver}}"})).
			WithPanel(graph(s.title+" exported", "short",
				q{b.sumRate(m("exporter_sent"), "exporter", ""), "sent {{exporter}}"},
				q{b.sumRate(m("exporter_send_failed"), "exporter", ""), "failed {{exporter}}"},
				q{b.sumRate(m("exporter_enqueue_failed"), "exporter", ""), "dropped {{exporter}}"}))
	}
	d = d.WithRow(dashboard.NewRowBuilder("Queues and processors")).
		WithPanel(graph("Sending queue fill", "percentunit", q{fmt.Sprintf("max by (exporter) (otelcol_exporter_queue_size%s)\n/\nmax by (exporter) (otelcol_exporter_queue_capacity%s)",
			b.s(""), b.s("")), "{{exporter}}"})).
		WithPanel(graph("Items filtered or sampled away by processors", "short", q{fmt.Sprintf(
			"sum by (processor, otel_signal) (rate(otelcol_processor_incoming_items%s[%s]))\n-\nsum by (processor, otel_signal) (rate(otelcol_processor_outgoing_items%s[%s]))",
			b.s(""), rate, b.s(""), rate), "{{processor}} {{otel_signal}}"}))
	if !ptr.Deref(b.in.Spec.Observability.Collector.TailSampling, false) {
		return d // no sampler tier: the panel below could never show a point
	}
	// tail_sampling reports no items in and out (above): its decisions,
	// from the sampler tier.
	return d.WithPanel(graph("Traces kept and dropped by tail sampling", "short",
		q{b.sumRate(monitoring.TailSamplingTraces, "sampled", ""), "all policies sampled={{sampled}}"},
		q{b.sumRate(monitoring.TailSamplingPolicyTraces, "policy, sampled", ""), "{{policy}} sampled={{sampled}}"}))
}

// debug (development): logs from Loki filtered by trace ID, latency with
// exemplars that open the trace in Jaeger.
func debug(b *builder) *dashboard.DashboardBuilder {
	options := strings.Join(render.Services, ",")
	return dashboard.NewDashboardBuilder(b.title("Debug")).
		Description("Development: the services' logs from Loki filtered by service and trace ID; latency exemplars open traces in Jaeger.").
		WithVariable(datasourceVariable(VarLoki, "loki", "Loki")).
		WithVariable(datasourceVariable(VarJaeger, "jaeger", "Jaeger")).
		WithVariable(dashboard.NewCustomVariableBuilder("service").Label("Service").Values(dashboard.StringOrMap{String: &options}).
			Multi(true).IncludeAll(true).AllValue(".*")).
		WithVariable(dashboard.NewTextBoxVariableBuilder("trace_id").Label("Trace ID").Description("Empty shows every log line.")).
		Link(dashboard.NewDashboardLinkBuilder("Open trace ${trace_id} in Jaeger").Type(dashboard.DashboardLinkTypeLink).
			Url(`/explore?left={"datasource":"${jaeger}","queries":[{"refId":"A","queryType":"search","query":"${trace_id}"}]}`).TargetBlank(true)).
		WithPanel(logPanel("Logs", LogQuery(b.in))).
		WithPanel(latency("p99 latency by service (click an exemplar for its trace)",
			q{b.quantile("0.99", "service", `service=~"${service:regex}"`), "{{service}}"})).
		WithPanel(graph("Server errors by service", "reqps", q{b.sumRate(monitoring.HTTPServerDurationCount, "service",
			`service=~"${service:regex}", http_response_status_code=~"5.."`), "{{service}}"}))
}

// LogQuery selects the Shop's service logs in Loki (OTLP ingestion indexes
// service.name and k8s.namespace.name; trace_id and shop.name are
// structured metadata).
func LogQuery(in render.Input) string {
	return fmt.Sprintf(`{k8s_namespace_name=%q, service_name=~"${service:regex}"} | shop_name=%q | trace_id=~"${trace_id}.*"`,
		in.Shop.Namespace, in.Shop.Name)
}

func num(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
