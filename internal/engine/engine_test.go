package engine_test

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/engine"
	"github.com/shopplatform/shop-operator/internal/golden"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
)

// everything is a Shop with every optional part switched on.
func everything() shopv1.ShopSpec {
	ref := func(n string) *shopv1.SecretKeyRef { return &shopv1.SecretKeyRef{Name: n, Key: "key"} }
	return shopv1.ShopSpec{
		Environment: shopv1.Production,
		Gateway:     shopv1.GatewaySpec{Hosts: []string{"shop.example.com"}, TLSSecretName: "tls"},
		Observability: shopv1.ObservabilitySpec{
			Jaeger:   shopv1.JaegerSpec{Enabled: ptr.To(true), Mode: shopv1.BackendExternal, Endpoint: "jaeger:4317"},
			Loki:     shopv1.LokiSpec{Enabled: ptr.To(true), Mode: shopv1.BackendExternal, Endpoint: "http://loki:3100/otlp"},
			Datadog:  shopv1.DatadogSpec{Enabled: ptr.To(true), APIKeySecretRef: ref("dd")},
			NewRelic: shopv1.NewRelicSpec{Enabled: ptr.To(true), LicenseKeySecretRef: ref("nr")},
			Alerting: shopv1.AlertingSpec{Receivers: []shopv1.Receiver{
				{Name: "pager", Severity: "critical", PagerDuty: &shopv1.PagerDutyReceiver{RoutingKeySecretRef: *ref("pd")}},
				{Name: "chat", Slack: &shopv1.SlackReceiver{Channel: "#shop", APIURLSecretRef: *ref("slack")}},
			}},
		},
	}
}

func TestDesiredChildrenAreOwnedLabelledAndUnique(t *testing.T) {
	for _, env := range rendertest.Environments {
		for _, apis := range []render.APIs{{}, render.AllAPIs} {
			spec := everything()
			spec.Environment = env
			in := rendertest.InputFor(rendertest.Shop(spec), apis)
			objs, err := engine.Desired(in)
			if err != nil {
				t.Fatalf("%s: %v", env, err)
			}
			if len(objs) == 0 {
				t.Fatalf("%s: nothing rendered", env)
			}
			for _, o := range objs {
				id := engine.Key(o)
				if o.GetNamespace() != in.Shop.Namespace {
					t.Errorf("%s: %s is outside the Shop's namespace", env, id)
				}
				if !metav1.IsControlledBy(o, in.Shop) && o.GetAnnotations()[render.AnnotationRetain] != "true" {
					t.Errorf("%s: %s has no controller reference to the Shop", env, id)
				}
				if o.GetLabels()[render.LabelShop] != "demo" || o.GetLabels()[render.LabelManagedBy] != render.ManagedBy {
					t.Errorf("%s: %s lacks the Shop's labels: %v", env, id, o.GetLabels())
				}
				// Argo CD tracks applications with these; a child carrying them gets pruned.
				if _, ok := o.GetLabels()["app.kubernetes.io/instance"]; ok {
					t.Errorf("%s: %s carries app.kubernetes.io/instance", env, id)
				}
				for k := range o.GetAnnotations() {
					if strings.HasPrefix(k, "argocd.argoproj.io/") {
						t.Errorf("%s: %s carries Argo CD annotation %s", env, id, k)
					}
				}
			}
		}
	}
}

// TestDesiredIsStable renders twice and compares: the output feeds golden
// files, shopctl and the no-drift check, so it must not wobble.
func TestDesiredIsStable(t *testing.T) {
	in := rendertest.Input(everything())
	a, err := engine.Desired(in)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := engine.Desired(in)
	if string(golden.YAML(t, a)) != string(golden.YAML(t, b)) {
		t.Error("two renders of the same Shop differ")
	}
}

// BenchmarkRender measures rendering one production Shop with every optional
// API present (docs/benchmarks.md).
func BenchmarkRender(b *testing.B) {
	in := rendertest.Input(everything())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := engine.Desired(in); err != nil {
			b.Fatal(err)
		}
	}
}
