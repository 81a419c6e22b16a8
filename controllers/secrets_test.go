package controllers

import (
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/render"
)

// TestSecretsStayOutOfEverythingElse gives a Shop an external database, two
// exporters and an alert receiver, all with canary secret values, and then
// looks for those values, and for the passwords and keys the operator
// generated, in every child that is not a Secret, in the Shop's status, in
// the events and in every line the operator logged.
func TestSecretsStayOutOfEverythingElse(t *testing.T) {
	ns := namespace(t)
	canaries := map[string]string{
		"orders-pg": "canary-db-password-5f0e", "dd": "canary-datadog-key-91ab",
		"nr": "canary-newrelic-key-77c2", "slack": "https://hooks.example/canary-slack-3d1f",
	}
	for name, value := range canaries {
		data := map[string]string{"key": value}
		if name == "orders-pg" {
			data = map[string]string{"host": "pg.example", "port": "5432", "dbname": "orders", "user": "orders", "password": value}
		}
		sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: data}
		if err := k8s.Create(ctx, sec); err != nil {
			t.Fatal(err)
		}
	}
	ref := func(n string) *shopv1.SecretKeyRef { return &shopv1.SecretKeyRef{Name: n, Key: "key"} }
	spec := shopv1.ShopSpec{
		Environment: shopv1.Testing,
		Databases:   shopv1.Databases{Orders: shopv1.DatabaseSpec{External: &shopv1.ExternalDatabase{SecretName: "orders-pg"}}},
		Observability: shopv1.ObservabilitySpec{
			Datadog:  shopv1.DatadogSpec{Enabled: ptr.To(true), APIKeySecretRef: ref("dd")},
			NewRelic: shopv1.NewRelicSpec{Enabled: ptr.To(true), LicenseKeySecretRef: ref("nr")},
			Alerting: shopv1.AlertingSpec{Receivers: []shopv1.Receiver{
				{Name: "chat", Slack: &shopv1.SlackReceiver{Channel: "#shop", APIURLSecretRef: *ref("slack")}},
			}},
		},
	}
	if err := k8s.Create(ctx, newShop(ns, "vault", spec)); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, ns, "vault", shopv1.ConditionReferencesResolved, metav1.ConditionTrue)
	waitCondition(t, ns, "vault", "DatadogReady", metav1.ConditionTrue)
	markWorkloadsReady(t, ns, "vault")
	shop := waitCondition(t, ns, "vault", shopv1.ConditionReady, metav1.ConditionTrue)

	// The values the operator generated are secrets too.
	secrets := &corev1.SecretList{}
	if err := k8s.List(ctx, secrets, client.InNamespace(ns), client.MatchingLabels{render.LabelShop: "vault"}); err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets.Items {
		for k, v := range s.Data {
			if len(v) >= 16 && k != "host" && k != "port" && k != "dbname" && k != "user" && k != "sslmode" {
				canaries[s.Name+"/"+k] = string(v)
			}
		}
	}
	if len(canaries) < 8 {
		t.Fatalf("only %d secret values to look for: the generated Secrets are missing", len(canaries))
	}

	places := map[string]string{}
	status, _ := json.Marshal(shop.Status)
	places["the Shop's status"] = string(status)
	events := &eventsv1.EventList{}
	if err := k8s.List(ctx, events, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	evs, _ := json.Marshal(events.Items)
	places["events"] = string(evs)
	places["the operator's log"] = operatorLog.String()
	kinds := append(append([]string{}, kindsOf(baseKinds)...),
		"networking.istio.io/v1/Gateway", "networking.istio.io/v1/VirtualService", "monitoring.coreos.com/v1/PrometheusRule",
		"monitoring.coreos.com/v1/ServiceMonitor", "monitoring.coreos.com/v1alpha1/AlertmanagerConfig", "opentelemetry.io/v1beta1/OpenTelemetryCollector")
	children := 0
	for _, k := range kinds {
		list := &unstructured.UnstructuredList{}
		i := strings.LastIndex(k, "/")
		list.SetAPIVersion(k[:i])
		list.SetKind(k[i+1:] + "List")
		if err := k8s.List(ctx, list, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		for _, item := range list.Items {
			data, _ := json.Marshal(item.Object)
			places[item.GetKind()+"/"+item.GetName()] = string(data)
			children++
		}
	}
	if children < 40 {
		t.Fatalf("only %d children looked at", children)
	}
	for where, text := range places {
		for name, value := range canaries {
			if strings.Contains(text, value) {
				t.Errorf("the value of %s appears in %s", name, where)
			}
		}
	}
	t.Logf("looked for %d secret values in %d places (%d children, %d log bytes)", len(canaries), len(places), children, len(places["the operator's log"]))
}

func kindsOf(gvks []schema.GroupVersionKind) []string {
	var out []string
	for _, g := range gvks {
		out = append(out, g.GroupVersion().String()+"/"+g.Kind)
	}
	return out
}
