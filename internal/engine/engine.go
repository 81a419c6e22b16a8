// Package engine renders the complete desired state of a Shop. Prepare
// makes the builders' input from the Shop and the cluster's state (the
// optional APIs, the generated and the referenced Secrets); Desired runs
// every builder, then stamps each child with what all children share (owner
// reference, common labels, type metadata) and sorts them. The controller and
// shopctl both call Prepare and Desired, so what shopctl prints is what the
// operator applies.
package engine

import (
	"fmt"
	"sort"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/shopplatform/shop-operator/internal/builders/backups"
	"github.com/shopplatform/shop-operator/internal/builders/collector"
	"github.com/shopplatform/shop-operator/internal/builders/dashboards"
	"github.com/shopplatform/shop-operator/internal/builders/databases"
	"github.com/shopplatform/shop-operator/internal/builders/mesh"
	"github.com/shopplatform/shop-operator/internal/builders/monitoring"
	"github.com/shopplatform/shop-operator/internal/builders/operations"
	"github.com/shopplatform/shop-operator/internal/builders/workloads"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/scheme"
)

// Builder renders one family of children.
type Builder struct {
	Family string
	Build  func(render.Input) ([]client.Object, error)
	// SecretRefs, when set, lists the user's Secrets the family's children
	// read (not the generated ones), for Prepare to check.
	SecretRefs func(render.Input) []render.SecretRef
}

// Builders are every child family, in the order they are rendered.
var Builders = []Builder{
	{Family: "workloads", Build: workloads.Build, SecretRefs: workloads.SecretRefs},
	{Family: "databases", Build: databases.Build},
	{Family: "mesh", Build: mesh.Build},
	{Family: "collector", Build: collector.Build, SecretRefs: collector.SecretRefs},
	{Family: "monitoring", Build: monitoring.Build, SecretRefs: monitoring.SecretRefs},
	{Family: "dashboards", Build: dashboards.Build},
	{Family: "operations", Build: operations.Build},
	{Family: "backups", Build: backups.Build, SecretRefs: backups.SecretRefs},
}

// SecretRefs lists every Secret the Shop references, as the builders that
// read them declare it, in the builders' order.
func SecretRefs(in render.Input) []render.SecretRef {
	var refs []render.SecretRef
	for _, b := range Builders {
		if b.SecretRefs != nil {
			refs = append(refs, b.SecretRefs(in)...)
		}
	}
	return refs
}

// Desired returns every child the Shop wants, owned by the Shop, sorted so
// that dependencies come first (Secrets and ConfigMaps before workloads) and
// the output is stable.
func Desired(in render.Input) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	seen := map[string]string{}
	for _, b := range Builders {
		objs, err := b.Build(in)
		if err != nil {
			return nil, fmt.Errorf("rendering %s: %w", b.Family, err)
		}
		for _, obj := range objs {
			u, err := Finish(in, obj)
			if err != nil {
				return nil, fmt.Errorf("rendering %s: %w", b.Family, err)
			}
			id := Key(u)
			if other, dup := seen[id]; dup {
				return nil, fmt.Errorf("%s and %s both render %s", other, b.Family, id)
			}
			seen[id] = b.Family
			out = append(out, u)
		}
	}
	Sort(out)
	return out, nil
}

// Finish sets type metadata, the common labels and the owner reference
// (unless the builder marked the object to be retained).
func Finish(in render.Input, obj client.Object) (*unstructured.Unstructured, error) {
	if u, ok := obj.(*unstructured.Unstructured); ok {
		obj = u.DeepCopy()
	} else {
		gvk, err := apiutil.GVKForObject(obj, scheme.Scheme)
		if err != nil {
			return nil, err
		}
		obj.GetObjectKind().SetGroupVersionKind(gvk)
	}
	if obj.GetNamespace() == "" {
		obj.SetNamespace(in.Shop.Namespace)
	}
	labels := obj.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[render.LabelShop] = in.Shop.Name
	labels[render.LabelManagedBy] = render.ManagedBy
	obj.SetLabels(labels)
	if obj.GetAnnotations()[render.AnnotationRetain] != "true" {
		if err := controllerutil.SetControllerReference(in.Shop, obj, scheme.Scheme); err != nil {
			return nil, err
		}
	}
	if u, ok := obj.(*unstructured.Unstructured); ok {
		return u, nil
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	u := &unstructured.Unstructured{Object: m}
	// Server-side apply owns what it sends: drop the empty status and
	// creationTimestamp that typed objects marshal.
	unstructured.RemoveNestedField(u.Object, "status")
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	return u, nil
}

// Key identifies an object: Kind/namespace/name.
func Key(u *unstructured.Unstructured) string {
	return u.GetObjectKind().GroupVersionKind().GroupKind().String() + "/" + u.GetNamespace() + "/" + u.GetName()
}

// kindOrder applies configuration before what consumes it.
var kindOrder = map[string]int{
	"ServiceAccount": 0, "Secret": 1, "ConfigMap": 2, "PersistentVolumeClaim": 3,
	"Service": 4, "StatefulSet": 5, "Deployment": 6,
}

// Sort orders objects by kind (dependencies first), then namespace and name.
func Sort(objs []*unstructured.Unstructured) {
	rank := func(u *unstructured.Unstructured) int {
		if r, ok := kindOrder[u.GetKind()]; ok {
			return r
		}
		return len(kindOrder)
	}
	sort.SliceStable(objs, func(i, j int) bool {
		a, b := objs[i], objs[j]
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra < rb
		}
		if a.GetKind() != b.GetKind() {
			return a.GetKind() < b.GetKind()
		}
		return a.GetName() < b.GetName()
	})
}
