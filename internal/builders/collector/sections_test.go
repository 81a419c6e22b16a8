package collector

import (
	"bytes"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"k8s.io/utils/ptr"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
)

// The sections of the components that cannot be built here (the datadog
// exporter and connector, the load_balancing exporter) are decoded strictly
// into their documented fields (contrib 0.161.0 READMEs): an unknown or
// misspelt field fails, as the collector would fail on it.

type datadogExporterDoc struct {
	API struct {
		Key              string `json:"key"`
		Site             string `json:"site"`
		FailOnInvalidKey *bool  `json:"fail_on_invalid_key,omitempty"`
	} `json:"api"`
}

type loadBalancingDoc struct {
	RoutingKey string `json:"routing_key"`
	Protocol   struct {
		OTLP map[string]any `json:"otlp"` // an otlp_grpc exporter config, validated by otelcol
	} `json:"protocol"`
	Resolver struct {
		Static *struct {
			Hostnames []string `json:"hostnames"`
		} `json:"static,omitempty"`
		DNS *struct {
			Hostname string `json:"hostname"`
			Port     string `json:"port,omitempty"`
			Interval string `json:"interval,omitempty"`
			Timeout  string `json:"timeout,omitempty"`
		} `json:"dns,omitempty"`
		K8s map[string]any `json:"k8s,omitempty"`
	} `json:"resolver"`
}

func strictDecode(t *testing.T, v any, into any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		t.Fatalf("section %s does not match the documented fields: %v", b, err)
	}
}

func allOn(e shopv1.Environment) render.Input {
	spec := shopv1.ShopSpec{Environment: e}
	o := &spec.Observability
	o.Jaeger.Enabled, o.Loki.Enabled = ptr.To(true), ptr.To(true)
	o.Jaeger.Mode, o.Jaeger.Endpoint = shopv1.BackendExternal, "jaeger:4317"
	o.Loki.Mode, o.Loki.Endpoint = shopv1.BackendExternal, "http://loki:3100/otlp"
	o.Datadog = shopv1.DatadogSpec{Enabled: ptr.To(true), Site: "datadoghq.eu", APIKeySecretRef: &shopv1.SecretKeyRef{Name: "dd", Key: "k"}}
	o.NewRelic = shopv1.NewRelicSpec{Enabled: ptr.To(true), Region: "EU", LicenseKeySecretRef: &shopv1.SecretKeyRef{Name: "nr", Key: "k"}}
	return rendertest.Input(spec)
}

func TestUnbuildableSections(t *testing.T) {
	in := allOn(shopv1.Production)
	p := newPlan(in)
	gw, sampler := gatewayConfig(in, p), samplerConfig(in, p)

	for _, cfg := range []map[string]any{gw, sampler} {
		var dd datadogExporterDoc
		strictDecode(t, cfg["exporters"].(map[string]any)["datadog"], &dd)
		if dd.API.Key != "${env:DD_API_KEY}" {
			t.Errorf("datadog api.key = %q, want it from the environment", dd.API.Key)
		}
		if dd.API.Site != "datadoghq.eu" {
			t.Errorf("datadog api.site = %q, want the Shop's site", dd.API.Site)
		}
	}
	// The connector is used with its defaults: an empty section.
	if conn := gw["connectors"].(map[string]any)[datadogConn]; len(conn.(map[string]any)) != 0 {
		t.Errorf("datadog connector section = %v, want {}", conn)
	}

	var lb loadBalancingDoc
	strictDecode(t, gw["exporters"].(map[string]any)[loadBalancing], &lb)
	if lb.RoutingKey != "traceID" {
		t.Errorf("load_balancing routing_key = %q, want traceID (whole traces on one sampler)", lb.RoutingKey)
	}
	if lb.Resolver.DNS == nil || lb.Resolver.Static != nil || lb.Resolver.K8s != nil {
		t.Fatalf("load_balancing resolver = %+v, want exactly the DNS resolver", lb.Resolver)
	}
	if want := "demo-sampler-collector-headless.shop"; lb.Resolver.DNS.Hostname != want || lb.Resolver.DNS.Port != "4317" {
		t.Errorf("load_balancing DNS resolver = %+v, want %s:4317 (the sampler's headless Service)", *lb.Resolver.DNS, want)
	}
	if lb.Protocol.OTLP == nil {
		t.Error("load_balancing protocol.otlp is missing")
	}
}

// TestPipelineOrder pins the processor order and where the connectors sit.
func TestPipelineOrder(t *testing.T) {
	in := allOn(shopv1.Production)
	p := newPlan(in)
	pipelines := func(cfg map[string]any) map[string]any {
		return cfg["service"].(map[string]any)["pipelines"].(map[string]any)
	}
	list := func(pl map[string]any, name, key string) []string {
		return pl[name].(map[string]any)[key].([]string)
	}
	gw := pipelines(gatewayConfig(in, p))
	want := []string{memoryLimiter, redact, k8sAttributes, resourceProc, batch}
	for _, sig := range []string{"traces", "logs"} {
		if got := list(gw, sig, "processors"); !slices.Equal(got, want) {
			t.Errorf("%s processors = %v, want %v", sig, got, want)
		}
	}
	if got := list(gw, "traces", "exporters"); !slices.Equal(got, []string{spanMetrics, datadogConn, loadBalancing}) {
		t.Errorf("gateway trace exporters = %v: the connectors must see every span, sampled traces go to the sampler", got)
	}
	if got := list(gw, "metrics", "processors"); !slices.Equal(got, []string{memoryLimiter, k8sAttributes, resourceProc, cardinality, batch}) {
		t.Errorf("metrics processors = %v: the cardinality guard goes after k8s_attributes, before batch", got)
	}
	if got := list(gw, "metrics", "receivers"); !slices.Equal(got, []string{otlpReceiver, spanMetrics, datadogConn}) {
		t.Errorf("metrics receivers = %v, want OTLP and both connectors", got)
	}
	s := pipelines(samplerConfig(in, p))
	if got := list(s, "traces", "processors"); !slices.Equal(got, []string{memoryLimiter, tailSampling, batch}) {
		t.Errorf("sampler processors = %v", got)
	}
	if got := list(s, "traces", "exporters"); !slices.Equal(got, []string{jaegerExp, datadogExp, newRelicExp}) {
		t.Errorf("sampler exporters = %v", got)
	}
	policies := samplerConfig(in, p)["processors"].(map[string]any)[tailSampling].(map[string]any)["policies"].([]any)
	if first := policies[0].(map[string]any); first["name"] != "drop-probes" || first["type"] != "drop" {
		t.Errorf("first tail sampling policy = %v, want the drop-probes policy", first)
	}
}

// TestRedactionPatterns runs the patterns with Go's regexp, which is the
// engine OTTL's replace_pattern uses (RE2 syntax).
func TestRedactionPatterns(t *testing.T) {
	redact := func(s string) string {
		for _, p := range redactionPatterns {
			s = regexp.MustCompile(p.re).ReplaceAllString(s, redactedValue)
		}
		return s
	}
	for _, secret := range []string{
		"4242424242424242", "4111 1111 1111 1111", "5555-5555-5555-4444", "378282246310005", "3782 822463 10005",
		"jane.doe+shop@example.co.uk",
		"Bearer abc.DEF-123_~+/=", "bearer opaque-token",
		"eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl",
	} {
		got := redact("value: " + secret + " end")
		if strings.Contains(got, secret) || !strings.Contains(got, redactedValue) {
			t.Errorf("redacting %q gave %q", secret, got)
		}
	}
	for _, keep := range []string{
		"order 42 total 19.99 EUR", "2026-11-25T18:30:54Z", "0f8fad5b-d9cb-469f-a165-70867728950e",
		"GET /api/catalog/products?page=2", "sku-1234-5678", "+1 555 555 5555", "4bf92f3577b34da6a3ce929d0e0e4736",
	} {
		if got := redact(keep); got != keep {
			t.Errorf("redacting %q changed it to %q", keep, got)
		}
	}
	// No '$' (the collector would expand it) and no backslash (OTTL escapes).
	for _, p := range redactionPatterns {
		if strings.ContainsAny(p.re, `$\`) {
			t.Errorf("pattern for %s contains $ or a backslash: %s", p.what, p.re)
		}
	}
}
