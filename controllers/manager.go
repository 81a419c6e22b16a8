package controllers

import (
	"fmt"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/scheme"
)

// NewManager returns a manager running the Shop controller. The cache holds
// Shops and only the objects labelled as the operator's, never every
// ConfigMap or Secret in the cluster; Secrets are not cached at all.
// cmd/manager, the tests and `shopctl demo` all start the operator through it.
func NewManager(cfg *rest.Config, opts ctrl.Options) (ctrl.Manager, error) {
	return newManager(cfg, opts, 30*time.Second)
}

func newManager(cfg *rest.Config, opts ctrl.Options, retryMissing time.Duration) (ctrl.Manager, error) {
	opts.Scheme = scheme.Scheme
	owned := labels.SelectorFromSet(labels.Set{render.LabelManagedBy: render.ManagedBy})
	opts.Cache = cache.Options{
		DefaultLabelSelector: owned,
		ByObject: map[client.Object]cache.ByObject{
			&shopv1.Shop{}: {Label: labels.Everything()},
			// CRDs are watched (metadata only) to notice optional APIs appearing.
			crdMetadata(): {Label: labels.Everything()},
		},
	}
	mgr, err := ctrl.NewManager(cfg, opts)
	if err != nil {
		return nil, err
	}
	direct, err := client.New(cfg, client.Options{Scheme: scheme.Scheme, Mapper: mgr.GetRESTMapper()})
	if err != nil {
		return nil, err
	}
	r := &ShopReconciler{
		Client:       mgr.GetClient(),
		Direct:       direct,
		Events:       mgr.GetEventRecorder(render.ManagedBy),
		RetryMissing: retryMissing,
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("setting up the Shop controller: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return nil, err
	}
	return mgr, nil
}

func crdMetadata() *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(apiextensionsv1.SchemeGroupVersion.WithKind("CustomResourceDefinition"))
	return m
}
