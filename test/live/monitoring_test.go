package live

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/shopplatform/shop-operator/internal/localstack"
	"github.com/shopplatform/shop-operator/internal/render"
)

// everyScrapeTargetIsUp: for every ServiceMonitor and PodMonitor the Shop
// renders, the Prometheus that prometheus-operator runs (localstack's, which
// selects all of them) lists at least one active target per endpoint, and
// every one is up. A selector, port name or relabelling that matches nothing
// leaves the pool empty; a wrong path or a NetworkPolicy that refuses
// Prometheus leaves a target down with its lastError.
func everyScrapeTargetIsUp(t *testing.T, ctx context.Context, s *liveShop) {
	begin := time.Now()
	// The pools prometheus-operator names for the Shop's monitors:
	// serviceMonitor/<ns>/<name>/<endpoint index>.
	var pools []string
	sms := &monitoringv1.ServiceMonitorList{}
	pms := &monitoringv1.PodMonitorList{}
	sel := client.MatchingLabels{render.LabelShop: s.shop.Name}
	if err := k8s.List(ctx, sms, client.InNamespace(s.ns), sel); err != nil {
		t.Fatal(err)
	}
	if err := k8s.List(ctx, pms, client.InNamespace(s.ns), sel); err != nil {
		t.Fatal(err)
	}
	for _, m := range sms.Items {
		for i := range m.Spec.Endpoints {
			pools = append(pools, fmt.Sprintf("serviceMonitor/%s/%s/%d", m.Namespace, m.Name, i))
		}
	}
	for _, m := range pms.Items {
		for i := range m.Spec.PodMetricsEndpoints {
			pools = append(pools, fmt.Sprintf("podMonitor/%s/%s/%d", m.Namespace, m.Name, i))
		}
	}
	if len(sms.Items) == 0 {
		t.Fatalf("the Shop %s rendered no ServiceMonitor (is prometheus-operator's API detected?)", s.shop.Name)
	}
	prom := serviceURL(t, ctx, localstack.MonitoringNamespace, localstack.PrometheusService, "web")
	t.Logf("%d ServiceMonitors, %d PodMonitors, %d scrape pools; Prometheus at %s", len(sms.Items), len(pms.Items), len(pools), prom)

	// Until every pool has targets and all are up (a first scrape happens
	// within one scrape interval of the operator's config reaching
	// Prometheus), at most 2 minutes.
	var problems []string
	err := wait.PollUntilContextTimeout(ctx, 2*time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		targets, err := promTargets(ctx, prom)
		if err != nil {
			// Keep what the last answer said (the poll's deadline may cut this request).
			if len(problems) == 0 {
				problems = []string{err.Error()}
			}
			return false, nil
		}
		problems = targetProblems(pools, targets)
		return len(problems) == 0, nil
	})
	if err != nil {
		// A configuration Prometheus refused (the operator rendered what
		// this Prometheus cannot load) leaves every pool empty.
		if ok, err := promScalar(ctx, prom, `prometheus_config_last_reload_successful`); err == nil && ok != "1" {
			problems = append(problems, "Prometheus did not load the operator's configuration (prometheus_config_last_reload_successful = "+ok+"; see its log)")
		}
		t.Fatalf("scrape targets of the Shop not all up within 2 minutes:\n  %s", strings.Join(problems, "\n  "))
	}
	t.Logf("every target of %d pools up after %s", len(pools), time.Since(begin).Round(100*time.Millisecond))

	// Figures for docs/local-cluster.md (measured, never asserted).
	if n, err := promScalar(ctx, prom, fmt.Sprintf(`count({shop=%q})`, s.shop.Name)); err == nil {
		t.Logf("series of the Shop in Prometheus: %s", n)
	}
	if n, err := promScalar(ctx, prom, `prometheus_tsdb_head_series`); err == nil {
		t.Logf("head series in Prometheus: %s", n)
	}
	logMemory(t, ctx, localstack.MonitoringNamespace)
}

// promTarget is one active target of /api/v1/targets.
type promTarget struct {
	ScrapePool string `json:"scrapePool"`
	ScrapeURL  string `json:"scrapeUrl"`
	Health     string `json:"health"`
	LastError  string `json:"lastError"`
}

type promTargetsAnswer struct {
	Active  []promTarget `json:"activeTargets"`
	Dropped []struct {
		DiscoveredLabels map[string]string `json:"discoveredLabels"`
	} `json:"droppedTargets"`
}

func promTargets(ctx context.Context, prom string) (promTargetsAnswer, error) {
	var got struct {
		Status string            `json:"status"`
		Data   promTargetsAnswer `json:"data"`
	}
	body, err := httpBody(ctx, prom+"/api/v1/targets")
	if err != nil {
		return got.Data, err
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil || got.Status != "success" {
		return got.Data, fmt.Errorf("/api/v1/targets: status %q, %v", got.Status, err)
	}
	return got.Data, nil
}

// targetProblems names, per pool, what is not up: no active target (with
// how many were dropped by relabelling), or each target down with its error.
func targetProblems(pools []string, got promTargetsAnswer) []string {
	var out []string
	for _, pool := range pools {
		var active []promTarget
		for _, tg := range got.Active {
			if tg.ScrapePool == pool {
				active = append(active, tg)
			}
		}
		if len(active) == 0 {
			dropped := 0
			for _, d := range got.Dropped {
				if d.DiscoveredLabels["job"] == pool {
					dropped++
				}
			}
			out = append(out, fmt.Sprintf("%s: no active target (%d discovered and dropped by relabelling: selector, port name or keep rule matches nothing)", pool, dropped))
			continue
		}
		for _, tg := range active {
			if tg.Health != "up" {
				out = append(out, fmt.Sprintf("%s: %s is %s: %s", pool, tg.ScrapeURL, tg.Health, tg.LastError))
			}
		}
	}
	slices.Sort(out)
	return out
}

// promScalar evaluates an instant query and returns the first sample's value.
func promScalar(ctx context.Context, prom, query string) (string, error) {
	body, err := httpBody(ctx, prom+"/api/v1/query?query="+url.QueryEscape(query))
	if err != nil {
		return "", err
	}
	var got struct {
		Data struct {
			Result []struct {
				Value []any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil || len(got.Data.Result) == 0 || len(got.Data.Result[0].Value) < 2 {
		return "", fmt.Errorf("%s: no result (%v)", query, err)
	}
	return fmt.Sprint(got.Data.Result[0].Value[1]), nil
}
