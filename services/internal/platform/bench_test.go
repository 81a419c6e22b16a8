package platform

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"go.opentelemetry.io/otel"
	noopmetric "go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	nooptrace "go.opentelemetry.io/otel/trace/noop"

	"github.com/shopplatform/shop-operator/services/internal/pgtest"
)

type discardMetrics struct{ sdkmetric.Exporter }

func (discardMetrics) Temporality(k sdkmetric.InstrumentKind) metricdata.Temporality {
	return sdkmetric.DefaultTemporalitySelector(k)
}
func (discardMetrics) Aggregation(k sdkmetric.InstrumentKind) sdkmetric.Aggregation {
	return sdkmetric.DefaultAggregationSelector(k)
}
func (discardMetrics) Export(context.Context, *metricdata.ResourceMetrics) error { return nil }
func (discardMetrics) ForceFlush(context.Context) error                          { return nil }
func (discardMetrics) Shutdown(context.Context) error                            { return nil }

type discardSpans struct{}

func (discardSpans) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discardSpans) Shutdown(context.Context) error                             { return nil }

// BenchmarkHandler is the cost of Handler's telemetry per request: off
// (no-op providers), every request traced, 10 % head-sampled (the
// production profile), and 10 % with a second metric reader as when
// OTEL_EXPORTER_OTLP_ENDPOINT is set; each alone ("handler") and with one
// 20-row query through the traced pool ("query", the catalog listing's
// shape). cpu-ns/op is this process's CPU time (getrusage), less sensitive
// to other load on the machine than ns/op. Figures: docs/benchmarks-services.md
// ("Telemetry overhead").
func BenchmarkHandler(b *testing.B) {
	dbURL := pgtest.NewDatabase(b)
	body := []byte(strings.Repeat("x", 5000))
	for _, shape := range []string{"handler", "query"} {
		for _, v := range []struct {
			name, sampler, arg string
			otlp               bool
		}{
			{"off", "", "", false},
			{"traced", "parentbased_always_on", "", false},
			{"unsampled", "parentbased_always_off", "", false},
			{"sampled10", "parentbased_traceidratio", "0.1", false},
			{"sampled10+otlp-reader", "parentbased_traceidratio", "0.1", true},
		} {
			b.Run(shape+"/"+v.name, func(b *testing.B) {
				if v.sampler == "" {
					otel.SetTracerProvider(nooptrace.NewTracerProvider())
					otel.SetMeterProvider(noopmetric.NewMeterProvider())
				} else {
					b.Setenv("OTEL_TRACES_SAMPLER", v.sampler)
					b.Setenv("OTEL_TRACES_SAMPLER_ARG", v.arg)
					cfg, _ := LoadConfig("bench")
					opts := &TelemetryOptions{LogOutput: io.Discard,
						SpanProcessors: []sdktrace.SpanProcessor{sdktrace.NewBatchSpanProcessor(discardSpans{})}}
					if v.otlp {
						opts.MetricReaders = []sdkmetric.Reader{sdkmetric.NewPeriodicReader(discardMetrics{})}
					}
					tel, err := SetupTelemetry(b.Context(), cfg, opts)
					if err != nil {
						b.Fatal(err)
					}
					defer tel.Shutdown(context.Background())
				}
				// Built after the providers, as in main.
				mux := http.NewServeMux()
				if shape == "handler" {
					mux.HandleFunc("GET /api/catalog/products", func(w http.ResponseWriter, r *http.Request) {
						w.Header().Set("Content-Type", "application/json")
						_, _ = w.Write(body)
					})
				} else {
					pool, err := OpenDB(b.Context(), dbURL, "bench", nil)
					if err != nil {
						b.Fatal(err)
					}
					defer pool.Close()
					mux.HandleFunc("GET /api/catalog/products", func(w http.ResponseWriter, r *http.Request) {
						rows, err := pool.Query(r.Context(), "SELECT g, 'product ' || g FROM generate_series(1, 20) g")
						if err != nil {
							WriteProblem(w, r, NewProblem(500, "db", err.Error()))
							return
						}
						type row struct {
							N    int
							Name string
						}
						out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
						if err != nil {
							WriteProblem(w, r, NewProblem(500, "db", err.Error()))
							return
						}
						WriteJSON(w, 200, out)
					})
				}
				h := Handler("catalog", mux)
				req := httptest.NewRequest("GET", "http://catalog:8080/api/catalog/products?page_size=20", nil)
				req.RemoteAddr = "10.0.0.7:43210"
				req.Header.Set("User-Agent", "Go-http-client/1.1")
				b.ReportAllocs()
				cpu0 := selfCPU()
				for b.Loop() {
					h.ServeHTTP(httptest.NewRecorder(), req)
				}
				b.ReportMetric(float64(selfCPU()-cpu0)/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
