package live

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/shopplatform/shop-operator/internal/localstack"
	"github.com/shopplatform/shop-operator/internal/render"
)

// exemplarsResolveToTraces: for each of the five services, the request
// duration histogram that the services serve and the duration histogram that
// the collector's span-metrics connector derives from their spans both carry
// exemplars in the live Prometheus (exemplar storage on, scraped as
// OpenMetrics), and the trace id of an exemplar of each is a trace that the
// Shop's Jaeger holds with a span of that service: a point on a latency
// panel opens its trace. The span-metrics calls counter has a series for
// every service.
func exemplarsResolveToTraces(t *testing.T, ctx context.Context, s *liveShop) {
	begin := time.Now()
	prom := serviceURL(t, ctx, localstack.MonitoringNamespace, localstack.PrometheusService, "web")
	jaeger := serviceURL(t, ctx, s.ns, s.shop.Name+"-jaeger", "http-ui")
	for _, svc := range render.Services {
		histograms := map[string]string{
			"service histogram": fmt.Sprintf(`http_server_request_duration_seconds_bucket{namespace=%q, shop=%q, service=%q}`, s.ns, s.shop.Name, svc),
			"span metrics":      fmt.Sprintf(`traces_span_metrics_duration_milliseconds_bucket{namespace=%q, service_name=%q}`, s.ns, svc),
		}
		for what, q := range histograms {
			var traceID string
			err := wait.PollUntilContextTimeout(ctx, 5*time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
				traceID = latestExemplarTrace(ctx, prom, q)
				return traceID != "", nil
			})
			if err != nil {
				t.Errorf("%s: %s has no exemplar with a trace_id in Prometheus within 2 minutes", svc, q)
				continue
			}
			if !traceHasService(ctx, jaeger, traceID, svc) {
				t.Errorf("%s: the %s exemplar's trace %s is not in Jaeger with a span of %s", svc, what, traceID, svc)
				continue
			}
			t.Logf("%s: %s exemplar -> trace %s in Jaeger", svc, what, traceID)
		}
		calls := fmt.Sprintf(`traces_span_metrics_calls_total{namespace=%q, service_name=%q}`, s.ns, svc)
		if n, err := promSeries(ctx, prom, calls); err != nil || n == 0 {
			t.Errorf("%s: no span-metrics series %s (%v)", svc, calls, err)
		}
	}
	t.Logf("the step took %s", time.Since(begin).Round(100*time.Millisecond))
}

// latestExemplarTrace is the trace_id of the newest exemplar of the query's
// series over the last five minutes, or "".
func latestExemplarTrace(ctx context.Context, prom, query string) string {
	end := time.Now()
	q := url.Values{"query": {query}, "start": {fmt.Sprint(end.Add(-5 * time.Minute).Unix())}, "end": {fmt.Sprint(end.Unix())}}
	body, err := httpBody(ctx, prom+"/api/v1/query_exemplars?"+q.Encode())
	if err != nil {
		return ""
	}
	var got struct {
		Data []struct {
			Exemplars []struct {
				Labels    map[string]string `json:"labels"`
				Timestamp float64           `json:"timestamp"`
			} `json:"exemplars"`
		} `json:"data"`
	}
	if json.Unmarshal([]byte(body), &got) != nil {
		return ""
	}
	var id string
	var newest float64
	for _, series := range got.Data {
		for _, e := range series.Exemplars {
			if e.Labels["trace_id"] != "" && e.Timestamp > newest {
				id, newest = e.Labels["trace_id"], e.Timestamp
			}
		}
	}
	return id
}

// traceHasService: Jaeger holds the trace, with a span of the service. The
// exporter batches, so the trace may arrive some seconds after the exemplar.
func traceHasService(ctx context.Context, jaeger, traceID, service string) bool {
	err := wait.PollUntilContextTimeout(ctx, 2*time.Second, time.Minute, true, func(ctx context.Context) (bool, error) {
		var got struct {
			Data []struct {
				Processes map[string]struct {
					ServiceName string `json:"serviceName"`
				} `json:"processes"`
			} `json:"data"`
		}
		body, err := httpBody(ctx, jaeger+"/api/traces/"+strings.ToLower(traceID))
		if err != nil || json.Unmarshal([]byte(body), &got) != nil || len(got.Data) == 0 {
			return false, nil
		}
		for _, p := range got.Data[0].Processes {
			if p.ServiceName == service {
				return true, nil
			}
		}
		return false, nil
	})
	return err == nil
}
