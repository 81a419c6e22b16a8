package monitoring_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/prometheus/promql/parser"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/builders/monitoring"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
	"github.com/shopplatform/shop-operator/internal/testenv"
)

func kinds(t *testing.T, in render.Input) []string {
	var out []string
	for _, u := range build(t, in) {
		out = append(out, u.GetKind())
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func TestSwitches(t *testing.T) {
	dev := rendertest.Input(shopv1.ShopSpec{Environment: shopv1.Development})
	if got := kinds(t, dev); !slices.Equal(got, []string{"ServiceMonitor"}) {
		t.Errorf("development renders %v, want only ServiceMonitors (no rules, no routing without receivers)", got)
	}
	prod := rendertest.Input(everyReceiver(shopv1.Production))
	if got := kinds(t, prod); !slices.Equal(got, []string{"AlertmanagerConfig", "PrometheusRule", "ServiceMonitor"}) {
		t.Errorf("production with receivers renders %v", got)
	}
	noAPI := rendertest.InputFor(rendertest.Shop(everyReceiver(shopv1.Production)), render.APIs{})
	if got := kinds(t, noAPI); len(got) != 0 {
		t.Errorf("without prometheus-operator: %v, want nothing", got)
	}
	off := everyReceiver(shopv1.Production)
	off.Observability.Prometheus.ServiceMonitors, off.Observability.Prometheus.Rules, off.Observability.Alerting.Routing = new(false), new(false), new(false)
	if got := kinds(t, rendertest.Input(off)); len(got) != 0 {
		t.Errorf("all switched off: %v, want nothing", got)
	}
	for _, u := range build(t, prod) {
		if u.GetLabels()["release"] != "kube-prometheus-stack" {
			t.Errorf("%s %s lacks the selector label", u.GetKind(), u.GetName())
		}
	}
}

func TestSecretRefs(t *testing.T) {
	refs := monitoring.SecretRefs(rendertest.Input(everyReceiver(shopv1.Testing)))
	var keys []string
	for _, r := range refs {
		keys = append(keys, r.Name+"/"+strings.Join(r.Keys, ","))
	}
	want := []string{"alerting/pagerduty-key", "alerting/slack-url", "alerting/smtp-password", "alerting/webhook-url"}
	if !slices.Equal(keys, want) {
		t.Errorf("SecretRefs = %v, want %v", keys, want)
	}
	if refs := monitoring.SecretRefs(rendertest.Input(shopv1.ShopSpec{})); refs != nil {
		t.Errorf("development without routing references %v", refs)
	}
}

func TestBadSLO(t *testing.T) {
	spec := shopv1.ShopSpec{Environment: shopv1.Production}
	spec.Observability.Alerting.SLO.LatencyThreshold = ptr.To(metav1Duration("300ms"))
	if _, err := monitoring.Build(rendertest.Input(spec)); err == nil || !strings.Contains(err.Error(), "bucket boundary") {
		t.Errorf("a threshold between buckets: err = %v", err)
	}
	spec = everyReceiver(shopv1.Production)
	spec.Observability.Alerting.Receivers[0].Name = monitoring.NoneReceiver
	if _, err := monitoring.Build(rendertest.Input(spec)); err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Errorf("a receiver named none: err = %v", err)
	}
}

// TestRuleExpressions parses every expression with Prometheus' parser and
// checks that it names only metrics of the list or recorded by the rules
// (production with the synthetic check on, so that every alert is there).
func TestRuleExpressions(t *testing.T) {
	rule := prometheusRule(t, rendertest.Input(syntheticProbe("*/5 * * * *")))
	known := monitoring.Metrics()
	for _, g := range rule.Spec.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				known[r.Record] = "rules"
			}
		}
	}
	alerts := map[string]bool{}
	for _, g := range rule.Spec.Groups {
		for _, r := range g.Rules {
			for _, name := range metricNames(t, r.Expr.String()) {
				if _, ok := known[name]; !ok {
					t.Errorf("%s%s uses %s, which is not in the metric list", r.Alert, r.Record, name)
				}
			}
			if r.Alert == "" {
				continue
			}
			alerts[r.Alert] = true
			for _, k := range []string{"summary", "description", "runbook_url"} {
				if r.Annotations[k] == "" {
					t.Errorf("%s has no %s", r.Alert, k)
				}
			}
			if r.Labels["severity"] == "" || r.Labels["shop"] != "demo" {
				t.Errorf("%s labels %v", r.Alert, r.Labels)
			}
		}
	}
	for _, a := range monitoring.Alerts {
		if !alerts[a] {
			t.Errorf("alert %s is never raised", a)
		}
		if _, err := os.Stat(filepath.Join(testenv.RepoRoot(), "docs", "runbooks", a+".md")); err != nil {
			t.Errorf("alert %s has no runbook: %v", a, err)
		}
	}
}

func metricNames(t *testing.T, expr string) []string {
	t.Helper()
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		t.Errorf("%q does not parse: %v", expr, err)
		return nil
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			names = append(names, vs.Name)
		}
		return nil
	})
	return names
}

// TestMetricsDoc compares the services' metrics in the list with those
// docs/metrics.md says the services emit.
func TestMetricsDoc(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "docs", "metrics.md"))
	if os.IsNotExist(err) {
		t.Skip("docs/metrics.md is not written yet")
	}
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("`([a-z_:][a-z0-9_:]*)`").FindAllStringSubmatch(string(doc), -1) {
		documented[m[1]] = true
	}
	for name, src := range monitoring.Metrics() {
		if src != monitoring.FromServices {
			continue
		}
		base := name
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			base = strings.TrimSuffix(base, suffix)
		}
		if !documented[name] && !documented[base] {
			t.Errorf("%s is not in docs/metrics.md", name)
		}
	}
}

func prometheusRule(t *testing.T, in render.Input) *monitoringv1.PrometheusRule {
	t.Helper()
	objs, err := monitoring.Build(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if r, ok := o.(*monitoringv1.PrometheusRule); ok {
			return r
		}
	}
	t.Fatal("no PrometheusRule rendered")
	return nil
}

func metav1Duration(s string) metav1.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return metav1.Duration{Duration: d}
}

func BenchmarkBuild(b *testing.B) {
	in := rendertest.Input(everyReceiver(shopv1.Production))
	for b.Loop() {
		if _, err := monitoring.Build(in); err != nil {
			b.Fatal(err)
		}
	}
}
