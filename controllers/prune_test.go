package controllers

import (
	"fmt"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/engine"
	"github.com/shopplatform/shop-operator/internal/render"
)

// everyKind is a spec whose children are of every kind prune looks at:
// production (autoscalers, disruption budgets, backups), a deployed Jaeger
// with a volume, and alert routing.
var everyKind = shopv1.ShopSpec{
	Environment: shopv1.Production,
	Observability: shopv1.ObservabilitySpec{
		Jaeger: shopv1.JaegerSpec{Enabled: ptr.To(true), Mode: shopv1.BackendDeploy, Storage: "badger"},
		Alerting: shopv1.AlertingSpec{Receivers: []shopv1.Receiver{
			{Name: "hook", Webhook: &shopv1.WebhookReceiver{URLSecretRef: shopv1.SecretKeyRef{Name: "hook", Key: "url"}}},
		}},
	},
}

// TestEveryOwnedKindIsPruned gives a Shop one child it does not want of
// every kind prune looks at (a copy of a child of a model Shop with every
// kind), and sees the operator delete each: prune works for every kind,
// and the delete verbs of its role are used.
func TestEveryOwnedKindIsPruned(t *testing.T) {
	ns := namespace(t)
	if err := k8s.Create(ctx, newShop(ns, "model", everyKind)); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Create(ctx, newShop(ns, "stray", shopv1.ShopSpec{})); err != nil {
		t.Fatal(err)
	}
	shop := waitCondition(t, ns, "stray", shopv1.ConditionDependenciesAvailable, metav1.ConditionTrue)
	owner := metav1.NewControllerRef(shop, shopv1.GroupVersion.WithKind("Shop"))

	var kinds []schema.GroupVersionKind
	kinds = append(kinds, baseKinds...)
	for _, api := range engine.OptionalAPIs {
		kinds = append(kinds, api.Kinds...)
	}
	var strays []*unstructured.Unstructured
	for _, gvk := range kinds {
		var model *unstructured.Unstructured
		eventually(t, "a "+gvk.Kind+" of the model Shop", func() (bool, string) {
			model = renderedChild(t, ns, "model", gvk)
			return model != nil, "none yet"
		})
		stray := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": model.GetAPIVersion(), "kind": model.GetKind(), "spec": model.Object["spec"],
		}}
		for _, k := range []string{"rules", "roleRef", "subjects", "data"} { // kinds without a spec
			if v, ok := model.Object[k]; ok {
				stray.Object[k] = v
			}
		}
		// Fields the API server allocates, which a copy must not carry.
		unstructured.RemoveNestedField(stray.Object, "spec", "clusterIP")
		unstructured.RemoveNestedField(stray.Object, "spec", "clusterIPs")
		unstructured.RemoveNestedField(stray.Object, "spec", "volumeName")
		stray.SetNamespace(ns)
		stray.SetName("stray-" + strings.ToLower(gvk.Kind))
		stray.SetLabels(map[string]string{render.LabelShop: "stray", render.LabelManagedBy: render.ManagedBy})
		stray.SetOwnerReferences([]metav1.OwnerReference{*owner})
		if err := k8s.Create(ctx, stray); err != nil {
			t.Fatalf("creating a stray %s: %v", gvk.Kind, err)
		}
		strays = append(strays, stray)
	}
	update(t, ns, "stray", func(s *shopv1.Shop) {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations["test/poke"] = "1"
	})
	for _, stray := range strays {
		eventually(t, "the stray "+stray.GetKind()+" pruned", func() (bool, string) {
			got := &unstructured.Unstructured{}
			got.SetGroupVersionKind(stray.GroupVersionKind())
			err := k8s.Get(ctx, client.ObjectKeyFromObject(stray), got)
			// A PersistentVolumeClaim keeps its protection finalizer: there
			// is no kube-controller-manager to remove it.
			return apierrors.IsNotFound(err) || (err == nil && got.GetDeletionTimestamp() != nil), fmt.Sprint(err)
		})
	}
	// The children the Shop wants are still there.
	mustGet(t, &unstructured.Unstructured{Object: map[string]any{"apiVersion": "apps/v1", "kind": "Deployment"}}, ns, "stray-frontend")
}

// renderedChild returns a child of kind gvk that the operator applied for
// the Shop ns/shop and that the Shop controls, or nil.
func renderedChild(t *testing.T, ns, shop string, gvk schema.GroupVersionKind) *unstructured.Unstructured {
	t.Helper()
	list := &unstructured.UnstructuredList{}
	list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
	if err := k8s.List(ctx, list, client.InNamespace(ns), client.MatchingLabels{render.LabelShop: shop, render.LabelManagedBy: render.ManagedBy}); err != nil {
		t.Fatal(err)
	}
	for i := range list.Items {
		if ref := metav1.GetControllerOf(&list.Items[i]); ref != nil && ref.Kind == "Shop" {
			return &list.Items[i]
		}
	}
	return nil
}
