package monitoring_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/builders/monitoring"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
	"github.com/shopplatform/shop-operator/internal/scheme"
	"github.com/shopplatform/shop-operator/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	code := func() int {
		var err error
		env, err = testenv.Start(testenv.Options{ThirdPartyCRDs: true})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer func() { _ = env.Stop() }()
		return m.Run()
	}()
	os.Exit(code)
}

// everyReceiver is a Shop of env with receivers of every kind and selector labels.
func everyReceiver(e shopv1.Environment) shopv1.ShopSpec {
	ref := func(name, key string) shopv1.SecretKeyRef { return shopv1.SecretKeyRef{Name: name, Key: key} }
	return shopv1.ShopSpec{
		Environment: e,
		Observability: shopv1.ObservabilitySpec{
			Prometheus: shopv1.PrometheusSpec{SelectorLabels: map[string]string{"release": "kube-prometheus-stack"}},
			Alerting: shopv1.AlertingSpec{
				Routing: new(true),
				Receivers: []shopv1.Receiver{
					{Name: "pager", Severity: "critical", PagerDuty: &shopv1.PagerDutyReceiver{RoutingKeySecretRef: ref("alerting", "pagerduty-key")}},
					{Name: "slack", Severity: "warning", Slack: &shopv1.SlackReceiver{Channel: "#shop-alerts", APIURLSecretRef: ref("alerting", "slack-url")}},
					{Name: "mail", Email: &shopv1.EmailReceiver{To: "oncall@example.com", Smarthost: "smtp.example.com:587", AuthPasswordSecretRef: &shopv1.SecretKeyRef{Name: "alerting", Key: "smtp-password"}}},
					{Name: "hook", Webhook: &shopv1.WebhookReceiver{URLSecretRef: ref("alerting", "webhook-url")}},
				},
			},
		},
	}
}

// variants are the Shops every test renders: each environment as profiled,
// and each with every kind of receiver.
func variants() map[string]render.Input {
	out := map[string]render.Input{}
	for _, e := range rendertest.Environments {
		out[string(e)] = rendertest.Input(shopv1.ShopSpec{Environment: e})
		out[string(e)+"-receivers"] = rendertest.Input(everyReceiver(e))
	}
	return out
}

func build(t testing.TB, in render.Input) []*unstructured.Unstructured {
	t.Helper()
	objs, err := monitoring.Build(in)
	if err != nil {
		t.Fatal(err)
	}
	var out []*unstructured.Unstructured
	for _, o := range objs {
		out = append(out, toUnstructured(t, o))
	}
	return out
}

func toUnstructured(t testing.TB, o client.Object) *unstructured.Unstructured {
	t.Helper()
	gvk, err := apiutil.GVKForObject(o, scheme.Scheme)
	if err != nil {
		t.Fatal(err)
	}
	o.GetObjectKind().SetGroupVersionKind(gvk)
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{Object: m}
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	return u
}

// TestApply server-side applies (dry run) every object on a real API server
// with the real prometheus-operator CRDs, for every variant.
func TestApply(t *testing.T) {
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}
	if err := env.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	for name, in := range variants() {
		t.Run(name, func(t *testing.T) {
			objs := build(t, in)
			if len(objs) == 0 {
				t.Fatal("nothing rendered")
			}
			for _, u := range objs {
				if err := env.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(render.ManagedBy), client.ForceOwnership, client.DryRunAll); err != nil {
					t.Errorf("%s %s: %v", u.GetKind(), u.GetName(), err)
				}
			}
		})
	}
}
