package platform

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"
	noopmetric "go.opentelemetry.io/otel/metric/noop"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	nooptrace "go.opentelemetry.io/otel/trace/noop"
)

type discardSpans struct{}

func (discardSpans) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardSpans) Shutdown(context.Context) error                             { return nil }

// BenchmarkHandler is the cost of Handler's telemetry per request, without
// network or database: off (no-op providers), every request traced, and 10 %
// head-sampled (the production profile). The figures are in
// docs/benchmarks-services.md ("Telemetry overhead").
func BenchmarkHandler(b *testing.B) {
	body := []byte(strings.Repeat("x", 5000))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/catalog/products", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	for _, v := range []struct{ name, sampler, arg string }{
		{"off", "", ""},
		{"traced", "parentbased_always_on", ""},
		{"sampled10", "parentbased_traceidratio", "0.1"},
	} {
		b.Run(v.name, func(b *testing.B) {
			if v.sampler == "" {
				otel.SetTracerProvider(nooptrace.NewTracerProvider())
				otel.SetMeterProvider(noopmetric.NewMeterProvider())
			} else {
				b.Setenv("OTEL_TRACES_SAMPLER", v.sampler)
				b.Setenv("OTEL_TRACES_SAMPLER_ARG", v.arg)
				cfg, _ := LoadConfig("bench")
				tel, err := SetupTelemetry(b.Context(), cfg, &TelemetryOptions{LogOutput: io.Discard,
					SpanProcessors: []sdktrace.SpanProcessor{sdktrace.NewBatchSpanProcessor(discardSpans{})}})
				if err != nil {
					b.Fatal(err)
				}
				defer tel.Shutdown(context.Background())
			}
			h := Handler("catalog", mux)
			req := httptest.NewRequest("GET", "http://catalog:8080/api/catalog/products?page_size=20", nil)
			req.RemoteAddr = "10.0.0.7:43210"
			req.Header.Set("User-Agent", "Go-http-client/1.1")
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(httptest.NewRecorder(), req)
			}
		})
	}
}
