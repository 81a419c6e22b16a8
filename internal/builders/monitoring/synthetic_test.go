package monitoring_test

import (
	"strings"
	"testing"

	"k8s.io/utils/ptr"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/builders/monitoring"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
)

// syntheticAlerts lists the synthetic alerts a spec renders.
func syntheticAlerts(t *testing.T, spec shopv1.ShopSpec) []string {
	t.Helper()
	var out []string
	for _, g := range prometheusRule(t, rendertest.Input(spec)).Spec.Groups {
		for _, r := range g.Rules {
			if r.Alert == monitoring.AlertSyntheticFailing || r.Alert == monitoring.AlertSyntheticMissing {
				out = append(out, r.Alert)
			}
		}
	}
	return out
}

// TestSyntheticAlertsFollowTheCheck: the alerts come with the synthetic
// check (on in testing, off in production unless turned on) and only when
// its metrics reach Prometheus.
func TestSyntheticAlertsFollowTheCheck(t *testing.T) {
	noCollector := syntheticProbe("*/5 * * * *")
	noCollector.Observability.Collector.Enabled = ptr.To(false)
	unscraped := syntheticProbe("*/5 * * * *")
	unscraped.Observability.Prometheus.ServiceMonitors = ptr.To(false)
	for name, c := range map[string]struct {
		spec shopv1.ShopSpec
		want int
	}{
		"testing":                 {shopv1.ShopSpec{Environment: shopv1.Testing}, 2},
		"production":              {shopv1.ShopSpec{Environment: shopv1.Production}, 0},
		"production-probe":        {syntheticProbe("*/5 * * * *"), 2},
		"probe-without-collector": {noCollector, 0},
		"probe-unscraped":         {unscraped, 0},
	} {
		if got := syntheticAlerts(t, c.spec); len(got) != c.want {
			t.Errorf("%s: synthetic alerts %v, want %d", name, got, c.want)
		}
	}
}

// TestSyntheticWindowsFollowTheSchedule: windows are multiples of the
// schedule's longest gap; a schedule that never runs twice names its field.
func TestSyntheticWindowsFollowTheSchedule(t *testing.T) {
	rule := prometheusRule(t, rendertest.Input(syntheticProbe("0 * * * *")))
	for _, g := range rule.Spec.Groups {
		for _, r := range g.Rules {
			switch r.Alert {
			case monitoring.AlertSyntheticFailing:
				if !strings.Contains(r.Expr.String(), "[2h]") || r.Labels["severity"] != monitoring.Critical {
					t.Errorf("hourly probe: %s %v", r.Expr.String(), r.Labels)
				}
			case monitoring.AlertSyntheticMissing:
				if !strings.Contains(r.Expr.String(), "[3h]") || !strings.Contains(r.Expr.String(), "> 10800") {
					t.Errorf("hourly probe: %s", r.Expr.String())
				}
			}
		}
	}
	_, err := monitoring.Build(rendertest.Input(syntheticProbe("0 0 30 2 *")))
	if err == nil || !strings.Contains(err.Error(), "operations.syntheticCheck.schedule") {
		t.Errorf("a schedule that never runs: err = %v", err)
	}
}
