package live

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/shopplatform/shop-operator/internal/builders/dashboards"
	"github.com/shopplatform/shop-operator/internal/localstack"
	"github.com/shopplatform/shop-operator/internal/render"
)

// emptyByDesign lists the panel queries of the testing Shop that may return
// no series while it runs healthy under the load generator, each with why.
// The key is "<dashboard file> / <panel title>[ / query <n>]" as the
// failure message prints it. Review an addition here as
// you would a disabled alert: a renamed metric or label must never land in
// this list.
var emptyByDesign = map[string]string{
	// The collector (v0.161) creates its failure counters on the first failure.
	"collector.json / Spans exported / query 2":         "no span export has failed",
	"collector.json / Spans exported / query 3":         "no span was dropped from a full queue",
	"collector.json / Metric points exported / query 2": "no metric export has failed",
	"collector.json / Metric points exported / query 3": "no metric point was dropped from a full queue",
	"collector.json / Log records exported / query 2":   "no log export has failed",
	"collector.json / Log records exported / query 3":   "no log record was dropped from a full queue",
	// Ratios and rates of things a healthy shop under the load generator
	// never does (the fault step makes the payment ones non-empty).
	"operations.json / Error ratio":                    "the load generator's scenarios all succeed",
	"operations.json / Errors per second by scenario":  "the load generator's scenarios all succeed",
	"operations.json / Failed runs, last 24h":          "the synthetic checkout has not failed",
	"payments.json / Declined ratio":                   "the load generator pays with the success card",
	"payments.json / Provider failure ratio":           "no fault injected: the provider never fails",
	"payments.json / Refunds per hour":                 "nothing is refunded",
	"service-payment.json / refunds per second":        "nothing is refunded",
	"service-catalog.json / conflicts per second":      "stock never runs out at this rate",
	"service-auth.json / Errors by route and status":   "no 4xx or 5xx: every shopper logs in right",
	"service-orders.json / Errors by route and status": "no 4xx or 5xx: every checkout is valid and in stock",
}

// everyPanelAndRuleHasData: with the testing Shop under its load generator,
// every recording rule the Shop renders has produced a series in the live
// Prometheus, and every PromQL query of every dashboard panel (with
// Grafana's $__rate_interval set to what Grafana would use at a 10 s scrape
// interval) returns at least one series, unless emptyByDesign names it. A
// metric or label renamed on either side (services, collector, exporters,
// rules, dashboards) leaves a query empty and fails this.
func everyPanelAndRuleHasData(t *testing.T, ctx context.Context, s *liveShop) {
	begin := time.Now()
	prom := serviceURL(t, ctx, localstack.MonitoringNamespace, localstack.PrometheusService, "web")
	queries := map[string]string{} // what -> PromQL

	rules := &monitoringv1.PrometheusRuleList{}
	if err := k8s.List(ctx, rules, client.InNamespace(s.ns), client.MatchingLabels{render.LabelShop: s.shop.Name}); err != nil {
		t.Fatal(err)
	}
	for _, r := range rules.Items {
		for _, g := range r.Spec.Groups {
			for _, rule := range g.Rules {
				if rule.Record != "" {
					queries["recording rule "+rule.Record] = fmt.Sprintf("%s{namespace=%q, shop=%q}", rule.Record, s.ns, s.shop.Name)
				}
			}
		}
	}
	recordings := len(queries)
	if recordings == 0 {
		t.Fatalf("the Shop %s rendered no recording rule", s.shop.Name)
	}

	cms := &corev1.ConfigMapList{}
	if err := k8s.List(ctx, cms, client.InNamespace(s.ns), client.MatchingLabels{render.LabelShop: s.shop.Name, render.LabelComponent: dashboards.Component}); err != nil {
		t.Fatal(err)
	}
	// Grafana's $__rate_interval is at least four scrape intervals.
	vars := strings.NewReplacer("$__rate_interval", model.Duration(4*scrapeInterval(t, ctx, s)).String())
	panels := 0
	for _, cm := range cms.Items {
		for file, body := range cm.Data {
			var dash map[string]any
			if err := json.Unmarshal([]byte(body), &dash); err != nil {
				t.Fatalf("%s/%s: %v", cm.Name, file, err)
			}
			walkPanels(dash, func(panel map[string]any) {
				targets, _ := panel["targets"].([]any)
				for i, tg := range targets {
					target, _ := tg.(map[string]any)
					ds, _ := target["datasource"].(map[string]any)
					if ds["type"] != "prometheus" {
						continue // Loki's: no Loki here (see docs/local-cluster.md)
					}
					panels++
					what := fmt.Sprintf("%s / %v", file, panel["title"])
					if len(targets) > 1 {
						what += fmt.Sprintf(" / query %d", i+1)
					}
					queries[what] = vars.Replace(fmt.Sprint(target["expr"]))
				}
			})
		}
	}
	if panels == 0 {
		t.Fatalf("the Shop %s rendered no dashboard query", s.shop.Name)
	}
	t.Logf("%d recording rules and %d panel queries to evaluate against %s", recordings, panels, prom)

	// Recording rules appear one evaluation interval after the operator's
	// configuration reaches Prometheus, and counters need two scrapes for a
	// rate: wait up to 3 minutes for everything not empty by design.
	var empty []string
	for deadline := time.Now().Add(3 * time.Minute); ; {
		empty = emptyQueries(ctx, prom, queries)
		if len(empty) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d queries return nothing after 3 minutes of load (a metric or label renamed, or a panel empty by design: then add it to emptyByDesign with the reason):\n  %s",
				len(empty), len(queries), strings.Join(empty, "\n  "))
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(5 * time.Second):
		}
	}
	for what, reason := range emptyByDesign {
		t.Logf("empty by design: %s (%s)", what, reason)
	}
	t.Logf("every recording rule and panel query has data, %s after the step began", time.Since(begin).Round(100*time.Millisecond))
}

// emptyQueries evaluates the queries not empty by design, eight at a time,
// and names those that gave no series or an error, sorted.
func emptyQueries(ctx context.Context, prom string, queries map[string]string) []string {
	var (
		mu    sync.Mutex
		empty []string
		wg    sync.WaitGroup
		slots = make(chan struct{}, 8)
	)
	for what, q := range queries {
		if _, ok := emptyByDesign[what]; ok {
			continue
		}
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			problem := ""
			switch n, err := promSeries(ctx, prom, q); {
			case err != nil:
				problem = err.Error()
			case n == 0:
				problem = "no series"
			}
			if problem != "" {
				mu.Lock()
				empty = append(empty, fmt.Sprintf("%s: %s\n      %s\n      %s", what, problem, strings.ReplaceAll(q, "\n", " "), selectorCounts(ctx, prom, q)))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	slices.Sort(empty)
	return empty
}

// selectorCounts says, for each series selector of a query, how many series
// its metric has at all and how many match the selector: a renamed metric
// shows 0 for both, a label that differs shows a count only for the first.
func selectorCounts(ctx context.Context, prom, query string) string {
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(query)
	if err != nil {
		return err.Error()
	}
	var out []string
	parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		all, _ := promSeries(ctx, prom, vs.Name)
		matching, _ := promSeries(ctx, prom, vs.String())
		out = append(out, fmt.Sprintf("%s: %d series, %d with the selector's labels", vs.Name, all, matching))
		return nil
	})
	return strings.Join(out, "; ")
}

// scrapeInterval is the longest interval the Shop's ServiceMonitors set
// (Prometheus' own where they set none).
func scrapeInterval(t *testing.T, ctx context.Context, s *liveShop) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(localstack.PrometheusScrapeInterval)
	if err != nil {
		t.Fatal(err)
	}
	sms := &monitoringv1.ServiceMonitorList{}
	if err := k8s.List(ctx, sms, client.InNamespace(s.ns), client.MatchingLabels{render.LabelShop: s.shop.Name}); err != nil {
		t.Fatal(err)
	}
	for _, m := range sms.Items {
		for _, ep := range m.Spec.Endpoints {
			if ep.Interval == "" {
				continue
			}
			i, err := model.ParseDuration(string(ep.Interval))
			if err != nil {
				t.Fatalf("ServiceMonitor %s: interval %q: %v", m.Name, ep.Interval, err)
			}
			d = max(d, time.Duration(i))
		}
	}
	return d
}

// walkPanels visits every panel of a dashboard, rows included.
func walkPanels(node map[string]any, visit func(map[string]any)) {
	list, _ := node["panels"].([]any)
	for _, p := range list {
		panel, _ := p.(map[string]any)
		if panel["type"] == "row" {
			walkPanels(panel, visit)
			continue
		}
		visit(panel)
	}
}

// promSeries evaluates an instant query and returns how many series it gave.
func promSeries(ctx context.Context, prom, query string) (int, error) {
	body, err := httpBody(ctx, prom+"/api/v1/query?query="+url.QueryEscape(query))
	if err != nil {
		return 0, err
	}
	var got struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		return 0, err
	}
	if got.Status != "success" {
		return 0, fmt.Errorf("Prometheus refused the query: %s", got.Error)
	}
	return len(got.Data.Result), nil
}
