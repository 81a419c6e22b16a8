package platform

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// The server span continues the caller's trace, is named after the route
// and carries the semantic-convention attributes; a server error marks it
// failed; an unsampled caller gets no span but still counts in the metrics.
func TestServerSpan(t *testing.T) {
	t.Setenv("OTEL_TRACES_SAMPLER", "parentbased_always_on")
	tel, rec := recordSpans(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/x/{id}", func(w http.ResponseWriter, r *http.Request) { WriteJSON(w, 200, "ok") })
	mux.HandleFunc("POST /api/boom", func(w http.ResponseWriter, r *http.Request) { panic("boom") })
	h := Handler("test", mux)

	serve := func(method, target, traceparent string) {
		req := httptest.NewRequest(method, "http://shop-test:8080"+target, strings.NewReader(`{}`))
		req.RemoteAddr = "10.1.2.3:5555"
		req.Header.Set("User-Agent", "probe/1")
		if traceparent != "" {
			req.Header.Set("traceparent", traceparent)
		}
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	serve("GET", "/api/x/42", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	serve("POST", "/api/boom", "")
	serve("GET", "/api/x/43", "00-1af7651916cd43dd8448eb211c80319c-c7ad6b7169203331-00") // unsampled caller

	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("want 2 spans (the unsampled request makes none), got %d", len(spans))
	}
	get, boom := spans[0], spans[1]
	if get.Name() != "GET /api/x/{id}" || get.SpanKind() != trace.SpanKindServer {
		t.Errorf("span %q kind %v", get.Name(), get.SpanKind())
	}
	if get.SpanContext().TraceID().String() != "0af7651916cd43dd8448eb211c80319c" || get.Parent().SpanID().String() != "b7ad6b7169203331" {
		t.Errorf("span does not continue the caller's trace: %v parent %v", get.SpanContext().TraceID(), get.Parent().SpanID())
	}
	attrs := map[attribute.Key]string{}
	for _, kv := range get.Attributes() {
		attrs[kv.Key] = kv.Value.Emit()
	}
	for k, want := range map[attribute.Key]string{
		"http.request.method": "GET", "url.path": "/api/x/42", "url.scheme": "http", "server.address": "shop-test",
		"server.port": "8080", "http.route": "/api/x/{id}", "http.response.status_code": "200",
		"network.protocol.version": "1.1", "client.address": "10.1.2.3", "network.peer.address": "10.1.2.3",
		"user_agent.original": "probe/1",
	} {
		if attrs[k] != want {
			t.Errorf("%s = %q, want %q", k, attrs[k], want)
		}
	}
	if boom.Name() != "POST /api/boom" || boom.Status().Code != codes.Error || boom.Parent().IsValid() {
		t.Errorf("panicking request: span %q status %v parent %v", boom.Name(), boom.Status(), boom.Parent())
	}

	mrec := httptest.NewRecorder()
	AdminMux(tel.MetricsHandler).ServeHTTP(mrec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{`http_route="/api/boom"`, `http_response_status_code="500"`} {
		if !hasSeries(mrec.Body.String(), "http_server_request_duration_seconds_count{", want) {
			t.Errorf("no duration series with %s", want)
		}
	}
	if !strings.Contains(mrec.Body.String(), `http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="200",http_route="/api/x/{id}"`) ||
		!hasSeries(mrec.Body.String(), "http_server_request_duration_seconds_count{", `http_route="/api/x/{id}"`) {
		t.Error("no duration series for the GET route")
	}
	for _, l := range strings.Split(mrec.Body.String(), "\n") {
		if strings.HasPrefix(l, `http_server_request_duration_seconds_count{http_request_method="GET"`) && !strings.HasSuffix(l, " 2") {
			t.Errorf("want both GETs counted (sampled or not): %s", l)
		}
	}
	if strings.Contains(mrec.Body.String(), "body_size") {
		t.Errorf("body-size histograms recorded without %s", bodySizeMetricsEnv)
	}
}

// The body-size histograms are opt-in.
func TestBodySizeMetricsOptIn(t *testing.T) {
	t.Setenv(bodySizeMetricsEnv, "true")
	cfg, _ := LoadConfig("test")
	tel, err := SetupTelemetry(t.Context(), cfg, &TelemetryOptions{LogOutput: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/x", func(w http.ResponseWriter, r *http.Request) { _, _ = io.ReadAll(r.Body); WriteJSON(w, 200, "ok") })
	Handler("test", mux).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "http://shop-test:8080/api/x", strings.NewReader(`{"a":1}`)))

	mrec := httptest.NewRecorder()
	AdminMux(tel.MetricsHandler).ServeHTTP(mrec, httptest.NewRequest("GET", "/metrics", nil))
	for _, name := range []string{"http_server_request_body_size_bytes_sum{", "http_server_response_body_size_bytes_sum{"} {
		if !hasSeries(mrec.Body.String(), name, `http_route="/api/x"`) {
			t.Errorf("no %s series for the route", name)
		}
	}
	if !hasSeries(mrec.Body.String(), "http_server_request_body_size_bytes_sum{", "} 7") {
		t.Error("request body size is not the 7 bytes read")
	}
}

func hasSeries(metrics, prefix, label string) bool {
	for _, l := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(l, prefix) && strings.Contains(l, label) {
			return true
		}
	}
	return false
}

// recordSpans installs the services' telemetry with every span also going
// to a recorder (logs discarded), shut down when the test ends.
func recordSpans(t *testing.T) (*Telemetry, *tracetest.SpanRecorder) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	cfg, _ := LoadConfig("test")
	tel, err := SetupTelemetry(t.Context(), cfg, &TelemetryOptions{LogOutput: io.Discard, SpanProcessors: []sdktrace.SpanProcessor{rec}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })
	return tel, rec
}
