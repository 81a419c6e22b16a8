package monitoring_test

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/builders/monitoring"
	"github.com/shopplatform/shop-operator/internal/buildertest"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
	"github.com/shopplatform/shop-operator/internal/testenv"
)

func TestMain(m *testing.M) { buildertest.Main(m, testenv.Options{ThirdPartyCRDs: true}) }

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
func variants() []buildertest.Variant {
	out := buildertest.Environments()
	for _, e := range rendertest.Environments {
		out = append(out, buildertest.Variant{Name: string(e) + "-receivers", Input: rendertest.Input(everyReceiver(e))})
	}
	return out
}

func build(t testing.TB, in render.Input) []*unstructured.Unstructured {
	t.Helper()
	return buildertest.Build(t, monitoring.Build, in)
}

func TestGolden(t *testing.T) { buildertest.Golden(t, variants(), monitoring.Build) }

// TestApply server-side applies (dry run) every object on a real API server
// with the real prometheus-operator CRDs, for every variant.
func TestApply(t *testing.T) { buildertest.ApplyDryRun(t, "monitoring", variants(), monitoring.Build) }
