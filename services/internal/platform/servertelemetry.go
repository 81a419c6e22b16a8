package platform

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/semconv/v1.43.0/httpconv"
	"go.opentelemetry.io/otel/trace"
)

// serverTelemetry is the inbound half of the services' telemetry: a server
// span per request (W3C trace context and baggage extracted from the
// headers) and the RED histograms per route. It stands in for otelhttp's
// handler, which costs about twice as much per request
// (docs/benchmarks-services.md, "Telemetry overhead"):
//   - it builds a dozen span attributes before the sampling decision; here
//     the span starts with the few that semantic conventions ask for at
//     creation (for samplers), and the rest are added only when the span
//     records, in one call;
//   - it builds a fresh metric attribute set per request; here the set of
//     each (method, host, protocol, status, route) is built once, together
//     with the record option that carries it (metric.WithAttributeSet
//     allocates on every call).
//
// The metrics are otelhttp's, byte for byte: same instruments (httpconv),
// bucket boundaries, attributes and instrumentation scope, so the series
// that docs/metrics.md, the dashboards and the alerts use are unchanged, and
// exemplars still come from the request's span context. The two body-size
// histograms are opt-in (bodySizeMetricsEnv), as in the semantic conventions.
type serverTelemetry struct {
	tracer      trace.Tracer
	propagators propagation.TextMapPropagator
	duration    httpconv.ServerRequestDuration
	bodySizes   bool // record the body-size histograms below
	reqSize     httpconv.ServerRequestBodySize
	respSize    httpconv.ServerResponseBodySize
	sets        sync.Map // metricKey -> []metric.RecordOption
	setCount    atomic.Int32
}

// bodySizeMetricsEnv turns on http.server.request.body.size and
// http.server.response.body.size. They are Development-status, optional
// metrics in the semantic conventions and no dashboard, alert or recording
// rule reads them, while they were two of the three histogram records on
// every request (docs/metrics.md).
const bodySizeMetricsEnv = "HTTP_SERVER_BODY_SIZE_METRICS"

// maxCachedSets bounds the attribute-set cache: server.address comes from
// the client's Host header, so the keys are not bounded by the routes alone.
const maxCachedSets = 512

func newServerTelemetry() *serverTelemetry {
	// otelhttp's scope, so otel_scope_name/otel_scope_version on the series
	// do not change.
	meter := otel.GetMeterProvider().Meter(otelhttp.ScopeName, metric.WithInstrumentationVersion(otelhttp.Version))
	st := &serverTelemetry{
		tracer:      otel.GetTracerProvider().Tracer(otelhttp.ScopeName, trace.WithInstrumentationVersion(otelhttp.Version)),
		propagators: otel.GetTextMapPropagator(),
	}
	st.bodySizes, _ = strconv.ParseBool(Getenv(bodySizeMetricsEnv))
	var err error
	if st.duration, err = httpconv.NewServerRequestDuration(meter, metric.WithExplicitBucketBoundaries(
		0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)); err != nil {
		otel.Handle(err)
	}
	if !st.bodySizes {
		return st
	}
	if st.reqSize, err = httpconv.NewServerRequestBodySize(meter); err != nil {
		otel.Handle(err)
	}
	if st.respSize, err = httpconv.NewServerResponseBodySize(meter); err != nil {
		otel.Handle(err)
	}
	return st
}

// start extracts the caller's trace context and starts the server span,
// named after the method until the mux has chosen a route (semantic
// conventions: never after the raw path, whose cardinality is unbounded).
// Its attributes are all set in end, and only when the span records: the
// conventions ask for some at creation so that samplers can read them, but
// no sampler samplerFromEnv builds reads attributes, and passing them costs
// three allocations on every request, sampled or not.
func (st *serverTelemetry) start(r *http.Request) (context.Context, trace.Span) {
	ctx := st.propagators.Extract(r.Context(), canonicalCarrier(r.Header))
	return st.tracer.Start(ctx, spanMethod(r.Method), serverKind)
}

var serverKind = trace.WithSpanKind(trace.SpanKindServer)

// canonicalCarrier reads the W3C headers by their canonical keys:
// http.Header.Get would canonicalise "traceparent", "tracestate" and
// "baggage" into a new string on every request.
type canonicalCarrier http.Header

func canonicalKey(key string) string {
	switch key {
	case "traceparent":
		return "Traceparent"
	case "tracestate":
		return "Tracestate"
	case "baggage":
		return "Baggage"
	}
	return textproto.CanonicalMIMEHeaderKey(key)
}

func (c canonicalCarrier) Get(key string) string {
	if v := c[canonicalKey(key)]; len(v) > 0 {
		return v[0]
	}
	return ""
}
func (c canonicalCarrier) Values(key string) []string { return c[canonicalKey(key)] }
func (c canonicalCarrier) Set(key, value string)      { http.Header(c).Set(key, value) }
func (c canonicalCarrier) Keys() []string             { return propagation.HeaderCarrier(c).Keys() }

// spanAttrPool recycles the slice end builds a recorded span's attributes
// in (about 1 KB per traced request otherwise).
var spanAttrPool = sync.Pool{New: func() any { s := make([]attribute.KeyValue, 0, 16); return &s }}

// end completes the span (only when it records) and records the RED
// histograms; r is the request the mux saw (r.Pattern set), w the writer
// that counted the response.
func (st *serverTelemetry) end(ctx context.Context, span trace.Span, r *http.Request, w *statusWriter, readBytes int64, began time.Time) {
	route := routeOf(r.Pattern)
	if span.IsRecording() {
		if route != "" {
			span.SetName(spanMethod(r.Method) + " " + route)
		}
		host, port := splitHostPort(r.Host)
		bp := spanAttrPool.Get().(*[]attribute.KeyValue)
		attrs := (*bp)[:0]
		attrs = append(attrs, methodAttr(r.Method), schemeAttr(r), semconv.URLPath(r.URL.Path), semconv.ServerAddress(host))
		if p := requiredPort(r.TLS != nil, port); p > 0 {
			attrs = append(attrs, semconv.ServerPort(p))
		}
		attrs = append(attrs, semconv.HTTPResponseStatusCode(w.status))
		if route != "" {
			attrs = append(attrs, semconv.HTTPRoute(route))
		}
		if _, v := netProtocol(r.Proto); v != "" {
			attrs = append(attrs, semconv.NetworkProtocolVersion(v))
		}
		peer, peerPort := splitHostPort(r.RemoteAddr)
		if peer != "" {
			attrs = append(attrs, semconv.NetworkPeerAddress(peer))
			if peerPort > 0 {
				attrs = append(attrs, semconv.NetworkPeerPort(peerPort))
			}
		}
		client, _, _ := strings.Cut(r.Header.Get("X-Forwarded-For"), ",")
		if client = strings.TrimSpace(client); client == "" {
			client = peer
		}
		if client != "" {
			attrs = append(attrs, semconv.ClientAddress(client))
		}
		if ua := r.UserAgent(); ua != "" {
			attrs = append(attrs, semconv.UserAgentOriginal(ua))
		}
		if w.status >= 500 {
			attrs = append(attrs, semconv.ErrorTypeKey.String(strconv.Itoa(w.status)))
			span.SetStatus(codes.Error, "")
		}
		span.SetAttributes(attrs...) // the SDK copies them into the span
		clear(attrs)
		*bp = attrs[:0]
		spanAttrPool.Put(bp)
	}
	span.End()

	// Record with the cached option slice: the SDK uses the set as it is
	// (one scan for duplicate values, no sort, no allocation), whereas
	// httpconv's RecordSet wraps it in a new option on every call.
	opts := st.recordOptions(r, w.status, route)
	st.duration.Float64Histogram.Record(ctx, time.Since(began).Seconds(), opts...)
	if st.bodySizes {
		st.reqSize.Int64Histogram.Record(ctx, readBytes, opts...)
		st.respSize.Int64Histogram.Record(ctx, w.written, opts...)
	}
}

type metricKey struct {
	method, host, proto, route string
	port, status               int
	tls                        bool
}

// recordOptions carries otelhttp's metric attribute set for the request,
// built once per distinct key.
func (st *serverTelemetry) recordOptions(r *http.Request, status int, route string) []metric.RecordOption {
	host, port := splitHostPort(r.Host)
	k := metricKey{method: r.Method, host: host, proto: r.Proto, route: route, port: port, status: status, tls: r.TLS != nil}
	if o, ok := st.sets.Load(k); ok {
		return o.([]metric.RecordOption)
	}
	attrs := make([]attribute.KeyValue, 0, 8)
	attrs = append(attrs, semconv.HTTPRequestMethodKey.String(standardMethod(r.Method)), schemeAttr(r), semconv.ServerAddress(host))
	if p := requiredPort(k.tls, port); p > 0 {
		attrs = append(attrs, semconv.ServerPort(p))
	}
	name, version := netProtocol(r.Proto)
	if name != "" {
		attrs = append(attrs, semconv.NetworkProtocolName(name))
	}
	if version != "" {
		attrs = append(attrs, semconv.NetworkProtocolVersion(version))
	}
	if status > 0 {
		attrs = append(attrs, semconv.HTTPResponseStatusCode(status))
	}
	if route != "" {
		attrs = append(attrs, semconv.HTTPRoute(route))
	}
	o := []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(attrs...))}
	if st.setCount.Load() < maxCachedSets {
		if _, loaded := st.sets.LoadOrStore(k, o); !loaded {
			st.setCount.Add(1)
		}
	}
	return o
}

// countingBody counts the request body bytes the handler read.
type countingBody struct {
	rc io.ReadCloser
	n  int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.n += int64(n)
	return n, err
}
func (b *countingBody) Close() error { return b.rc.Close() }

// The helpers below follow otelhttp v0.72's internal/semconv exactly, so
// that the attribute values (and thus the series) do not change.

// routeOf is http.route: the mux pattern without its method ("GET /x" → "/x").
func routeOf(pattern string) string {
	if i := strings.IndexByte(pattern, '/'); i >= 0 {
		return pattern[i:]
	}
	return ""
}

func methodAttr(m string) attribute.KeyValue {
	return semconv.HTTPRequestMethodKey.String(standardMethod(m))
}

// spanMethod is the method part of a span name: "HTTP" for unknown ones.
func spanMethod(m string) string {
	if m = standardMethod(m); m == "_OTHER" {
		return "HTTP"
	}
	return m
}

func standardMethod(m string) string {
	switch m {
	case http.MethodConnect, http.MethodDelete, http.MethodGet, http.MethodHead, http.MethodOptions,
		http.MethodPatch, http.MethodPost, http.MethodPut, http.MethodTrace:
		return m
	}
	if u := strings.ToUpper(m); u != m {
		return standardMethod(u)
	}
	return "_OTHER"
}

var (
	schemeHTTP  = semconv.URLScheme("http")
	schemeHTTPS = semconv.URLScheme("https")
)

func schemeAttr(r *http.Request) attribute.KeyValue {
	if r.TLS != nil {
		return schemeHTTPS
	}
	return schemeHTTP
}

// requiredPort is server.port unless it is the scheme's default.
func requiredPort(https bool, port int) int {
	if port <= 0 || (https && port == 443) || (!https && port == 80) {
		return -1
	}
	return port
}

func splitHostPort(hostport string) (host string, port int) {
	port = -1
	if strings.HasPrefix(hostport, "[") {
		end := strings.LastIndexByte(hostport, ']')
		if end < 0 {
			return "", port
		}
		if strings.LastIndexByte(hostport[end:], ':') < 0 {
			return hostport[1:end], port
		}
	} else if !strings.Contains(hostport, ":") {
		return hostport, port
	}
	host, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return host, port
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return host, port
	}
	return host, int(n)
}

func netProtocol(proto string) (name, version string) {
	name, version, _ = strings.Cut(proto, "/")
	switch name {
	case "HTTP":
		name = "http"
	case "QUIC":
		name = "quic"
	case "SPDY":
		name = "spdy"
	default:
		name = strings.ToLower(name)
	}
	return name, version
}
