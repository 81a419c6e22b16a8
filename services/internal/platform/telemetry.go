package platform

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/bridges/otelslog"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploggrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/log/global"
	"go.opentelemetry.io/otel/propagation"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
)

// Telemetry holds the providers SetupTelemetry installed globally.
type Telemetry struct {
	Logger         *slog.Logger
	TracerProvider *sdktrace.TracerProvider
	MeterProvider  *sdkmetric.MeterProvider
	// MetricsHandler serves the Prometheus exposition (OpenMetrics with
	// exemplars when the scraper asks for it).
	MetricsHandler http.Handler
	shutdown       []func(context.Context) error
}

// TelemetryOptions lets tests swap exporters; production passes nothing.
type TelemetryOptions struct {
	// LogOutput receives the JSON log lines (default os.Stdout).
	LogOutput io.Writer
	// SpanProcessors are added to the tracer provider (e.g. a tracetest.SpanRecorder).
	SpanProcessors []sdktrace.SpanProcessor
	// MetricReaders are added to the meter provider (benchmarks use one to
	// stand in for the OTLP reader without a network).
	MetricReaders []sdkmetric.Reader
}

// SetupTelemetry installs the global tracer, meter and logger providers, the
// W3C trace-context and baggage propagators and a JSON slog default logger
// that carries trace_id and span_id. Without OTEL_EXPORTER_OTLP_ENDPOINT
// nothing is exported over the network (no errors, no retries); metrics are
// always served through MetricsHandler.
func SetupTelemetry(ctx context.Context, cfg Config, opts *TelemetryOptions) (*Telemetry, error) {
	if opts == nil {
		opts = &TelemetryOptions{}
	}
	out := opts.LogOutput
	if out == nil {
		out = os.Stdout
	}
	res, err := newResource(ctx, cfg)
	if err != nil {
		return nil, err
	}
	t := &Telemetry{}

	// Traces: the sampler from OTEL_TRACES_SAMPLER(_ARG) (default
	// parentbased_always_on), never sampling work under WithoutTracing.
	sampler, err := samplerFromEnv()
	if err != nil {
		return nil, err
	}
	tpOpts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res), sdktrace.WithSampler(untracedSampler{sampler})}
	for _, sp := range opts.SpanProcessors {
		tpOpts = append(tpOpts, sdktrace.WithSpanProcessor(sp))
	}
	// Metrics: Prometheus pull always, OTLP push when configured.
	reg := prometheus.NewRegistry()
	// The Go runtime's and the process' own metrics (goroutines, heap, GC,
	// CPU seconds, resident memory), for the dashboards' resource row.
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// service_name on every series lets dashboards and alerts select a
	// service the same way whether scraped here or via the collector.
	promExp, err := otelprom.New(otelprom.WithRegisterer(reg),
		otelprom.WithResourceAsConstantLabels(attribute.NewAllowKeysFilter(semconv.ServiceNameKey)))
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	mpOpts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(promExp)}
	for _, r := range opts.MetricReaders {
		mpOpts = append(mpOpts, sdkmetric.WithReader(r))
	}
	var lp *sdklog.LoggerProvider

	if cfg.OTLPEndpoint != "" {
		se, me, le, err := otlpExporters(ctx, cfg.OTLPProtocol)
		if err != nil {
			return nil, err
		}
		tpOpts = append(tpOpts, sdktrace.WithBatcher(se))
		mpOpts = append(mpOpts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(me)))
		lp = sdklog.NewLoggerProvider(sdklog.WithResource(res), sdklog.WithProcessor(sdklog.NewBatchProcessor(le)))
		global.SetLoggerProvider(lp)
		t.shutdown = append(t.shutdown, lp.Shutdown)
	}
	t.TracerProvider = sdktrace.NewTracerProvider(tpOpts...)
	t.MeterProvider = sdkmetric.NewMeterProvider(mpOpts...)
	t.shutdown = append(t.shutdown, t.TracerProvider.Shutdown, t.MeterProvider.Shutdown)
	otel.SetTracerProvider(t.TracerProvider)
	otel.SetMeterProvider(t.MeterProvider)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	t.MetricsHandler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true})

	var stdout slog.Handler = &traceHandler{slog.NewJSONHandler(out, &slog.HandlerOptions{Level: cfg.LogLevel})}
	h := stdout
	if lp != nil {
		h = fanout{stdout, &levelHandler{otelslog.NewHandler(cfg.ServiceName, otelslog.WithLoggerProvider(lp)), cfg.LogLevel}}
	}
	t.Logger = slog.New(h).With("service", cfg.ServiceName)
	slog.SetDefault(t.Logger)
	// Exporter errors (collector down) go to stdout only, never back into the
	// OTLP log pipeline that may be the one failing, and at most every 30s.
	otel.SetErrorHandler(&throttledErrors{log: slog.New(stdout).With("service", cfg.ServiceName), every: 30 * time.Second})
	return t, nil
}

// throttledErrors logs OpenTelemetry export errors without flooding.
type throttledErrors struct {
	log        *slog.Logger
	every      time.Duration
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func (e *throttledErrors) Handle(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if now := time.Now(); now.Sub(e.last) >= e.every {
		e.log.Warn("telemetry export failed", "err", err, "suppressed", e.suppressed)
		e.last, e.suppressed = now, 0
		return
	}
	e.suppressed++
}

// Shutdown flushes and stops the providers.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	for _, f := range t.shutdown {
		errs = append(errs, f(ctx))
	}
	return errors.Join(errs...)
}

func newResource(ctx context.Context, cfg Config) (*resource.Resource, error) {
	attrs := []attribute.KeyValue{
		semconv.ServiceName(cfg.ServiceName),
		semconv.ServiceVersion(Version),
		semconv.ServiceNamespace("shop"),
	}
	add := func(v string, kv func(string) attribute.KeyValue) {
		if v != "" {
			attrs = append(attrs, kv(v))
		}
	}
	add(cfg.Environment, semconv.DeploymentEnvironmentName)
	add(cfg.PodName, semconv.K8SPodName)
	add(cfg.Namespace, semconv.K8SNamespaceName)
	add(cfg.NodeName, semconv.K8SNodeName)
	add(cfg.ShopName, func(v string) attribute.KeyValue { return attribute.String("shop.name", v) })
	// OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME (WithFromEnv) win over our defaults.
	return resource.New(ctx, resource.WithAttributes(attrs...), resource.WithFromEnv(), resource.WithTelemetrySDK())
}

// otlpExporters honours the standard OTEL_EXPORTER_OTLP_* variables (endpoint,
// headers, insecure, timeout), which the exporters read themselves.
func otlpExporters(ctx context.Context, protocol string) (sdktrace.SpanExporter, sdkmetric.Exporter, sdklog.Exporter, error) {
	var (
		se  sdktrace.SpanExporter
		me  sdkmetric.Exporter
		le  sdklog.Exporter
		err error
	)
	if protocol == "http/protobuf" {
		if se, err = otlptracehttp.New(ctx); err == nil {
			if me, err = otlpmetrichttp.New(ctx); err == nil {
				le, err = otlploghttp.New(ctx)
			}
		}
	} else {
		if se, err = otlptracegrpc.New(ctx); err == nil {
			if me, err = otlpmetricgrpc.New(ctx); err == nil {
				le, err = otlploggrpc.New(ctx)
			}
		}
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("otlp exporter: %w", err)
	}
	return se, me, le, nil
}

// traceHandler adds trace_id and span_id from the record's context.
type traceHandler struct{ slog.Handler }

func (h *traceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}
func (h *traceHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return &traceHandler{h.Handler.WithAttrs(a)}
}
func (h *traceHandler) WithGroup(n string) slog.Handler { return &traceHandler{h.Handler.WithGroup(n)} }

// levelHandler applies LOG_LEVEL to the OTLP bridge too.
type levelHandler struct {
	slog.Handler
	min slog.Level
}

func (h *levelHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}
func (h *levelHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return &levelHandler{h.Handler.WithAttrs(a), h.min}
}
func (h *levelHandler) WithGroup(n string) slog.Handler {
	return &levelHandler{h.Handler.WithGroup(n), h.min}
}

// fanout sends each record to both handlers.
type fanout [2]slog.Handler

func (f fanout) Enabled(ctx context.Context, l slog.Level) bool {
	return f[0].Enabled(ctx, l) || f[1].Enabled(ctx, l)
}
func (f fanout) Handle(ctx context.Context, r slog.Record) error {
	var errs []error
	for _, h := range f {
		if h.Enabled(ctx, r.Level) {
			errs = append(errs, h.Handle(ctx, r.Clone()))
		}
	}
	return errors.Join(errs...)
}
func (f fanout) WithAttrs(a []slog.Attr) slog.Handler {
	return fanout{f[0].WithAttrs(a), f[1].WithAttrs(a)}
}
func (f fanout) WithGroup(n string) slog.Handler { return fanout{f[0].WithGroup(n), f[1].WithGroup(n)} }

// shutdownTimeout bounds flushing telemetry at exit.
const shutdownTimeout = 5 * time.Second
