package workloads_test

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
)

// TestReapplyWritesNothing creates every object for real, then applies the
// same render again: nothing may change (no field that the API server
// defaults differently, no list it reorders), or the operator would write on
// every reconcile.
func TestReapplyWritesNothing(t *testing.T) {
	ctx := context.Background()
	for _, e := range rendertest.Environments {
		t.Run(string(e), func(t *testing.T) {
			ns := "workloads-steady-" + string(e)
			if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
				t.Fatal(err)
			}
			shop := rendertest.Shop(shopv1.ShopSpec{Environment: e})
			shop.Namespace, shop.UID = ns, ""
			if err := env.Client.Create(ctx, shop); err != nil {
				t.Fatal(err)
			}
			objs := build(t, rendertest.InputFor(shop, render.AllAPIs))
			apply := func(u *unstructured.Unstructured) string {
				u = u.DeepCopy()
				if err := env.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u),
					client.FieldOwner(render.ManagedBy), client.ForceOwnership); err != nil {
					t.Fatalf("apply %s %s: %v", u.GetKind(), u.GetName(), err)
				}
				return u.GetResourceVersion()
			}
			first := map[string]string{}
			for _, u := range objs {
				first[u.GetKind()+"/"+u.GetName()] = apply(u)
			}
			if first["ConfigMap/demo-config"] == "" {
				t.Fatal("apply did not report a resourceVersion")
			}
			for _, u := range objs {
				if rv := apply(u); rv != first[u.GetKind()+"/"+u.GetName()] {
					t.Errorf("%s %s changed on re-apply (resourceVersion %s -> %s)", u.GetKind(), u.GetName(), first[u.GetKind()+"/"+u.GetName()], rv)
				}
			}
		})
	}
}
