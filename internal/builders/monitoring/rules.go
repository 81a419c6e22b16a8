package monitoring

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/common/model"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/builders/operations"
	"github.com/shopplatform/shop-operator/internal/render"
)

// RunbookBaseURL is where runbook_url annotations point: docs/runbooks/<alert>.md.
const RunbookBaseURL = "https://github.com/shopplatform/shop-operator/blob/main/docs/runbooks/"

// Alert names. Each has a runbook docs/runbooks/<name>.md.
const (
	AlertHighErrorRatio         = "ShopServiceHighErrorRatio"
	AlertHighLatency            = "ShopServiceHighLatency"
	AlertAvailabilityBurn       = "ShopSLOAvailabilityBudgetBurn"
	AlertLatencyBurn            = "ShopSLOLatencyBudgetBurn"
	AlertPaymentFailures        = "ShopPaymentFailureRatioHigh"
	AlertStockConflictsSpike    = "ShopStockReservationConflictsSpike"
	AlertDatabaseDown           = "ShopDatabaseDown"
	AlertDatabaseConnections    = "ShopDatabaseConnectionsSaturated"
	AlertCollectorRefusing      = "ShopCollectorRefusingData"
	AlertCollectorExportFailing = "ShopCollectorExportFailing"
	AlertCollectorDropping      = "ShopCollectorDroppingData"
	AlertPodCrashLooping        = "ShopPodCrashLooping"
	AlertSyntheticFailing       = "ShopSyntheticCheckFailing"
	AlertSyntheticMissing       = "ShopSyntheticCheckMissing"
)

// Alerts lists every alert the rules may raise.
var Alerts = []string{
	AlertHighErrorRatio, AlertHighLatency, AlertAvailabilityBurn, AlertLatencyBurn,
	AlertPaymentFailures, AlertStockConflictsSpike, AlertDatabaseDown, AlertDatabaseConnections,
	AlertCollectorRefusing, AlertCollectorExportFailing, AlertCollectorDropping, AlertPodCrashLooping,
	AlertSyntheticFailing, AlertSyntheticMissing,
}

// Severities.
const (
	Critical = "critical"
	Warning  = "warning"
)

// Recording rules, one per SLO window. Their labels: namespace, shop, service.
const (
	RecordErrorRatio = "shop:http_server_request_errors:ratio_rate" // + window
	RecordSlowRatio  = "shop:http_server_request_slow:ratio_rate"   // + window
	RecordP99        = "shop:http_server_request_duration_seconds:p99_rate5m"
)

// burnRate is one tier of the Google SRE workbook's multi-window,
// multi-burn-rate alerts: both windows must burn faster than factor.
type burnRate struct {
	long, short string
	factor      float64
	severity    string
	forDuration string
}

var burnRates = []burnRate{
	{"1h", "5m", 14.4, Critical, "2m"}, // 2% of a 30-day budget in one hour
	{"6h", "30m", 6, Warning, "15m"},   // 5% of a 30-day budget in six hours
}

// SLOWindows are the windows the recording rules compute.
var SLOWindows = []string{"5m", "30m", "1h", "6h"}

// LatencyBuckets are the bucket boundaries (seconds) of
// http.server.request.duration advised by the semantic conventions; the SLO
// latency threshold must be one of them to be measured exactly. The CRD's
// rule on SLOSpec lists them too: TestEveryBuilderErrorIsRefusedOrStalled
// (controllers) holds the two in step.
var LatencyBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}

// rules builds expressions for one Shop.
type rules struct {
	in  render.Input
	sel string // matches the Shop's series: namespace and shop
}

func prometheusRule(in render.Input) (*monitoringv1.PrometheusRule, error) {
	slo := in.Spec.Observability.Alerting.SLO
	availability, err := Budget("alerting.slo.availability", slo.Availability)
	if err != nil {
		return nil, err
	}
	latencyBudget, err := Budget("alerting.slo.latencyTarget", slo.LatencyTarget)
	if err != nil {
		return nil, err
	}
	threshold := 0.5
	if slo.LatencyThreshold != nil {
		threshold = slo.LatencyThreshold.Seconds()
	}
	if !slices.Contains(LatencyBuckets, threshold) {
		return nil, fmt.Errorf("alerting.slo.latencyThreshold %s is not a bucket boundary of %s; use one of %s",
			time.Duration(threshold*float64(time.Second)), HTTPServerDuration, bucketList())
	}
	r := rules{in: in, sel: fmt.Sprintf(`namespace=%q, shop=%q`, in.Shop.Namespace, in.Shop.Name)}
	groups := []monitoringv1.RuleGroup{
		{Name: in.Shop.Name + ".slo.recording", Rules: r.recording(threshold)},
		{Name: in.Shop.Name + ".services", Rules: r.serviceAlerts(threshold)},
		{Name: in.Shop.Name + ".slo", Rules: slices.Concat(
			r.burnAlerts(AlertAvailabilityBurn, RecordErrorRatio, "availability", slo.Availability, availability),
			r.burnAlerts(AlertLatencyBurn, RecordSlowRatio, "latency", slo.LatencyTarget, latencyBudget))},
		{Name: in.Shop.Name + ".business", Rules: r.businessAlerts()},
		{Name: in.Shop.Name + ".databases", Rules: r.databaseAlerts()},
		{Name: in.Shop.Name + ".collector", Rules: r.collectorAlerts()},
		{Name: in.Shop.Name + ".kubernetes", Rules: r.kubernetesAlerts()},
	}
	if syntheticMetricsArrive(in) {
		synthetic, err := r.syntheticAlerts()
		if err != nil {
			return nil, err
		}
		groups = append(groups, monitoringv1.RuleGroup{Name: in.Shop.Name + ".synthetic", Rules: synthetic})
	}

	meta := in.ObjectMeta(in.Name("alerts"), Component)
	meta.Labels = labels(in)
	return &monitoringv1.PrometheusRule{ObjectMeta: meta, Spec: monitoringv1.PrometheusRuleSpec{Groups: groups}}, nil
}

// Budget turns a target in percent ("99.9") into the error budget (0.001).
func Budget(field, percent string) (float64, error) {
	p, err := strconv.ParseFloat(percent, 64)
	if err != nil || p <= 0 || p >= 100 {
		return 0, fmt.Errorf("%s %q is not a percentage between 0 and 100", field, percent)
	}
	return round((100 - p) / 100), nil
}

// round drops float noise (1-0.999 = 0.0010000000000000009).
func round(f float64) float64 { return math.Round(f*1e9) / 1e9 }

func num(f float64) string { return strconv.FormatFloat(round(f), 'g', -1, 64) }

func bucketList() string {
	var s []string
	for _, b := range LatencyBuckets {
		s = append(s, num(b)+"s")
	}
	return strings.Join(s, ", ")
}

// httpSel selects the services' HTTP series (not a re-export by the collector).
func (r rules) httpSel(extra string) string {
	s := fmt.Sprintf(`%s, service=~%q`, r.sel, strings.Join(render.Services, "|"))
	if extra != "" {
		s += ", " + extra
	}
	return "{" + s + "}"
}

// leMatcher matches a bucket bound whether it is written 1 or 1.0 (Prometheus 3 normalises).
func leMatcher(seconds float64) string {
	if seconds == math.Trunc(seconds) {
		return fmt.Sprintf(`le=~"%s|%s.0"`, num(seconds), num(seconds))
	}
	return fmt.Sprintf(`le="%s"`, num(seconds))
}

const byService = "namespace, shop, service"

func (r rules) recording(threshold float64) []monitoringv1.Rule {
	var out []monitoringv1.Rule
	for _, w := range SLOWindows {
		total := fmt.Sprintf(`sum by (%s) (rate(%s%s[%s]))`, byService, HTTPServerDurationCount, r.httpSel(""), w)
		// "or 0 * total": a service without a single 5xx has a ratio of 0,
		// not no series (its panels and SLO reports would show no data).
		out = append(out,
			record(RecordErrorRatio+w, fmt.Sprintf(`(
  sum by (%s) (rate(%s%s[%s]))
  or
  0 * %s
)
/
%s`, byService, HTTPServerDurationCount, r.httpSel(`http_response_status_code=~"5.."`), w, total, total)),
			record(RecordSlowRatio+w, fmt.Sprintf(`1 - (
  sum by (%s) (rate(%s%s[%s]))
  /
  %s
)`, byService, HTTPServerDurationBucket, r.httpSel(leMatcher(threshold)), w, total)))
	}
	out = append(out, record(RecordP99, fmt.Sprintf(`histogram_quantile(0.99, sum by (%s, le) (rate(%s%s[5m])))`,
		byService, HTTPServerDurationBucket, r.httpSel(""))))
	return out
}

func (r rules) serviceAlerts(threshold float64) []monitoringv1.Rule {
	errRatio := RecordErrorRatio + "5m{" + r.sel + "}"
	return []monitoringv1.Rule{
		r.alert(AlertHighErrorRatio, Warning, "10m", errRatio+" > 0.05",
			"{{ $labels.service }} answers more than 5% of requests with a server error",
			"{{ $labels.service }} of shop {{ $labels.shop }} failed {{ $value | humanizePercentage }} of its requests with a 5xx over the last 5 minutes."),
		r.alert(AlertHighErrorRatio, Critical, "5m", errRatio+" > 0.2",
			"{{ $labels.service }} answers more than 20% of requests with a server error",
			"{{ $labels.service }} of shop {{ $labels.shop }} failed {{ $value | humanizePercentage }} of its requests with a 5xx over the last 5 minutes."),
		r.alert(AlertHighLatency, Warning, "15m", fmt.Sprintf("%s{%s} > %s", RecordP99, r.sel, num(2*threshold)),
			fmt.Sprintf("{{ $labels.service }} p99 latency is above %ss", num(2*threshold)),
			fmt.Sprintf("The 99th percentile of {{ $labels.service }}'s request duration is {{ $value | humanizeDuration }}, more than twice the SLO threshold of %ss.", num(threshold))),
	}
}

// burnAlerts raises an alert when both windows of a tier burn the error
// budget faster than the tier's factor.
func (r rules) burnAlerts(name, record, slo, target string, budget float64) []monitoringv1.Rule {
	var out []monitoringv1.Rule
	for _, b := range burnRates {
		limit := num(b.factor * budget)
		a := r.alert(name, b.severity, b.forDuration,
			fmt.Sprintf("%s%s{%s} > %s\nand\n%s%s{%s} > %s", record, b.long, r.sel, limit, record, b.short, r.sel, limit),
			fmt.Sprintf("{{ $labels.service }} burns its %s error budget %sx too fast", slo, num(b.factor)),
			fmt.Sprintf("{{ $labels.service }} of shop {{ $labels.shop }} is using its %s error budget (target %s%%) %sx faster than sustainable over the last %s and %s; at this rate a 30-day budget lasts %s.",
				slo, target, num(b.factor), b.long, b.short, budgetLasts(b.factor)))
		a.Labels["slo"] = slo
		a.Labels["window"] = b.long
		out = append(out, a)
	}
	return out
}

func budgetLasts(factor float64) string {
	d := time.Duration(float64(30*24*time.Hour) / factor).Round(time.Hour)
	return strings.TrimSuffix(d.String(), "0m0s")
}

func (r rules) businessAlerts() []monitoringv1.Rule {
	failed := fmt.Sprintf(`sum by (%s) (rate(%s{%s, outcome=~%q}[10m]))
/
sum by (%s) (rate(%s{%s}[10m]))`, byService, Payments, r.sel, PaymentFailedOutcomes, byService, Payments, r.sel)
	conflicts := func(rng string) string {
		return fmt.Sprintf(`sum by (%s) (rate(%s{%s}%s))`, byService, StockConflicts, r.sel, rng)
	}
	return []monitoringv1.Rule{
		r.alert(AlertPaymentFailures, Warning, "10m", "(\n"+failed+"\n) > 0.1",
			"More than 10% of payments fail",
			"{{ $value | humanizePercentage }} of payments in shop {{ $labels.shop }} ended in an error over the last 10 minutes (declined cards are not counted)."),
		r.alert(AlertPaymentFailures, Critical, "5m", "(\n"+failed+"\n) > 0.25",
			"More than 25% of payments fail",
			"{{ $value | humanizePercentage }} of payments in shop {{ $labels.shop }} ended in an error over the last 10 minutes (declined cards are not counted)."),
		// A spike: above a floor, and more than three times the previous hour's
		// rate (or no baseline at all).
		r.alert(AlertStockConflictsSpike, Warning, "5m",
			fmt.Sprintf("%s > 0.1\nunless\n%s <= 3 * %s", conflicts("[5m]"), conflicts("[5m]"), conflicts("[1h] offset 5m")),
			"Stock reservation conflicts spike",
			"{{ $labels.service }} refuses {{ $value | humanize }} stock reservations per second for lack of stock, more than three times the previous hour's rate."),
	}
}

func (r rules) databaseAlerts() []monitoringv1.Rule {
	return []monitoringv1.Rule{
		r.alert(AlertDatabaseDown, Critical, "1m", fmt.Sprintf("max by (%s) (%s{%s}) == 0", byService, PgUp, r.sel),
			"The database of {{ $labels.service }} is down",
			"postgres_exporter cannot reach the Postgres of {{ $labels.service }} in shop {{ $labels.shop }}; the service's errors and latency alerts are inhibited while this fires."),
		r.alert(AlertDatabaseConnections, Warning, "10m",
			fmt.Sprintf("sum by (%s) (%s{%s})\n/\nmax by (%s) (%s{%s})\n> 0.8", byService, PgStatActivityCount, r.sel, byService, PgMaxConnections, r.sel),
			"The database of {{ $labels.service }} uses more than 80% of its connections",
			"The Postgres of {{ $labels.service }} has {{ $value | humanizePercentage }} of max_connections in use."),
	}
}

func (r rules) collectorAlerts() []monitoringv1.Rule {
	var out []monitoringv1.Rule
	for _, s := range collectorSignals {
		refused := r.alert(AlertCollectorRefusing, Warning, "5m",
			fmt.Sprintf("sum by (%s, receiver) (rate(%s{%s}[5m])) > 0", byService, collectorMetric("receiver_refused", s), r.sel),
			"The collector refuses "+s,
			"Receiver {{ $labels.receiver }} of shop {{ $labels.shop }}'s collector refuses {{ $value | humanize }} "+s+" per second, usually because the memory limiter is hit.")
		failing := r.alert(AlertCollectorExportFailing, Warning, "10m",
			fmt.Sprintf("sum by (%s, exporter) (rate(%s{%s}[5m])) > 0", byService, collectorMetric("exporter_send_failed", s), r.sel),
			"Collector exporter {{ $labels.exporter }} fails to send "+s,
			"Exporter {{ $labels.exporter }} of shop {{ $labels.shop }}'s collector fails to send {{ $value | humanize }} "+s+" per second; they are retried until the queue is full.")
		dropping := r.alert(AlertCollectorDropping, Warning, "5m",
			fmt.Sprintf("sum by (%s, exporter) (rate(%s{%s}[5m])) > 0", byService, collectorMetric("exporter_enqueue_failed", s), r.sel),
			"The collector drops "+s+" for {{ $labels.exporter }}",
			"The sending queue of exporter {{ $labels.exporter }} is full: shop {{ $labels.shop }}'s collector drops {{ $value | humanize }} "+s+" per second.")
		for _, a := range []*monitoringv1.Rule{&refused, &failing, &dropping} {
			a.Labels["signal"] = s
		}
		out = append(out, refused, failing, dropping)
	}
	return out
}

// kubernetesAlerts read kube-state-metrics, whose series carry no shop label:
// the Shop's pods are those named <shop>-<component>-..., and the component
// becomes the service label.
func (r rules) kubernetesAlerts() []monitoringv1.Rule {
	name := r.in.Shop.Name
	expr := fmt.Sprintf(`label_replace(
  sum by (namespace, pod, container) (increase(%s{namespace=%q, pod=~"%s-.+"}[15m])) > 2,
  "service", "$1", "pod", "%s-([a-z]+)-.+"
)`, KubeContainerRestarts, r.in.Shop.Namespace, name, name)
	return []monitoringv1.Rule{r.alert(AlertPodCrashLooping, Warning, "5m", expr,
		"Pod {{ $labels.pod }} is crash-looping",
		"Container {{ $labels.container }} of pod {{ $labels.pod }} restarted {{ $value | humanize }} times in 15 minutes.")}
}

// syntheticMetricsArrive: the synthetic check is on and its pushed metrics
// can reach Prometheus (a collector that a ServiceMonitor scrapes). Without
// that path ShopSyntheticCheckMissing would always fire.
func syntheticMetricsArrive(in render.Input) bool {
	return ptr.Deref(in.Spec.Operations.SyntheticCheck.Enabled, false) && in.OTLPEndpoint() != "" &&
		ptr.Deref(in.Spec.Observability.Prometheus.ServiceMonitors, false)
}

// SyntheticFailedRuns is how many failed runs, with no passing run among
// them, make the synthetic checkout "failing": one failure may be a flake,
// two in a row are not.
const SyntheticFailedRuns = 2

// syntheticAlerts watch the synthetic checkout's runs. Every run is its own
// short-lived pod that pushes shop_synthetic_runs_total{result} = 1 once; the
// collector's Prometheus exporter keeps such a series for its
// metric_expiration (5m) and then forgets it. So a series is one run, and
// max_over_time over a window counts the runs whose series showed up in it:
// runs of the last window + 5m.
func (r rules) syntheticAlerts() ([]monitoringv1.Rule, error) {
	period, err := operations.SyntheticPeriod(r.in)
	if err != nil {
		return nil, err
	}
	runs := func(result, window string) string {
		sel := r.sel + `, service_name="synthetic"`
		if result != "" {
			sel += fmt.Sprintf(", result=%q", result)
		}
		return fmt.Sprintf("%s{%s}[%s]", SyntheticRuns, sel, window)
	}
	// Failing: the runs of the last two periods (two or three runs) include
	// SyntheticFailedRuns failures and no pass.
	recent := promDuration(2 * period)
	failing := fmt.Sprintf(`sum by (namespace, shop) (max_over_time(%s)) >= %d
unless on (namespace, shop)
max_over_time(%s)`, runs(Fail, recent), SyntheticFailedRuns, runs(Pass, recent))
	severity := Warning
	if r.in.Spec.Environment == shopv1.Production {
		severity = Critical // the probe of the real checkout: customers cannot buy
	}
	failingAlert := r.alert(AlertSyntheticFailing, severity, "1m", failing,
		"The synthetic checkout fails",
		fmt.Sprintf("The last synthetic checkout runs of shop {{ $labels.shop }} failed ({{ $value }} failed, none passed in %s); the run's log names the failing step (failed_step).", recent))

	// Missing: no run at all for three periods, although the CronJob has
	// existed that long and is not suspended (a suspended check is silent on
	// purpose). kube-state-metrics' series carry no shop label.
	absent := promDuration(3 * period)
	cronJob := fmt.Sprintf(`namespace=%q, cronjob=%q`, r.in.Shop.Namespace, r.in.Name(operations.SyntheticCheck))
	missing := fmt.Sprintf(`absent_over_time(%s)
and on (namespace)
(time() - max by (namespace) (%s{%s}) > %d)
unless on (namespace)
(max by (namespace) (%s{%s}) == 1)`, runs("", absent), KubeCronJobCreated, cronJob, int64((3 * period).Seconds()),
		KubeCronJobSuspend, cronJob)
	missingAlert := r.alert(AlertSyntheticMissing, Warning, "5m", missing,
		"The synthetic checkout reports no runs",
		fmt.Sprintf("CronJob %s runs at least every %s, but no synthetic checkout run of shop {{ $labels.shop }} has reported its result for %s.",
			r.in.Name(operations.SyntheticCheck), promDuration(period), absent))

	for _, a := range []*monitoringv1.Rule{&failingAlert, &missingAlert} {
		a.Labels["service"] = operations.SyntheticCheck
	}
	return []monitoringv1.Rule{failingAlert, missingAlert}, nil
}

// Synthetic run results (label result of SyntheticRuns).
const (
	Pass = "pass"
	Fail = "fail"
)

// promDuration writes a duration as PromQL does (2h, 1d, 90m → 1h30m).
func promDuration(d time.Duration) string { return model.Duration(d).String() }

func record(name, expr string) monitoringv1.Rule {
	return monitoringv1.Rule{Record: name, Expr: intstr.FromString(expr)}
}

func (r rules) alert(name, severity, forDuration, expr, summary, description string) monitoringv1.Rule {
	return monitoringv1.Rule{
		Alert: name,
		Expr:  intstr.FromString(expr),
		For:   ptr.To(monitoringv1.Duration(forDuration)),
		Labels: map[string]string{
			"severity": severity,
			"shop":     r.in.Shop.Name,
		},
		Annotations: map[string]string{
			"summary":     summary,
			"description": description,
			"runbook_url": RunbookBaseURL + name + ".md",
		},
	}
}
