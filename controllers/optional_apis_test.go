package controllers

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	corev1 "k8s.io/api/core/v1"
	k8snetworkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/testenv"
)

// TestOptionalAPIsAppearLater starts a Shop on a cluster without Istio,
// prometheus-operator or opentelemetry-operator, then installs their CRDs:
// the Shop reports what is missing without failing, then picks them up.
// The suite's API server has those CRDs from the start, so this test starts
// an API server and an operator of its own.
func TestOptionalAPIsAppearLater(t *testing.T) {
	env, err := testenv.Start(testenv.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	// The suite's operator runs in this process too: the controller name is
	// taken.
	stop, err := startOperator(env, ctrl.Options{Controller: config.Controller{SkipNameValidation: ptr.To(true)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	c := cluster{env.Client}

	ns := c.namespace(t)
	if err := c.k8s.Create(ctx, newShop(ns, "opt", shopv1.ShopSpec{})); err != nil {
		t.Fatal(err)
	}
	s := c.waitCondition(t, ns, "opt", shopv1.ConditionDependenciesAvailable, metav1.ConditionFalse)
	_, _, msg := condition(s, shopv1.ConditionDependenciesAvailable)
	for _, want := range []string{"Istio", "prometheus-operator", "opentelemetry-operator"} {
		if !strings.Contains(msg, want) {
			t.Errorf("DependenciesAvailable message %q does not name %s", msg, want)
		}
	}
	if st, reason, _ := condition(s, shopv1.ConditionMeshReady); st != metav1.ConditionFalse || reason == "" {
		t.Errorf("MeshReady = %s (%s) without Istio, want False with a reason", st, reason)
	}
	// Without Istio, NetworkPolicies say who may call whom.
	c.mustGet(t, &k8snetworkingv1.NetworkPolicy{}, ns, "opt-payment")

	if _, err := envtest.InstallCRDs(env.Config, envtest.CRDInstallOptions{
		Paths: []string{filepath.Join(testenv.RepoRoot(), "test", "crds")}, ErrorIfPathMissing: true,
	}); err != nil {
		t.Fatal(err)
	}
	c.waitCondition(t, ns, "opt", shopv1.ConditionDependenciesAvailable, metav1.ConditionTrue)
	c.waitCondition(t, ns, "opt", shopv1.ConditionMeshReady, metav1.ConditionTrue)
	c.mustGet(t, &networkingv1.Gateway{}, ns, "opt")
	c.mustGet(t, &monitoringv1.ServiceMonitor{}, ns, "opt-frontend")
	collector := &unstructured.Unstructured{}
	collector.SetAPIVersion("opentelemetry.io/v1beta1")
	collector.SetKind("OpenTelemetryCollector")
	c.mustGet(t, collector, ns, "opt")

	// Drift on a kind found after start-up is repaired too: it is watched.
	vs := &networkingv1.VirtualService{}
	c.mustGet(t, vs, ns, "opt")
	uid := vs.UID
	if err := c.k8s.Delete(ctx, vs); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the VirtualService recreated", func() (bool, string) {
		err := c.get(t, vs, ns, "opt")
		if apierrors.IsNotFound(err) {
			return false, "not found"
		}
		return err == nil && vs.UID != uid, fmt.Sprint(err)
	})
}

// TestMissingExporterSecret switches Datadog on with a Secret that does not
// exist yet: its condition says so, the collector runs without it, and the
// Shop is still Ready; once the Secret appears, the exporter is added.
func TestMissingExporterSecret(t *testing.T) {
	ns := namespace(t)
	spec := shopv1.ShopSpec{Observability: shopv1.ObservabilitySpec{Datadog: shopv1.DatadogSpec{
		Enabled: ptr.To(true), APIKeySecretRef: &shopv1.SecretKeyRef{Name: "dd", Key: "api-key"},
	}}}
	if err := k8s.Create(ctx, newShop(ns, "dd", spec)); err != nil {
		t.Fatal(err)
	}
	s := waitCondition(t, ns, "dd", "DatadogReady", metav1.ConditionFalse)
	if _, reason, msg := condition(s, "DatadogReady"); reason != "SecretMissing" || !strings.Contains(msg, `Secret "dd" not found`) {
		t.Errorf("DatadogReady = %s: %s, want SecretMissing naming the Secret", reason, msg)
	}
	collectorConfig := func() string {
		u := &unstructured.Unstructured{}
		u.SetAPIVersion("opentelemetry.io/v1beta1")
		u.SetKind("OpenTelemetryCollector")
		mustGet(t, u, ns, "dd")
		cfg, _, _ := unstructured.NestedMap(u.Object, "spec", "config")
		return fmt.Sprint(cfg)
	}
	if strings.Contains(collectorConfig(), "datadog") {
		t.Error("the collector exports to Datadog without its API key")
	}
	markWorkloadsReady(t, ns, "dd")
	waitCondition(t, ns, "dd", shopv1.ConditionReady, metav1.ConditionTrue)

	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "dd"}, StringData: map[string]string{"api-key": "x"}}
	if err := k8s.Create(ctx, sec); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, ns, "dd", "DatadogReady", metav1.ConditionTrue)
	eventually(t, "the Datadog exporter added", func() (bool, string) {
		return strings.Contains(collectorConfig(), "datadog"), "no datadog in the collector config"
	})
}
