package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/controllers"
	"github.com/shopplatform/shop-operator/internal/localcluster"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/scheme"
	"github.com/shopplatform/shop-operator/internal/testenv"
)

// TestShopOnLocalCluster runs the operator against a real control plane with
// kube-controller-manager, scheduler and kwok's fake nodes: a Shop becomes
// Ready with every workload available, and deleting it garbage-collects
// every child.
func TestShopOnLocalCluster(t *testing.T) {
	c := localcluster.StartForTest(t, func(o *localcluster.Options) { o.Mode = localcluster.KwokNodes })
	cfg := c.RESTConfig()
	if _, err := envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{
		Paths: []string{filepath.Join(testenv.RepoRoot(), "config", "crd", "bases")}, ErrorIfPathMissing: true,
	}); err != nil {
		t.Fatal(err)
	}
	mgr, err := controllers.NewManager(cfg, ctrl.Options{
		Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	k8s, err := client.New(cfg, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shops"}}
	if err := k8s.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	shop := &shopv1.Shop{ObjectMeta: metav1.ObjectMeta{Namespace: "shops", Name: "e2e"},
		Spec: shopv1.ShopSpec{Environment: shopv1.Testing}}
	if err := k8s.Create(ctx, shop); err != nil {
		t.Fatal(err)
	}

	// Ready: every Deployment and StatefulSet available on kwok's nodes.
	waitFor(t, ctx, 3*time.Minute, "the Shop to become Ready", func() (bool, string) {
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(shop), shop); err != nil {
			return false, err.Error()
		}
		c := meta.FindStatusCondition(shop.Status.Conditions, shopv1.ConditionReady)
		if c == nil {
			return false, "no Ready condition yet"
		}
		return c.Status == metav1.ConditionTrue && c.ObservedGeneration == shop.Generation, c.Reason + ": " + c.Message
	})
	deps := &appsv1.DeploymentList{}
	if err := k8s.List(ctx, deps, client.InNamespace("shops"), client.MatchingLabels{render.LabelShop: "e2e"}); err != nil {
		t.Fatal(err)
	}
	if len(deps.Items) < len(render.Services) {
		t.Fatalf("%d Deployments, want at least %d", len(deps.Items), len(render.Services))
	}
	for _, d := range deps.Items {
		if d.Status.AvailableReplicas < 1 {
			t.Errorf("Deployment %s has no available replica", d.Name)
		}
	}
	t.Logf("Shop ready: %s components", shop.Status.ReadyComponents)

	// Deleting the Shop garbage-collects every child through owner references,
	// except what stays with the retained data (database credentials).
	if err := k8s.Delete(ctx, shop, client.PropagationPolicy(metav1.DeletePropagationForeground)); err != nil {
		t.Fatal(err)
	}
	kinds := []schema.GroupVersionKind{
		appsv1.SchemeGroupVersion.WithKind("DeploymentList"),
		appsv1.SchemeGroupVersion.WithKind("StatefulSetList"),
		corev1.SchemeGroupVersion.WithKind("ServiceList"),
		corev1.SchemeGroupVersion.WithKind("ConfigMapList"),
		corev1.SchemeGroupVersion.WithKind("SecretList"),
		corev1.SchemeGroupVersion.WithKind("ServiceAccountList"),
		corev1.SchemeGroupVersion.WithKind("PodList"),
	}
	waitFor(t, ctx, 2*time.Minute, "every child to be garbage-collected", func() (bool, string) {
		var left []string
		for _, gvk := range kinds {
			list := &metav1.PartialObjectMetadataList{}
			list.SetGroupVersionKind(gvk)
			if err := k8s.List(ctx, list, client.InNamespace("shops"), client.MatchingLabels{render.LabelShop: "e2e"}); err != nil {
				return false, err.Error()
			}
			for _, i := range list.Items {
				if i.Annotations[render.AnnotationRetain] != "true" {
					left = append(left, gvk.Kind+"/"+i.Name)
				}
			}
		}
		return len(left) == 0, fmt.Sprintf("%d left: %v", len(left), left)
	})
}

// waitFor polls cond every second until it holds, bound passes or ctx ends.
func waitFor(t *testing.T, ctx context.Context, bound time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(bound)
	last := ""
	for time.Now().Before(deadline) && ctx.Err() == nil {
		ok, msg := cond()
		if ok {
			return
		}
		last = msg
		time.Sleep(time.Second)
	}
	t.Fatalf("timed out waiting for %s; last: %s", what, last)
}
