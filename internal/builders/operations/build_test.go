package operations_test

import (
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/builders/operations"
	"github.com/shopplatform/shop-operator/internal/buildertest"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
	"github.com/shopplatform/shop-operator/internal/testenv"
)

func TestMain(m *testing.M) { buildertest.Main(m, testenv.Options{ThirdPartyCRDs: true}) }

// variants: each profile as is, and production with both turned on (a
// bounded run, an hourly check).
func variants() []buildertest.Variant {
	on := shopv1.ShopSpec{Environment: shopv1.Production}
	on.Operations.LoadGenerator = shopv1.LoadGeneratorSpec{Enabled: ptr.To(true), RequestsPerSecond: ptr.To[int32](50),
		Duration: &metav1.Duration{Duration: 30 * time.Minute}}
	on.Operations.SyntheticCheck = shopv1.SyntheticCheckSpec{Enabled: ptr.To(true), Schedule: "0 * * * *"}
	return append(buildertest.Environments(), buildertest.Variant{Name: "production-enabled", Input: rendertest.Input(on)})
}

func build(t testing.TB, in render.Input) []*unstructured.Unstructured {
	t.Helper()
	return buildertest.Build(t, operations.Build, in)
}

func TestGolden(t *testing.T) { buildertest.Golden(t, variants(), operations.Build) }

func kinds(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, u := range objs {
		out = append(out, u.GetKind()+"/"+u.GetName())
	}
	slices.Sort(out)
	return out
}

// Off in development and production, on in testing, unless the Shop says.
func TestProfiles(t *testing.T) {
	want := map[string][]string{
		"development": nil,
		"production":  nil,
		"testing":     {"CronJob/demo-synthetic", "Deployment/demo-loadgen", "ServiceAccount/demo-loadgen", "ServiceAccount/demo-synthetic"},
	}
	for _, v := range variants()[:3] {
		if got := kinds(build(t, v.Input)); !slices.Equal(got, want[v.Name]) {
			t.Errorf("%s: %v, want %v", v.Name, got, want[v.Name])
		}
	}
	// Testing, turned off by the Shop.
	off := shopv1.ShopSpec{Environment: shopv1.Testing}
	off.Operations.LoadGenerator.Enabled = ptr.To(false)
	off.Operations.SyntheticCheck.Enabled = ptr.To(false)
	if got := build(t, rendertest.Input(off)); len(got) != 0 {
		t.Errorf("testing with both off: %v", kinds(got))
	}
	// Without a collector nothing is exported: no OTLP endpoint.
	in := rendertest.InputFor(rendertest.Shop(shopv1.ShopSpec{Environment: shopv1.Testing}), render.APIs{})
	for _, u := range build(t, in) {
		if u.GetKind() == "Deployment" {
			if e := env0(t, u, "spec", "template", "spec"); e["OTEL_EXPORTER_OTLP_ENDPOINT"] != "" {
				t.Errorf("OTLP endpoint without a collector: %v", e)
			}
		}
	}
}

func env0(t *testing.T, u *unstructured.Unstructured, path ...string) map[string]string {
	t.Helper()
	cs, _, _ := unstructured.NestedSlice(u.Object, append(path, "containers")...)
	if len(cs) != 1 {
		t.Fatalf("%s: %d containers", u.GetName(), len(cs))
	}
	out := map[string]string{}
	vars, _, _ := unstructured.NestedSlice(cs[0].(map[string]any), "env")
	for _, v := range vars {
		m := v.(map[string]any)
		val, _ := m["value"].(string)
		out[m["name"].(string)] = val
	}
	return out
}

func TestEnvFromSpec(t *testing.T) {
	objs := build(t, variants()[3].Input)
	var dep, cron *unstructured.Unstructured
	for _, u := range objs {
		switch u.GetKind() {
		case "Deployment":
			dep = u
		case "CronJob":
			cron = u
		}
	}
	e := env0(t, dep, "spec", "template", "spec")
	for k, want := range map[string]string{
		"LOADGEN_RPS": "50", "LOADGEN_DURATION": "30m0s", "FRONTEND_URL": "http://demo-frontend:8080",
		"ORDERS_URL": "http://demo-orders:8080", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://demo-collector:4317",
		"OTEL_SERVICE_NAME": "loadgen", "OTEL_TRACES_SAMPLER_ARG": "0.1",
	} {
		if e[k] != want {
			t.Errorf("loadgen %s = %q, want %q", k, e[k], want)
		}
	}
	if s, _, _ := unstructured.NestedString(cron.Object, "spec", "schedule"); s != "0 * * * *" {
		t.Errorf("schedule %q", s)
	}
	c := env0(t, cron, "spec", "jobTemplate", "spec", "template", "spec")
	if c["AUTH_URL"] != "http://demo-auth:8080" || c["OTEL_SERVICE_NAME"] != "synthetic" || c["OTEL_EXPORTER_OTLP_ENDPOINT"] == "" {
		t.Errorf("synthetic env %v", c)
	}
	args, _, _ := unstructured.NestedSlice(cron.Object, "spec", "jobTemplate", "spec", "template", "spec", "containers")
	if a := args[0].(map[string]any)["args"].([]any); len(a) != 1 || a[0] != "synthetic" {
		t.Errorf("synthetic args %v", a)
	}
}

// TestApply proves the real API server accepts every object of every variant
// that renders any (development and production render nothing, see
// TestProfiles), owned by a real Shop.
func TestApply(t *testing.T) {
	rendering := slices.DeleteFunc(variants(), func(v buildertest.Variant) bool {
		return v.Name == string(shopv1.Development) || v.Name == string(shopv1.Production)
	})
	buildertest.ApplyDryRun(t, "operations", rendering, operations.Build)
}

func BenchmarkBuild(b *testing.B) {
	in := rendertest.Input(shopv1.ShopSpec{Environment: shopv1.Testing})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := operations.Build(in); err != nil {
			b.Fatal(err)
		}
	}
}
