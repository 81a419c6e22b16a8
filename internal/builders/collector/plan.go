package collector

import (
	"fmt"
	"strings"

	"k8s.io/utils/ptr"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/render"
)

// Ports and names other builders and docs rely on.
const (
	// PrometheusPort is the collector's prometheus exporter; the port is named
	// PrometheusPortName on the Service <shop>-collector that the
	// opentelemetry-operator creates, for the collector's ServiceMonitor.
	PrometheusPort     = 8889
	PrometheusPortName = "prometheus"
	// TelemetryPort serves the collector's own metrics (otelcol_*), on the
	// operator-created Service <shop>-collector-monitoring.
	TelemetryPort = 8888

	jaegerOTLPPort = 4317
	jaegerUIPort   = 16686
	lokiPort       = 3100

	// Environment variables that carry secrets into the collector's config.
	envDatadogAPIKey      = "DD_API_KEY"
	envNewRelicLicenseKey = "NEW_RELIC_LICENSE_KEY"
)

// New Relic's OTLP endpoints by region.
var newRelicEndpoints = map[string]string{
	"US": "https://otlp.nr-data.net",
	"EU": "https://otlp.eu01.nr-data.net",
}

// plan is what the Shop asks of its telemetry pipeline, decided once so that
// the config, the collector objects and SecretRefs agree.
type plan struct {
	collector bool // the OpenTelemetryCollector is rendered at all

	jaeger, loki, datadog, newRelic bool
	jaegerEndpoint                  string // host:port of Jaeger's OTLP gRPC receiver
	jaegerInsecure                  bool
	lokiEndpoint                    string // base URL of Loki's OTLP endpoint (…/otlp)
	newRelicEndpoint                string

	// tailSampling splits the pipeline in two tiers (see docs/observability.md):
	// the gateway <shop> routes spans by trace ID to the sampler
	// <shop>-sampler, which keeps errors, slow traces and a share of the rest.
	// Only when some exporter receives sampled traces.
	tailSampling bool
}

func newPlan(in render.Input) plan {
	o := in.Spec.Observability
	p := plan{
		collector: in.APIs.OpenTelemetryOperator && ptr.Deref(o.Collector.Enabled, false),
		jaeger:    ptr.Deref(o.Jaeger.Enabled, false),
		loki:      ptr.Deref(o.Loki.Enabled, false),
		datadog:   ptr.Deref(o.Datadog.Enabled, false) && o.Datadog.APIKeySecretRef != nil,
		newRelic:  ptr.Deref(o.NewRelic.Enabled, false) && o.NewRelic.LicenseKeySecretRef != nil,
	}
	if p.jaeger {
		p.jaegerEndpoint, p.jaegerInsecure = jaegerEndpoint(in)
	}
	if p.loki {
		p.lokiEndpoint = lokiEndpoint(in)
	}
	if p.newRelic {
		p.newRelicEndpoint = newRelicEndpoints[o.NewRelic.Region]
		if p.newRelicEndpoint == "" {
			p.newRelicEndpoint = newRelicEndpoints["US"]
		}
	}
	p.tailSampling = ptr.Deref(o.Collector.TailSampling, false) && p.sampledTraceExporters()
	return p
}

// sampledTraceExporters tells whether any exporter receives (sampled) traces.
func (p plan) sampledTraceExporters() bool { return p.jaeger || p.datadog || p.newRelic }

// deployJaeger and deployLoki: the backend runs in the namespace.
func deployJaeger(in render.Input) bool {
	j := in.Spec.Observability.Jaeger
	return ptr.Deref(j.Enabled, false) && j.Mode == shopv1.BackendDeploy
}

func deployLoki(in render.Input) bool {
	l := in.Spec.Observability.Loki
	return ptr.Deref(l.Enabled, false) && l.Mode == shopv1.BackendDeploy
}

// jaegerEndpoint returns the gRPC target and whether it is plaintext: the
// deployed Jaeger is; an external one is unless given as https://.
func jaegerEndpoint(in render.Input) (string, bool) {
	if deployJaeger(in) {
		return fmt.Sprintf("%s:%d", in.Name("jaeger"), jaegerOTLPPort), true
	}
	ep := in.Spec.Observability.Jaeger.Endpoint
	if rest, ok := strings.CutPrefix(ep, "https://"); ok {
		return rest, false
	}
	return strings.TrimPrefix(ep, "http://"), true
}

func lokiEndpoint(in render.Input) string {
	if deployLoki(in) {
		return fmt.Sprintf("http://%s:%d/otlp", in.Name("loki"), lokiPort)
	}
	return strings.TrimSuffix(in.Spec.Observability.Loki.Endpoint, "/")
}

// SecretRefs lists every Secret key the collector objects reference, so
// that engine.Prepare can check that they exist and the status report a
// condition per exporter. It is empty when no collector is rendered. Not
// blocking: an exporter whose Secret is missing is switched off (see
// engine.Prepare) and the others keep working.
func SecretRefs(in render.Input) []render.SecretRef {
	p := newPlan(in)
	if !p.collector {
		return nil
	}
	var refs []render.SecretRef
	o := in.Spec.Observability
	if p.datadog {
		refs = append(refs, render.SecretRef{Name: o.Datadog.APIKeySecretRef.Name, Keys: []string{o.Datadog.APIKeySecretRef.Key}, For: render.Exporter("datadog")})
	}
	if p.newRelic {
		refs = append(refs, render.SecretRef{Name: o.NewRelic.LicenseKeySecretRef.Name, Keys: []string{o.NewRelic.LicenseKeySecretRef.Key}, For: render.Exporter("newrelic")})
	}
	return refs
}

// Exporter is the state of one switchable exporter, for the Shop's status:
// the status adds whether its Secret exists (see SecretRefs).
type Exporter struct {
	// Name: jaeger, loki, datadog or newrelic.
	Name string
	// Enabled: the Shop asks for it.
	Enabled bool
	// Rendered: it is in the rendered collector's configuration.
	Rendered bool
	// Reason (CamelCase, for a condition) and Message say why, or where it sends.
	Reason, Message string
	// Secret the exporter reads its credentials from, if any.
	Secret *render.SecretRef
}

// Exporters returns the state of every switchable exporter, in a stable order.
func Exporters(in render.Input) []Exporter {
	p := newPlan(in)
	o := in.Spec.Observability
	secrets := map[string]*render.SecretRef{}
	for _, ref := range SecretRefs(in) {
		secrets[ref.For.Name] = &ref
	}
	one := func(name string, enabled bool, target string) Exporter {
		e := Exporter{Name: name, Enabled: enabled, Secret: secrets[name]}
		switch {
		case !enabled:
			e.Reason, e.Message = "Disabled", name+" is not enabled in the Shop"
		case !in.APIs.OpenTelemetryOperator:
			e.Reason, e.Message = "OpenTelemetryOperatorMissing",
				"the cluster does not serve opentelemetry.io/v1beta1 OpenTelemetryCollector: install the opentelemetry-operator"
		case !p.collector:
			e.Reason, e.Message = "CollectorDisabled", "observability.collector.enabled is false: nothing exports to "+name
		default:
			e.Rendered, e.Reason, e.Message = true, "Configured", "the collector exports to "+target
		}
		return e
	}
	return []Exporter{
		one("jaeger", p.jaeger, p.jaegerEndpoint),
		one("loki", p.loki, p.lokiEndpoint),
		one("datadog", p.datadog, "Datadog ("+o.Datadog.Site+")"),
		one("newrelic", p.newRelic, "New Relic ("+p.newRelicEndpoint+")"),
	}
}
