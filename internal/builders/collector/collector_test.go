package collector_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/builders/collector"
	"github.com/shopplatform/shop-operator/internal/buildertest"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
	"github.com/shopplatform/shop-operator/internal/testenv"
)

func TestMain(m *testing.M) { buildertest.Main(m, testenv.Options{ThirdPartyCRDs: true}) }

// exporters are the four switchable exporters, by the name SecretRefs uses.
var exporters = []string{"jaeger", "loki", "datadog", "newrelic"}

// withExporters returns the spec of env with the named exporters on and the
// others off. Production has no deployed backends: Jaeger and Loki are
// External there.
func withExporters(e shopv1.Environment, on ...string) shopv1.ShopSpec {
	spec := shopv1.ShopSpec{Environment: e}
	o := &spec.Observability
	is := func(name string) *bool { return ptr.To(slices.Contains(on, name)) }
	o.Jaeger.Enabled, o.Loki.Enabled = is("jaeger"), is("loki")
	if e == shopv1.Production {
		o.Jaeger.Mode, o.Jaeger.Endpoint = shopv1.BackendExternal, "jaeger-collector.tracing:4317"
		o.Loki.Mode, o.Loki.Endpoint = shopv1.BackendExternal, "http://loki-gateway.logging/otlp"
	}
	o.Datadog = shopv1.DatadogSpec{Enabled: is("datadog"), Site: "datadoghq.eu",
		APIKeySecretRef: &shopv1.SecretKeyRef{Name: "datadog", Key: "api-key"}}
	o.NewRelic = shopv1.NewRelicSpec{Enabled: is("newrelic"), Region: "EU",
		LicenseKeySecretRef: &shopv1.SecretKeyRef{Name: "newrelic", Key: "license-key"}}
	return spec
}

// variants are the Shops the golden, validate and apply tests render.
func variants() []buildertest.Variant {
	variant := func(name string, spec shopv1.ShopSpec) buildertest.Variant {
		return buildertest.Variant{Name: name, Input: rendertest.Input(spec)}
	}
	var vs []buildertest.Variant
	for _, e := range rendertest.Environments {
		vs = append(vs,
			variant(string(e), shopv1.ShopSpec{Environment: e}),
			variant(string(e)+"-all-exporters", withExporters(e, exporters...)),
			variant(string(e)+"-no-exporters", withExporters(e)),
		)
	}
	// Tail sampling with a single trace exporter; and a development Shop
	// keeping traces in Badger.
	vs = append(vs, variant("production-jaeger-only", withExporters(shopv1.Production, "jaeger")))
	badger := withExporters(shopv1.Development, "jaeger", "loki")
	badger.Observability.Jaeger.Storage = "badger"
	vs = append(vs, variant("development-badger", badger))
	return vs
}

// renderObjects builds spec's objects and stamps them as the engine does.
func renderObjects(t *testing.T, spec shopv1.ShopSpec) []*unstructured.Unstructured {
	t.Helper()
	return renderFor(t, rendertest.Input(spec))
}

func renderFor(t *testing.T, in render.Input) []*unstructured.Unstructured {
	t.Helper()
	return buildertest.Build(t, collector.Build, in)
}

func TestGolden(t *testing.T) { buildertest.Golden(t, variants(), collector.Build) }

// TestApply server-side applies (dry run, strict field validation) every
// variant's objects to a real API server with the real
// OpenTelemetryCollector CRD.
func TestApply(t *testing.T) { buildertest.ApplyDryRun(t, "collector", variants(), collector.Build) }

// flatten lists an object's leaves as "Kind/name:path=value" lines; a list
// element that is an object is one line with its JSON, so that an env entry
// or a pipeline member is kept or removed as a whole.
func flatten(objs []*unstructured.Unstructured) map[string]bool {
	out := map[string]bool{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				walk(prefix+"."+k, x)
			}
		case []any:
			for _, x := range v {
				b, _ := json.Marshal(x)
				out[prefix+"[]="+string(b)] = true
			}
		default:
			out[fmt.Sprintf("%s=%v", prefix, v)] = true
		}
	}
	for _, u := range objs {
		walk(u.GetKind()+"/"+u.GetName()+":", u.Object)
	}
	return out
}

// TestSwitchingAnExporterOffRemovesExactlyItsParts compares every line of
// the rendered objects with all exporters on and with one switched off:
// nothing appears, and everything that goes names that exporter.
func TestSwitchingAnExporterOffRemovesExactlyItsParts(t *testing.T) {
	markers := map[string][]string{
		"jaeger":   {"jaeger"},
		"loki":     {"loki"},
		"datadog":  {"datadog", "DD_API_KEY"},
		"newrelic": {"newrelic", "NEW_RELIC_LICENSE_KEY"},
	}
	for _, e := range rendertest.Environments {
		all := flatten(renderObjects(t, withExporters(e, exporters...)))
		for _, off := range exporters {
			t.Run(string(e)+"/"+off, func(t *testing.T) {
				var rest []string
				for _, x := range exporters {
					if x != off {
						rest = append(rest, x)
					}
				}
				some := flatten(renderObjects(t, withExporters(e, rest...)))
				removed := 0
				for line := range all {
					if some[line] {
						continue
					}
					removed++
					if !slices.ContainsFunc(markers[off], func(m string) bool { return strings.Contains(line, m) }) {
						t.Errorf("switching %s off also removed: %s", off, line)
					}
				}
				for line := range some {
					if !all[line] {
						t.Errorf("switching %s off added: %s", off, line)
					}
				}
				if removed == 0 {
					t.Errorf("switching %s off removed nothing", off)
				}
			})
		}
	}
}

func TestSecretRefs(t *testing.T) {
	in := rendertest.Input(withExporters(shopv1.Production, exporters...))
	want := []render.SecretRef{
		{Name: "datadog", Keys: []string{"api-key"}, For: render.Exporter("datadog")},
		{Name: "newrelic", Keys: []string{"license-key"}, For: render.Exporter("newrelic")},
	}
	if got := collector.SecretRefs(in); !reflect.DeepEqual(got, want) {
		t.Errorf("SecretRefs = %v, want %v", got, want)
	}
	// Every referenced key reaches the collectors only through env.
	for _, u := range renderFor(t, in) {
		if u.GetKind() != "OpenTelemetryCollector" {
			continue
		}
		env, _, _ := unstructured.NestedSlice(u.Object, "spec", "env")
		b, _ := json.Marshal(env)
		for _, ref := range want {
			if !strings.Contains(string(b), `"key":"`+ref.Keys[0]+`","name":"`+ref.Name+`"`) {
				t.Errorf("%s: env %s lacks the Secret key %s/%s", u.GetName(), b, ref.Name, ref.Keys[0])
			}
		}
	}
	if got := collector.SecretRefs(rendertest.Input(withExporters(shopv1.Production, "jaeger"))); len(got) != 0 {
		t.Errorf("SecretRefs without Datadog and New Relic = %v, want none", got)
	}
	noOperator := rendertest.InputFor(rendertest.Shop(withExporters(shopv1.Production, exporters...)), render.APIs{})
	if got := collector.SecretRefs(noOperator); len(got) != 0 {
		t.Errorf("SecretRefs without the opentelemetry-operator = %v, want none (no collector is rendered)", got)
	}
}

// TestGating: the collector needs the opentelemetry-operator and
// collector.enabled; the backends only their own switches.
func TestGating(t *testing.T) {
	kinds := func(in render.Input) []string {
		var ks []string
		for _, u := range renderFor(t, in) {
			ks = append(ks, u.GetKind()+"/"+u.GetName())
		}
		return ks
	}
	dev := rendertest.Shop(shopv1.ShopSpec{Environment: shopv1.Development})
	if ks := kinds(rendertest.InputFor(dev, render.APIs{})); slices.ContainsFunc(ks, func(k string) bool {
		return strings.HasPrefix(k, "OpenTelemetryCollector/")
	}) || !slices.Contains(ks, "Deployment/demo-jaeger") {
		t.Errorf("without the operator: %v, want the backends and no collector", ks)
	}
	off := withExporters(shopv1.Development)
	off.Observability.Collector.Enabled = ptr.To(false)
	if ks := kinds(rendertest.Input(off)); len(ks) != 0 {
		t.Errorf("collector and backends off: %v, want nothing", ks)
	}
	for _, e := range rendertest.Environments {
		var collectors []string
		for _, u := range renderObjects(t, withExporters(e, exporters...)) {
			if u.GetKind() == "OpenTelemetryCollector" {
				collectors = append(collectors, u.GetName())
			}
		}
		want := []string{"demo"}
		if e == shopv1.Production {
			want = append(want, "demo-sampler")
		}
		if !slices.Equal(collectors, want) {
			t.Errorf("%s collectors = %v, want %v", e, collectors, want)
		}
	}
}

func TestExporters(t *testing.T) {
	summary := func(in render.Input) string {
		var parts []string
		for _, e := range collector.Exporters(in) {
			s := fmt.Sprintf("%s:%s", e.Name, e.Reason)
			if e.Secret != nil {
				s += "(" + e.Secret.Name + "/" + strings.Join(e.Secret.Keys, ",") + ")"
			}
			parts = append(parts, s)
		}
		return strings.Join(parts, " ")
	}
	all := withExporters(shopv1.Production, exporters...)
	for _, tc := range []struct {
		name string
		in   render.Input
		want string
	}{
		{"all on", rendertest.Input(all),
			"jaeger:Configured loki:Configured datadog:Configured(datadog/api-key) newrelic:Configured(newrelic/license-key)"},
		{"some on", rendertest.Input(withExporters(shopv1.Production, "loki", "datadog")),
			"jaeger:Disabled loki:Configured datadog:Configured(datadog/api-key) newrelic:Disabled"},
		{"no operator", rendertest.InputFor(rendertest.Shop(all), render.APIs{}),
			"jaeger:OpenTelemetryOperatorMissing loki:OpenTelemetryOperatorMissing datadog:OpenTelemetryOperatorMissing newrelic:OpenTelemetryOperatorMissing"},
	} {
		if got := summary(tc.in); got != tc.want {
			t.Errorf("%s: Exporters = %s, want %s", tc.name, got, tc.want)
		}
	}
	off := all.DeepCopy()
	off.Observability.Collector.Enabled = ptr.To(false)
	for _, e := range collector.Exporters(rendertest.Input(*off)) {
		if e.Reason != "CollectorDisabled" || e.Rendered {
			t.Errorf("collector off: %+v, want CollectorDisabled", e)
		}
	}
	// Every rendered exporter names where it sends.
	for _, e := range collector.Exporters(rendertest.Input(all)) {
		if !strings.Contains(e.Message, ".") {
			t.Errorf("%s: message %q names no endpoint", e.Name, e.Message)
		}
	}
}

func BenchmarkBuild(b *testing.B) {
	in := rendertest.Input(withExporters(shopv1.Production, exporters...))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := collector.Build(in); err != nil {
			b.Fatal(err)
		}
	}
}
