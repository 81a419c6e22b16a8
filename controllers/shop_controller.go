// Package controllers holds the Shop reconcile loop: resolve the profile,
// render the desired children with the pure builders, apply them with
// server-side apply (writing nothing when nothing drifted), prune what is no
// longer wanted, and report kstatus-style status.
package controllers

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fluxcd/pkg/ssa"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/engine"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/status"
)

// resync restores children that no watch covers (generated Secrets).
const resync = 10 * time.Minute

// ShopReconciler reconciles Shops.
type ShopReconciler struct {
	// Client reads Shops and the owned workloads from the cache.
	Client client.Client
	// Direct talks to the API server without a cache: apply, Secrets, prune.
	// Secrets are never cached or listed cluster-wide.
	Direct client.Client
	Events events.EventRecorder
	// RetryMissing is how often a Shop whose referenced Secret is missing
	// looks again (default 30s; Secrets are not watched).
	RetryMissing time.Duration

	apis     *apiDetector
	applier  *ssa.ResourceManager
	ctrl     controller.Controller
	watching sync.Map // GVK -> struct{}: optional kinds watched so far
	mgr      ctrl.Manager
}

// +kubebuilder:rbac:groups=commerce.shopplatform.io,resources=shops,verbs=list;watch
// +kubebuilder:rbac:groups=commerce.shopplatform.io,resources=shops/status,verbs=patch
// +kubebuilder:rbac:groups="",resources=serviceaccounts;services;configmaps,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;create;patch
// Jaeger's and Loki's volumes are owned and pruned; backup volumes are retained
// (no owner reference), so prune never deletes them.
// +kubebuilder:rbac:groups="",resources=persistentvolumeclaims,verbs=get;list;create;patch;delete
// +kubebuilder:rbac:groups=apps,resources=deployments;statefulsets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=policy,resources=poddisruptionbudgets,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=autoscaling,resources=horizontalpodautoscalers,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=batch,resources=cronjobs,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=networking.istio.io,resources=gateways;virtualservices;destinationrules,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=security.istio.io,resources=peerauthentications;requestauthentications;authorizationpolicies,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=monitoring.coreos.com,resources=servicemonitors;prometheusrules;alertmanagerconfigs,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=opentelemetry.io,resources=opentelemetrycollectors,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=roles;rolebindings,verbs=get;list;watch;create;patch;delete
// The operator reads the Shop's pods to say why a workload waits; the
// collector's Role lets it read pods and replicasets (k8s_attributes), and
// Kubernetes lets the operator grant only what it holds itself.
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,resources=replicasets,verbs=get;list;watch
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,verbs=list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile brings one Shop's children to the desired state and reports it.
// The status is decided once, when the reconcile returns, from what it
// observed (see package status), whichever way it returns.
func (r *ShopReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	logger := log.FromContext(ctx)
	shop := &shopv1.Shop{}
	if err := r.Client.Get(ctx, req.NamespacedName, shop); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !shop.DeletionTimestamp.IsZero() {
		// The garbage collector is removing the children; re-creating them
		// would fight it (and regenerate the Secrets it just deleted).
		return ctrl.Result{}, nil
	}
	old := shop.DeepCopy()
	obs := &status.Observation{Generation: shop.Generation}
	defer func() {
		if retErr != nil {
			logger.Error(retErr, "reconcile failed")
			obs.Failure = retErr
		}
		if err := r.patchStatus(ctx, old, shop, obs); err != nil && retErr == nil {
			retErr = err
		}
	}()

	if shop.Spec.Paused {
		obs.Paused = true
		return ctrl.Result{}, nil
	}
	return r.reconcile(ctx, shop, obs)
}

func (r *ShopReconciler) reconcile(ctx context.Context, shop *shopv1.Shop, obs *status.Observation) (ctrl.Result, error) {
	apis, kinds, err := r.apis.Detect(ctx)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("discovering optional APIs: %w", err)
	}
	r.watchOptionalKinds(kinds)

	p, err := engine.Prepare(ctx, shop, apis, r.Direct, engine.Generate)
	obs.Input, obs.MissingAPIs, obs.Problems, obs.Reached = p.Resolved, p.MissingAPIs, p.Problems, p.Reached
	if err != nil {
		return ctrl.Result{}, err
	}
	in, problems := p.Input, p.Problems

	desired, err := engine.Desired(in)
	if err != nil {
		// Final for this generation: retrying renders the same error.
		obs.Refused = err
		return ctrl.Result{}, nil
	}
	changes, err := r.applier.ApplyAllStaged(ctx, desired, applyOptions)
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("applying children: %w", err)
	}
	pruned, err := r.prune(ctx, shop, desired, append(baseKinds, kinds...))
	if err != nil {
		return ctrl.Result{}, fmt.Errorf("pruning children: %w", err)
	}
	r.recordChanges(shop, changes, pruned)

	if obs.Components, err = r.observeWorkloads(ctx, in, desired); err != nil {
		return ctrl.Result{}, err
	}
	obs.Reached = status.Observed
	if len(problems) > 0 {
		return ctrl.Result{RequeueAfter: r.RetryMissing}, nil
	}
	return ctrl.Result{RequeueAfter: resync}, nil
}

// prune deletes children of this Shop that are no longer desired. It lists
// metadata only, by the Shop's label, and deletes only what the Shop controls.
func (r *ShopReconciler) prune(ctx context.Context, shop *shopv1.Shop, desired []*unstructured.Unstructured, kinds []schema.GroupVersionKind) ([]ssa.ChangeSetEntry, error) {
	want := map[string]bool{}
	for _, u := range desired {
		want[engine.Key(u)] = true
	}
	var pruned []ssa.ChangeSetEntry
	for _, gvk := range kinds {
		list := &metav1.PartialObjectMetadataList{}
		list.SetGroupVersionKind(gvk.GroupVersion().WithKind(gvk.Kind + "List"))
		if err := r.Direct.List(ctx, list, client.InNamespace(shop.Namespace),
			client.MatchingLabels{render.LabelShop: shop.Name, render.LabelManagedBy: render.ManagedBy}); err != nil {
			if meta.IsNoMatchError(err) || apierrors.IsNotFound(err) {
				continue
			}
			return pruned, err
		}
		for i := range list.Items {
			item := &list.Items[i]
			u := &unstructured.Unstructured{}
			u.SetGroupVersionKind(gvk)
			u.SetNamespace(item.Namespace)
			u.SetName(item.Name)
			if want[engine.Key(u)] || !metav1.IsControlledBy(item, shop) || item.DeletionTimestamp != nil {
				continue
			}
			item.SetGroupVersionKind(gvk)
			if err := r.Direct.Delete(ctx, item, client.PropagationPolicy(metav1.DeletePropagationBackground)); client.IgnoreNotFound(err) != nil {
				return pruned, err
			}
			e := ssa.ChangeSetEntry{GroupVersion: gvk.GroupVersion().String(), Subject: gvk.Kind + "/" + item.Name, Action: ssa.DeletedAction}
			e.ObjMetadata.Namespace, e.ObjMetadata.Name, e.ObjMetadata.GroupKind = item.Namespace, item.Name, gvk.GroupKind()
			pruned = append(pruned, e)
		}
	}
	return pruned, nil
}

// recordChanges emits one event per reconcile that changed something, and
// one per security-relevant child that changed.
func (r *ShopReconciler) recordChanges(shop *shopv1.Shop, changes *ssa.ChangeSet, pruned []ssa.ChangeSetEntry) {
	r.recordSecurityChanges(shop, append(append([]ssa.ChangeSetEntry{}, changes.Entries...), pruned...))
	var created, configured []string
	for _, e := range changes.Entries {
		switch e.Action {
		case ssa.CreatedAction:
			created = append(created, e.Subject)
		case ssa.ConfiguredAction:
			configured = append(configured, e.Subject)
		}
	}
	if len(created)+len(configured) > 0 {
		r.Events.Eventf(shop, nil, corev1.EventTypeNormal, "Applied", "Apply",
			"created %d, configured %d: %s", len(created), len(configured), summarize(append(created, configured...)))
	}
	if len(pruned) > 0 {
		subjects := make([]string, len(pruned))
		for i, e := range pruned {
			subjects[i] = e.Subject
		}
		r.Events.Eventf(shop, nil, corev1.EventTypeNormal, "Pruned", "Delete",
			"deleted %d children no longer wanted: %s", len(pruned), summarize(subjects))
	}
}

func summarize(items []string) string {
	sort.Strings(items)
	if len(items) > 8 {
		return strings.Join(items[:8], ", ") + fmt.Sprintf(" and %d more", len(items)-8)
	}
	return strings.Join(items, ", ")
}

// patchStatus decides the status from what the reconcile observed and
// writes it when it changed, and only then.
func (r *ShopReconciler) patchStatus(ctx context.Context, old, shop *shopv1.Shop, obs *status.Observation) error {
	before := old.Status.DeepCopy()
	shop.Status = status.Finalize(old.Status, obs)
	if statusEqual(before, &shop.Status) {
		return nil
	}
	if becameStalled(before, &shop.Status) {
		c := meta.FindStatusCondition(shop.Status.Conditions, shopv1.ConditionStalled)
		r.Events.Eventf(shop, nil, corev1.EventTypeWarning, c.Reason, "Reconcile", "%s", c.Message)
	}
	if becameReady(before, &shop.Status) {
		r.Events.Eventf(shop, nil, corev1.EventTypeNormal, "Ready", "Reconcile", "all %s components are ready", shop.Status.ReadyComponents)
	}
	return client.IgnoreNotFound(r.Client.Status().Patch(ctx, shop, client.MergeFrom(old)))
}

// applyOptions apply Roles in a stage of their own: the API server checks a
// RoleBinding against the Role it names, which a dry run cannot see yet.
var applyOptions = func() ssa.ApplyOptions {
	o := ssa.DefaultApplyOptions()
	o.CustomStageKinds = map[schema.GroupKind]struct{}{{Group: rbacv1.GroupName, Kind: "Role"}: {}}
	return o
}()

// baseKinds are the built-in kinds the builders render and prune may delete.
// Secrets are not pruned: deleting a generated Secret would lock the services
// out of their data; they go with the Shop through garbage collection.
var baseKinds = []schema.GroupVersionKind{
	corev1.SchemeGroupVersion.WithKind("ServiceAccount"),
	corev1.SchemeGroupVersion.WithKind("ConfigMap"),
	corev1.SchemeGroupVersion.WithKind("Service"),
	corev1.SchemeGroupVersion.WithKind("PersistentVolumeClaim"),
	appsv1.SchemeGroupVersion.WithKind("Deployment"),
	appsv1.SchemeGroupVersion.WithKind("StatefulSet"),
	policyv1.SchemeGroupVersion.WithKind("PodDisruptionBudget"),
	autoscalingv2.SchemeGroupVersion.WithKind("HorizontalPodAutoscaler"),
	networkingv1.SchemeGroupVersion.WithKind("NetworkPolicy"),
	batchv1.SchemeGroupVersion.WithKind("CronJob"),
	rbacv1.SchemeGroupVersion.WithKind("Role"),
	rbacv1.SchemeGroupVersion.WithKind("RoleBinding"),
}

// SetupWithManager registers the controller. Owned built-in kinds are watched
// from a cache restricted to the operator's label (see cmd/manager); optional
// third-party kinds are watched once discovery finds them.
func (r *ShopReconciler) SetupWithManager(mgr ctrl.Manager) error {
	dc, err := discovery.NewDiscoveryClientForConfig(mgr.GetConfig())
	if err != nil {
		return err
	}
	r.apis = &apiDetector{discovery: dc, ttl: time.Minute}
	r.applier = ssa.NewResourceManager(r.Direct, nil, ssa.Owner{Field: render.ManagedBy, Group: shopv1.GroupVersion.Group})
	r.mgr = mgr

	b := ctrl.NewControllerManagedBy(mgr).
		For(&shopv1.Shop{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Owns(&corev1.ServiceAccount{}).
		Owns(&corev1.ConfigMap{}).
		Owns(&corev1.Service{}).
		Owns(&appsv1.Deployment{}).
		Owns(&appsv1.StatefulSet{}).
		Owns(&policyv1.PodDisruptionBudget{}).
		Owns(&autoscalingv2.HorizontalPodAutoscaler{}).
		Owns(&networkingv1.NetworkPolicy{}).
		Owns(&batchv1.CronJob{}).
		Owns(&rbacv1.Role{}).
		Owns(&rbacv1.RoleBinding{}).
		// A pod that cannot start changes why the Shop waits (its status
		// names the pod and the kubelet's reason).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(shopOfPod), builder.WithPredicates(podReadinessChanged)).
		// A CRD appearing or going away changes what a Shop can render.
		WatchesMetadata(&apiextensionsv1.CustomResourceDefinition{},
			handler.EnqueueRequestsFromMapFunc(r.allShopsOnCRDChange)).
		WithOptions(controller.Options{MaxConcurrentReconciles: 4})
	c, err := b.Build(r)
	if err != nil {
		return err
	}
	r.ctrl = c
	return nil
}

// allShopsOnCRDChange re-queues every Shop when a CRD of an optional API changes.
func (r *ShopReconciler) allShopsOnCRDChange(ctx context.Context, obj client.Object) []reconcile.Request {
	relevant := false
	for _, api := range engine.OptionalAPIs {
		for _, k := range api.Kinds {
			relevant = relevant || strings.HasSuffix(obj.GetName(), "."+k.Group)
		}
	}
	if !relevant {
		return nil
	}
	r.apis.Invalidate()
	shops := &shopv1.ShopList{}
	if err := r.Client.List(ctx, shops); err != nil {
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(shops.Items))
	for _, s := range shops.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&s)})
	}
	return reqs
}

// watchOptionalKinds starts watching the owned objects of optional kinds the
// first time discovery finds them, so drift on them is repaired too.
func (r *ShopReconciler) watchOptionalKinds(kinds []schema.GroupVersionKind) {
	if r.ctrl == nil {
		return
	}
	for _, gvk := range kinds {
		if _, loaded := r.watching.LoadOrStore(gvk, struct{}{}); loaded {
			continue
		}
		obj := &metav1.PartialObjectMetadata{}
		obj.SetGroupVersionKind(gvk)
		src := source.Kind(r.mgr.GetCache(), client.Object(obj),
			handler.EnqueueRequestForOwner(r.mgr.GetScheme(), r.mgr.GetRESTMapper(), &shopv1.Shop{}, handler.OnlyControllerOwner()))
		if err := r.ctrl.Watch(src); err != nil {
			r.watching.Delete(gvk)
		}
	}
}
