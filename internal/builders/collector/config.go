package collector

import (
	"fmt"

	"k8s.io/utils/ptr"

	"github.com/shopplatform/shop-operator/internal/render"
)

// Component IDs, named as the collector release the Shop targets (contrib
// 0.161.0, the default image in internal/profile) lists them: the core OTLP
// exporters are otlp_grpc/otlp_http, contrib components are snake_case.
const (
	otlpReceiver    = "otlp"
	memoryLimiter   = "memory_limiter"
	redact          = "transform/redact"
	cardinality     = "transform/cardinality"
	k8sAttributes   = "k8s_attributes"
	resourceProc    = "resource"
	batch           = "batch"
	tailSampling    = "tail_sampling"
	spanMetrics     = "span_metrics"
	prometheusExp   = "prometheus"
	jaegerExp       = "otlp_grpc/jaeger"
	lokiExp         = "otlp_http/loki"
	newRelicExp     = "otlp_http/newrelic"
	datadogExp      = "datadog"
	datadogConn     = "datadog/connector"
	loadBalancing   = "load_balancing"
	nopExp          = "nop"
	redactedValue   = "[REDACTED]"
	samplerSuffix   = "sampler"
	spanMetricsName = "traces.span.metrics"
)

// Redaction patterns (RE2). They avoid '$' (the collector expands ${...} in
// its config) and backslashes (OTTL string escapes), hence [.] and [0-9].
var redactionPatterns = []struct{ what, re string }{
	// Payment cards: 13 to 19 digits, contiguous or in groups of four
	// (Visa, Mastercard...), or Amex's 4-6-5 grouping.
	{"card numbers", `[0-9]{4}(?:[ -]?[0-9]{4}){2}[ -]?[0-9]{1,7}|[0-9]{4}[ -][0-9]{6}[ -][0-9]{5}`},
	{"email addresses", `[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+[.][A-Za-z]{2,}`},
	// Before the JWT pattern so "Bearer <jwt>" goes as a whole.
	{"bearer tokens", `(?i)bearer [A-Za-z0-9._~+/=-]+`},
	{"JWTs", `eyJ[A-Za-z0-9_-]+[.][A-Za-z0-9_-]+[.][A-Za-z0-9_-]*`},
}

// config is a collector configuration under construction.
type config struct {
	receivers, processors, connectors, exporters map[string]any
	pipelines                                    map[string]any
}

func newConfig() *config {
	return &config{
		receivers: map[string]any{}, processors: map[string]any{}, connectors: map[string]any{},
		exporters: map[string]any{}, pipelines: map[string]any{},
	}
}

// pipeline adds a pipeline; an empty exporter list gets the nop exporter so
// that the receiver still accepts the signal (services would otherwise log
// export errors) and the config stays valid.
func (c *config) pipeline(name string, receivers, processors, exporters []string) {
	if len(exporters) == 0 {
		c.exporters[nopExp] = map[string]any{}
		exporters = []string{nopExp}
	}
	c.pipelines[name] = map[string]any{"receivers": receivers, "processors": processors, "exporters": exporters}
}

func (c *config) object() map[string]any {
	out := map[string]any{
		"receivers":  c.receivers,
		"processors": c.processors,
		"exporters":  c.exporters,
		"service": map[string]any{
			"pipelines": c.pipelines,
			"telemetry": map[string]any{
				"logs": map[string]any{"level": "info"},
				"metrics": map[string]any{
					"level": "normal",
					"readers": []any{map[string]any{"pull": map[string]any{"exporter": map[string]any{
						"prometheus": map[string]any{"host": "0.0.0.0", "port": TelemetryPort},
					}}}},
				},
			},
		},
	}
	if len(c.connectors) > 0 {
		out["connectors"] = c.connectors
	}
	return out
}

// gatewayConfig is the configuration of the collector <shop>, which the
// services send to. Processor order follows the collector's guidance:
// memory_limiter first (refuse early under pressure), redaction before
// anything could copy attributes, k8s_attributes while the connection
// context is fresh, resource, then batch last before the exporters.
// Connectors that must see every span (span metrics, Datadog APM stats) sit
// here, before any sampling.
func gatewayConfig(in render.Input, p plan) map[string]any {
	c := newConfig()
	c.receivers[otlpReceiver] = otlpReceiverConfig(true)
	c.processors[memoryLimiter] = memoryLimiterConfig()
	c.processors[redact] = redactConfig()
	c.processors[k8sAttributes] = k8sAttributesConfig(in)
	c.processors[resourceProc] = resourceConfig(in)
	c.processors[cardinality] = cardinalityConfig()
	c.processors[batch] = batchConfig()
	c.connectors[spanMetrics] = spanMetricsConfig()
	c.exporters[prometheusExp] = prometheusConfig()

	traceExp := []string{spanMetrics}
	metricsRecv := []string{otlpReceiver, spanMetrics}
	metricsExp := []string{prometheusExp}
	var logsExp []string

	if p.datadog {
		// APM stats need every span: the connector comes before sampling.
		c.connectors[datadogConn] = map[string]any{}
		c.exporters[datadogExp] = datadogConfig(in)
		traceExp = append(traceExp, datadogConn)
		metricsRecv = append(metricsRecv, datadogConn)
		metricsExp = append(metricsExp, datadogExp)
		logsExp = append(logsExp, datadogExp)
	}
	if p.newRelic {
		c.exporters[newRelicExp] = newRelicConfig(p)
		metricsExp = append(metricsExp, newRelicExp)
		logsExp = append(logsExp, newRelicExp)
	}
	if p.loki {
		c.exporters[lokiExp] = map[string]any{"endpoint": p.lokiEndpoint}
		logsExp = append(logsExp, lokiExp)
	}
	if p.tailSampling {
		c.exporters[loadBalancing] = loadBalancingConfig(in)
		traceExp = append(traceExp, loadBalancing)
	} else {
		traceExp = append(traceExp, addTraceExporters(c, in, p)...)
	}

	procs := []string{memoryLimiter, redact, k8sAttributes, resourceProc, batch}
	c.pipeline("traces", []string{otlpReceiver}, procs, traceExp)
	// Metrics carry no free text worth redacting; span metrics' dimensions
	// are fixed attribute names. The cardinality guard comes after
	// k8s_attributes, which adds some of the attributes it deletes.
	c.pipeline("metrics", metricsRecv, []string{memoryLimiter, k8sAttributes, resourceProc, cardinality, batch}, metricsExp)
	c.pipeline("logs", []string{otlpReceiver}, procs, logsExp)
	return c.object()
}

// samplerConfig is the configuration of <shop>-sampler: it receives whole
// traces (routed by trace ID), decides, and exports the kept ones.
func samplerConfig(in render.Input, p plan) map[string]any {
	c := newConfig()
	c.receivers[otlpReceiver] = otlpReceiverConfig(false)
	c.processors[memoryLimiter] = memoryLimiterConfig()
	c.processors[tailSampling] = tailSamplingConfig(in)
	c.processors[batch] = batchConfig()
	c.pipeline("traces", []string{otlpReceiver}, []string{memoryLimiter, tailSampling, batch}, addTraceExporters(c, in, p))
	return c.object()
}

// addTraceExporters adds the exporters that receive (sampled) traces.
func addTraceExporters(c *config, in render.Input, p plan) []string {
	var ids []string
	if p.jaeger {
		c.exporters[jaegerExp] = map[string]any{
			"endpoint": p.jaegerEndpoint,
			"tls":      map[string]any{"insecure": p.jaegerInsecure},
		}
		ids = append(ids, jaegerExp)
	}
	if p.datadog {
		c.exporters[datadogExp] = datadogConfig(in)
		ids = append(ids, datadogExp)
	}
	if p.newRelic {
		c.exporters[newRelicExp] = newRelicConfig(p)
		ids = append(ids, newRelicExp)
	}
	return ids
}

func otlpReceiverConfig(withHTTP bool) map[string]any {
	protocols := map[string]any{"grpc": map[string]any{"endpoint": fmt.Sprintf("0.0.0.0:%d", render.OTLPGRPCPort)}}
	if withHTTP {
		protocols["http"] = map[string]any{"endpoint": "0.0.0.0:4318"}
	}
	return map[string]any{"protocols": protocols}
}

func memoryLimiterConfig() map[string]any {
	// Percentages of the container's memory limit (cgroup).
	return map[string]any{"check_interval": "1s", "limit_percentage": 80, "spike_limit_percentage": 20}
}

func batchConfig() map[string]any {
	// Small enough for New Relic's and Datadog's payload limits.
	return map[string]any{"timeout": "5s", "send_batch_size": 1024, "send_batch_max_size": 2048}
}

// redactConfig masks card numbers, emails, bearer tokens and JWTs in span
// and span event attributes, and in log bodies and attributes.
func redactConfig() map[string]any {
	var spans, events, logs []any
	for _, pat := range redactionPatterns {
		all := func(path string) string {
			return fmt.Sprintf(`replace_all_patterns(%s, "value", %q, %q)`, path, pat.re, redactedValue)
		}
		spans = append(spans, all("span.attributes"))
		events = append(events, all("spanevent.attributes"))
		logs = append(logs,
			fmt.Sprintf(`replace_pattern(log.body, %q, %q) where IsString(log.body)`, pat.re, redactedValue),
			all("log.attributes"))
	}
	// One group per context: statements of several contexts in one list
	// run in the innermost one (span events), so span attributes of a span
	// without events would never be redacted.
	group := func(context string, statements []any) map[string]any {
		return map[string]any{"context": context, "statements": statements}
	}
	return map[string]any{
		// A statement that fails on one record must not drop the record.
		"error_mode":       "ignore",
		"trace_statements": []any{group("span", spans), group("spanevent", events)},
		"log_statements":   []any{group("log", logs)},
	}
}

// k8sAttributesConfig enriches telemetry with pod metadata. The services set
// k8s.pod.name and k8s.namespace.name themselves, which associates their data
// with the pod even behind an Istio sidecar (where the connection's peer
// address is the sidecar's); the connection is the fallback.
func k8sAttributesConfig(in render.Input) map[string]any {
	return map[string]any{
		"auth_type": "serviceAccount",
		// Watch only the Shop's namespace: a namespaced Role is enough.
		"filter": map[string]any{"namespace": in.Shop.Namespace},
		"extract": map[string]any{"metadata": []any{
			"k8s.namespace.name", "k8s.pod.name", "k8s.pod.uid", "k8s.deployment.name", "k8s.node.name", "k8s.container.name",
		}},
		"pod_association": []any{
			map[string]any{"sources": []any{
				map[string]any{"from": "resource_attribute", "name": "k8s.pod.name"},
				map[string]any{"from": "resource_attribute", "name": "k8s.namespace.name"},
			}},
			map[string]any{"sources": []any{map[string]any{"from": "resource_attribute", "name": "k8s.pod.ip"}}},
			map[string]any{"sources": []any{map[string]any{"from": "connection"}}},
		},
	}
}

// cardinalityConfig is the cardinality guard of docs/operations-testing.md
// ("Cost controls per profile"), validated on collector 0.161: it deletes
// resource attributes that are constant per process or pod incarnation (they
// only churn series as labels) and data point attributes with unbounded
// values (user, session, order ids, URLs, client addresses), and caps a data
// point at 10 attributes, keeping the known dimensions. k8s.pod.name stays.
// The regexes are OTTL string literals: "\\." is a literal dot.
func cardinalityConfig() map[string]any {
	group := func(context string, statements ...any) map[string]any {
		return map[string]any{"context": context, "statements": statements}
	}
	return map[string]any{
		"error_mode": "ignore",
		"metric_statements": []any{
			group("resource",
				`delete_matching_keys(resource.attributes, "^(k8s\\.pod\\.uid|k8s\\.replicaset\\.(name|uid)|k8s\\.deployment\\.uid|service\\.instance\\.id|process\\..+|host\\..+|os\\..+|telemetry\\.sdk\\..+)$")`),
			group("datapoint",
				`delete_matching_keys(datapoint.attributes, "^(enduser\\..+|user\\.(id|email|name)|session\\.id|order\\.id|payment\\.id|http\\.request\\.header\\..+|url\\.(full|query)|client\\.address|network\\.peer\\..+)$")`,
				`limit(datapoint.attributes, 10, ["http.route", "http.request.method", "http.response.status_code", "outcome", "scenario", "step", "result", "currency"])`),
		},
	}
}

// resourceConfig stamps the environment and shop name: the operator knows
// them for certain, so they win over what a client sent.
func resourceConfig(in render.Input) map[string]any {
	return map[string]any{"attributes": []any{
		map[string]any{"key": "deployment.environment.name", "value": string(in.Spec.Environment), "action": "upsert"},
		map[string]any{"key": "shop.name", "value": in.Shop.Name, "action": "upsert"},
	}}
}

// spanMetricsConfig derives RED metrics (calls, errors via status.code,
// duration histograms with exemplars) from every span.
func spanMetricsConfig() map[string]any {
	return map[string]any{
		"namespace": spanMetricsName,
		"histogram": map[string]any{
			"unit":     "ms",
			"explicit": map[string]any{"buckets": []any{"5ms", "10ms", "25ms", "50ms", "100ms", "250ms", "500ms", "1s", "2500ms", "5s", "10s"}},
		},
		"dimensions": []any{
			map[string]any{"name": "http.request.method"},
			map[string]any{"name": "http.response.status_code"},
			map[string]any{"name": "http.route"},
		},
		"exemplars":              map[string]any{"enabled": true},
		"metrics_flush_interval": "15s",
		"metrics_expiration":     "5m",
	}
}

// prometheusConfig exposes every metric the collector receives or derives
// for Prometheus to scrape (a ServiceMonitor on port PrometheusPortName).
func prometheusConfig() map[string]any {
	return map[string]any{
		"endpoint": fmt.Sprintf("0.0.0.0:%d", PrometheusPort),
		// Resource attributes (service.name, k8s.*) become labels, so queries
		// need no join with target_info.
		"resource_to_telemetry_conversion": map[string]any{"enabled": true},
		// OpenMetrics carries the span metrics' exemplars (trace IDs).
		"enable_open_metrics": true,
		"metric_expiration":   "5m",
	}
}

// tailSamplingConfig drops probe traces, then keeps every trace with an
// error, every trace slower than slowTraceThreshold, and samplingPercentage
// of the rest (those policies are OR-ed; a drop decision wins over them).
func tailSamplingConfig(in render.Input) map[string]any {
	col := in.Spec.Observability.Collector
	threshold := int64(1000)
	if col.SlowTraceThreshold != nil {
		threshold = col.SlowTraceThreshold.Milliseconds()
	}
	return map[string]any{
		"decision_wait":               "10s",
		"num_traces":                  100000,
		"expected_new_traces_per_sec": 100,
		"policies": []any{
			dropProbesPolicy(),
			map[string]any{"name": "errors", "type": "status_code", "status_code": map[string]any{"status_codes": []any{"ERROR"}}},
			map[string]any{"name": "slow", "type": "latency", "latency": map[string]any{"threshold_ms": threshold}},
			map[string]any{"name": "share", "type": "probabilistic", "probabilistic": map[string]any{
				"sampling_percentage": ptr.Deref(col.SamplingPercentage, 100),
			}},
		},
	}
}

// dropProbesPolicy drops the traces of readiness/liveness probes and metrics
// scrapes, as validated in docs/operations-testing.md ("Cost controls per
// profile"): a readiness check's calls to its peers start a trace with a
// root client span (the load and the synthetic check start theirs with an
// internal span, so they never match), and a span on a probe or scrape path
// marks the trace too. The span conditions are OR-ed.
func dropProbesPolicy() map[string]any {
	return map[string]any{
		"name": "drop-probes",
		"type": "drop",
		"drop": map[string]any{"drop_sub_policy": []any{map[string]any{
			"name": "probe-traces",
			"type": "ottl_condition",
			"ottl_condition": map[string]any{
				"error_mode": "ignore",
				"span": []any{
					`span.kind == SPAN_KIND_CLIENT and IsRootSpan()`,
					`IsMatch(span.attributes["url.path"], "^/(healthz|readyz|livez|metrics)$")`,
				},
			},
		}}},
	}
}

// loadBalancingConfig routes spans by trace ID to the sampler pods, found
// through the headless Service the opentelemetry-operator creates for the
// sampler (<name>-collector-headless). The short name resolves through the
// pod's DNS search path, so no cluster domain is assumed.
func loadBalancingConfig(in render.Input) map[string]any {
	return map[string]any{
		"routing_key": "traceID",
		"protocol": map[string]any{"otlp": map[string]any{
			"tls": map[string]any{"insecure": true},
		}},
		"resolver": map[string]any{"dns": map[string]any{
			"hostname": fmt.Sprintf("%s-collector-headless.%s", samplerName(in), in.Shop.Namespace),
			"port":     fmt.Sprint(render.OTLPGRPCPort),
		}},
	}
}

func datadogConfig(in render.Input) map[string]any {
	return map[string]any{"api": map[string]any{
		"key":  "${env:" + envDatadogAPIKey + "}",
		"site": in.Spec.Observability.Datadog.Site,
	}}
}

func newRelicConfig(p plan) map[string]any {
	return map[string]any{
		"endpoint": p.newRelicEndpoint,
		"headers":  map[string]any{"api-key": "${env:" + envNewRelicLicenseKey + "}"},
	}
}
