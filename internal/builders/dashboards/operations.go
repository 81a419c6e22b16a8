package dashboards

import (
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"k8s.io/utils/ptr"

	"github.com/shopplatform/shop-operator/internal/builders/monitoring"
	"github.com/shopplatform/shop-operator/internal/render"
)

// wantsOperations: the dashboard comes with the load generator or the
// synthetic check.
func wantsOperations(in render.Input) bool {
	ops := in.Spec.Operations
	return ptr.Deref(ops.LoadGenerator.Enabled, false) || ptr.Deref(ops.SyntheticCheck.Enabled, false)
}

// operations: performance test metrics (the load generator) and integration
// test results (the synthetic checkout). Both arrive through the collector,
// which turns the resource attribute service.name into the label
// service_name. A synthetic run is one short-lived pod, so each run is its
// own series: runs are counted with max_over_time per series, summed.
func operations(b *builder) *dashboard.DashboardBuilder {
	lg := `service_name="loadgen"`
	notOK := lg + `, outcome!="ok"`
	syn := `service_name="synthetic"`
	runs := func(window, extra string) string {
		sel := syn
		if extra != "" {
			sel += ", " + extra
		}
		return fmt.Sprintf(`sum(max_over_time(%s%s[%s]))`, monitoring.SyntheticRuns, b.s(sel), window)
	}
	return dashboard.NewDashboardBuilder(b.title("Load and synthetic checks")).
		Description("The load generator's scenarios (rate, errors, latency) and the synthetic checkout's results and step durations.").
		WithRow(dashboard.NewRowBuilder("Synthetic checkout (integration test results)")).
		WithPanel(single("Since the last passing run", "s", q{fmt.Sprintf(`time() - max(max_over_time(%s%s[1d]))`,
			monitoring.SyntheticLastSuccessTimestamp, b.s(syn)), ""})).
		WithPanel(single("Pass ratio, last 24h", "percentunit", q{runs("24h", `result="pass"`) + "\n/\n" + runs("24h", ""), ""})).
		WithPanel(single("Failed runs, last 24h", "short", q{runs("24h", `result="fail"`), ""})).
		WithPanel(single("Runs, last 24h", "short", q{runs("24h", ""), ""})).
		WithPanel(graph("Runs per hour by result", "short", q{fmt.Sprintf(`sum by (result) (max_over_time(%s%s[1h]))`,
			monitoring.SyntheticRuns, b.s(syn)), "{{result}}"})).
		WithPanel(graph("Step durations, last run", "s", q{fmt.Sprintf(`max by (step) (%s%s)`,
			monitoring.SyntheticStepDuration, b.s(syn)), "{{step}}"})).
		WithRow(dashboard.NewRowBuilder("Load generator (performance test metrics)")).
		WithPanel(single("Scenarios per second", "reqps", q{fmt.Sprintf(`sum(rate(%s%s[%s]))`, monitoring.LoadgenRequests, b.s(lg), rate), ""})).
		WithPanel(single("Error ratio", "percentunit", q{fmt.Sprintf(`sum(rate(%s%s[%s])) / sum(rate(%s%s[%s]))`,
			monitoring.LoadgenRequests, b.s(notOK), rate, monitoring.LoadgenRequests, b.s(lg), rate), ""})).
		WithPanel(single("p99 latency", "s", q{fmt.Sprintf(`histogram_quantile(0.99, sum by (le) (rate(%s%s[%s])))`,
			monitoring.LoadgenDurationBucket, b.s(lg), rate), ""})).
		WithPanel(single("Mean latency", "s", q{fmt.Sprintf(`sum(rate(%s%s[%s])) / sum(rate(%s%s[%s]))`,
			monitoring.LoadgenDurationSum, b.s(lg), rate, monitoring.LoadgenDurationCount, b.s(lg), rate), ""})).
		WithPanel(graph("Scenarios per second by outcome", "reqps", q{b.sumRate(monitoring.LoadgenRequests, "scenario, outcome", lg), "{{scenario}} {{outcome}}"})).
		WithPanel(graph("Errors per second by scenario", "reqps", q{b.sumRate(monitoring.LoadgenRequests, "scenario, outcome", notOK), "{{scenario}} {{outcome}}"})).
		WithPanel(latency("Latency by scenario",
			q{fmt.Sprintf(`histogram_quantile(0.5, sum by (scenario, le) (rate(%s%s[%s])))`, monitoring.LoadgenDurationBucket, b.s(lg), rate), "p50 {{scenario}}"},
			q{fmt.Sprintf(`histogram_quantile(0.99, sum by (scenario, le) (rate(%s%s[%s])))`, monitoring.LoadgenDurationBucket, b.s(lg), rate), "p99 {{scenario}}"}))
}
