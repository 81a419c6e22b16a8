package controllers

// This file runs last (go runs test files in name order): it installs the
// third-party CRDs into the suite's API server, which changes what every
// later Shop renders.

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	k8snetworkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/testenv"
)

// TestOptionalAPIsAppearLater starts a Shop on a cluster without Istio,
// prometheus-operator or opentelemetry-operator, then installs their CRDs:
// the Shop reports what is missing without failing, then picks them up.
func TestOptionalAPIsAppearLater(t *testing.T) {
	ns := namespace(t)
	if err := k8s.Create(ctx, newShop(ns, "opt", shopv1.ShopSpec{})); err != nil {
		t.Fatal(err)
	}
	s := waitCondition(t, ns, "opt", shopv1.ConditionDependenciesAvailable, metav1.ConditionFalse)
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
	mustGet(t, &k8snetworkingv1.NetworkPolicy{}, ns, "opt-payment")

	if _, err := envtest.InstallCRDs(testCfg, envtest.CRDInstallOptions{
		Paths: []string{filepath.Join(testenv.RepoRoot(), "test", "crds")}, ErrorIfPathMissing: true,
	}); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, ns, "opt", shopv1.ConditionDependenciesAvailable, metav1.ConditionTrue)
	waitCondition(t, ns, "opt", shopv1.ConditionMeshReady, metav1.ConditionTrue)
	mustGet(t, &networkingv1.Gateway{}, ns, "opt")
	mustGet(t, &monitoringv1.ServiceMonitor{}, ns, "opt-frontend")
	collector := &unstructured.Unstructured{}
	collector.SetAPIVersion("opentelemetry.io/v1beta1")
	collector.SetKind("OpenTelemetryCollector")
	mustGet(t, collector, ns, "opt")

	// Drift on a kind found after start-up is repaired too: it is watched.
	vs := &networkingv1.VirtualService{}
	mustGet(t, vs, ns, "opt")
	uid := vs.UID
	if err := k8s.Delete(ctx, vs); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the VirtualService recreated", func() (bool, string) {
		err := get(t, vs, ns, "opt")
		if apierrors.IsNotFound(err) {
			return false, "not found"
		}
		return err == nil && vs.UID != uid, fmt.Sprint(err)
	})
}
