package monitoring_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	monitoringv1alpha1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1alpha1"
	corev1 "k8s.io/api/core/v1"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/builders/monitoring"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
)

// secretValues stands in for the Secrets the operator would read.
var secretValues = map[string]string{
	"pagerduty-key": "0123456789abcdef0123456789abcdef",
	"slack-url":     "https://hooks.slack.example/services/T000/B000/XXXX",
	"smtp-password": "not-a-real-password",
	"webhook-url":   "http://127.0.0.1:9/alerts",
}

// alertmanagerYAML converts an AlertmanagerConfig into the Alertmanager
// configuration prometheus-operator generates from it: receivers and routes
// prefixed with namespace/name, the route nested under a namespace matcher,
// the namespace added to inhibition matchers and Secret references resolved.
func alertmanagerYAML(t *testing.T, amc *monitoringv1alpha1.AlertmanagerConfig) map[string]any {
	t.Helper()
	prefix := amc.Namespace + "/" + amc.Name + "/"
	matchers := func(ms []monitoringv1alpha1.Matcher) []string {
		var out []string
		for _, m := range ms {
			out = append(out, fmt.Sprintf("%s%s%q", m.Name, m.MatchType, m.Value))
		}
		return out
	}
	ns := fmt.Sprintf("namespace=%q", amc.Namespace)
	secret := func(s *corev1.SecretKeySelector) string { return secretValues[s.Key] }

	var route func(r monitoringv1alpha1.Route) map[string]any
	route = func(r monitoringv1alpha1.Route) map[string]any {
		out := map[string]any{"receiver": prefix + r.Receiver, "continue": r.Continue}
		if ms := matchers(r.Matchers); ms != nil {
			out["matchers"] = ms
		}
		if r.GroupBy != nil {
			out["group_by"] = r.GroupBy
		}
		for k, d := range map[string]*monitoringv1.NonEmptyDuration{"group_wait": r.GroupWait, "group_interval": r.GroupInterval, "repeat_interval": r.RepeatInterval} {
			if d != nil {
				out[k] = string(*d)
			}
		}
		for _, m := range r.Matchers {
			if err := m.Validate(); err != nil {
				t.Errorf("matcher %v: %v", m, err)
			}
		}
		// ChildRoutes decodes child routes the way prometheus-operator does.
		kids, err := r.ChildRoutes()
		if err != nil {
			t.Fatal(err)
		}
		var children []any
		for _, c := range kids {
			children = append(children, route(c))
		}
		if children != nil {
			out["routes"] = children
		}
		return out
	}
	top := route(*amc.Spec.Route)
	top["matchers"] = append([]string{ns}, top["matchers"].([]string)...)
	top["continue"] = true

	receivers := []any{map[string]any{"name": "null"}}
	for _, r := range amc.Spec.Receivers {
		out := map[string]any{"name": prefix + r.Name}
		for _, c := range r.SlackConfigs {
			if err := c.Validate(); err != nil {
				t.Errorf("slack config of %s: %v", r.Name, err)
			}
			out["slack_configs"] = []any{map[string]any{"api_url": secret(c.APIURL), "channel": *c.Channel, "send_resolved": *c.SendResolved}}
		}
		for _, c := range r.PagerDutyConfigs {
			out["pagerduty_configs"] = []any{map[string]any{"routing_key": secret(c.RoutingKey), "send_resolved": *c.SendResolved}}
		}
		for _, c := range r.EmailConfigs {
			out["email_configs"] = []any{map[string]any{"to": *c.To, "from": *c.From, "smarthost": *c.Smarthost,
				"auth_username": *c.AuthUsername, "auth_password": secret(c.AuthPassword), "send_resolved": *c.SendResolved}}
		}
		for _, c := range r.WebhookConfigs {
			out["webhook_configs"] = []any{map[string]any{"url": secret(c.URLSecret), "send_resolved": *c.SendResolved}}
		}
		receivers = append(receivers, out)
	}
	var inhibit []any
	for _, ir := range amc.Spec.InhibitRules {
		inhibit = append(inhibit, map[string]any{
			"source_matchers": append(matchers(ir.SourceMatch), ns),
			"target_matchers": append(matchers(ir.TargetMatch), ns),
			"equal":           ir.Equal,
		})
	}
	return map[string]any{
		"route":         map[string]any{"receiver": "null", "routes": []any{top}},
		"receivers":     receivers,
		"inhibit_rules": inhibit,
	}
}

func alertmanagerConfig(t *testing.T, spec shopv1.ShopSpec) *monitoringv1alpha1.AlertmanagerConfig {
	t.Helper()
	objs, err := monitoring.Build(rendertest.Input(spec))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if a, ok := o.(*monitoringv1alpha1.AlertmanagerConfig); ok {
			return a
		}
	}
	t.Fatal("no AlertmanagerConfig rendered")
	return nil
}

// TestAmtool checks the implied Alertmanager configuration with amtool and
// tests where alerts are routed.
func TestAmtool(t *testing.T) {
	amtool := tool(t, "amtool")

	dev := shopv1.ShopSpec{Environment: shopv1.Development}
	dev.Observability.Alerting.Routing = new(true)
	dev.Observability.Alerting.Receivers = []shopv1.Receiver{
		{Name: "hook", Webhook: &shopv1.WebhookReceiver{URLSecretRef: shopv1.SecretKeyRef{Name: "alerting", Key: "webhook-url"}}},
	}
	prod := everyReceiver(shopv1.Production)
	prod.Observability.Alerting.Receivers = prod.Observability.Alerting.Receivers[:2] // pager (critical), slack (warning)

	cases := []struct {
		name   string
		spec   shopv1.ShopSpec
		labels []string
		want   []string
	}{
		{"production critical pages", prod, []string{"severity=critical"}, []string{"pager"}},
		{"production warning to slack", prod, []string{"severity=warning"}, []string{"slack"}},
		{"production info to nobody", prod, []string{"severity=info"}, []string{monitoring.NoneReceiver}},
		{"every receiver, critical", everyReceiver(shopv1.Production), []string{"severity=critical"}, []string{"pager", "mail", "hook"}},
		{"every receiver, warning", everyReceiver(shopv1.Production), []string{"severity=warning"}, []string{"slack", "mail", "hook"}},
		{"development webhook", dev, []string{"severity=warning"}, []string{"hook"}},
		{"development webhook critical", dev, []string{"severity=critical"}, []string{"hook"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			amc := alertmanagerConfig(t, c.spec)
			dir := t.TempDir()
			writeYAML(t, filepath.Join(dir, "alertmanager.yaml"), alertmanagerYAML(t, amc))
			run(t, dir, amtool, "check-config", "alertmanager.yaml")

			args := append([]string{"config", "routes", "test", "--config.file=alertmanager.yaml",
				"namespace=shop", "shop=demo", "alertname=" + monitoring.AlertHighErrorRatio, "service=orders"}, c.labels...)
			out := strings.TrimSpace(run(t, dir, amtool, args...))
			var got []string
			for _, r := range strings.Split(out, ",") {
				got = append(got, strings.TrimPrefix(strings.TrimSpace(r), amc.Namespace+"/"+amc.Name+"/"))
			}
			if !slices.Equal(got, c.want) {
				t.Errorf("%v routes to %v, want %v", c.labels, got, c.want)
			}
		})
	}

	// Another shop's alerts never reach this shop's receivers.
	amc := alertmanagerConfig(t, prod)
	dir := t.TempDir()
	writeYAML(t, filepath.Join(dir, "alertmanager.yaml"), alertmanagerYAML(t, amc))
	if out := strings.TrimSpace(run(t, dir, amtool, "config", "routes", "test", "--config.file=alertmanager.yaml",
		"namespace=shop", "shop=other", "severity=critical")); out != "null" {
		t.Errorf("another shop's critical alert routes to %q, want null", out)
	}
}
