package controllers

import (
	"context"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/podreason"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/status"
)

// observeWorkloads reads the desired Deployments and StatefulSets from the
// cache and records their readiness as kstatus computes it.
func (r *ShopReconciler) observeWorkloads(ctx context.Context, in render.Input, desired []*unstructured.Unstructured) ([]status.Component, error) {
	databases := map[string]bool{}
	for _, svc := range render.Databases {
		if in.ManagedDatabase(svc) != nil {
			databases[in.DatabaseName(svc)] = true
		}
	}
	var components []status.Component
	for _, d := range desired {
		kind := d.GetKind()
		if kind != "Deployment" && kind != "StatefulSet" {
			continue
		}
		live := &unstructured.Unstructured{}
		live.SetGroupVersionKind(d.GroupVersionKind())
		obj, err := r.Client.Scheme().New(d.GroupVersionKind())
		if err != nil {
			return nil, err
		}
		typed := obj.(client.Object)
		ready, total := 0, 0
		if err := r.Client.Get(ctx, client.ObjectKeyFromObject(d), typed); client.IgnoreNotFound(err) != nil {
			return nil, err
		} else if err == nil {
			m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(typed)
			if err != nil {
				return nil, err
			}
			live.Object = m
			res, err := kstatus.Compute(live)
			if err != nil {
				return nil, err
			}
			ready, total = replicas(live)
			if res.Status != kstatus.CurrentStatus && ready >= total {
				ready = min(ready, total-1) // rolling out: not ready yet
			}
		}
		comp := status.Component{
			Name: strings.TrimPrefix(d.GetName(), in.Shop.Name+"-"), Kind: kind, Database: kind == "StatefulSet" && databases[d.GetName()],
			Ready: max(ready, 0), Total: total,
		}
		if !comp.IsReady() {
			if comp.Why, err = r.whyNotReady(ctx, d); err != nil {
				return nil, err
			}
		}
		components = append(components, comp)
	}
	return components, nil
}

// whyNotReady names a pod of the workload that is not ready and why, as the
// kubelet reports it (podreason); empty when no pod exists yet or every pod
// is ready (a rollout in progress).
func (r *ShopReconciler) whyNotReady(ctx context.Context, workload *unstructured.Unstructured) (string, error) {
	sel, found, _ := unstructured.NestedStringMap(workload.Object, "spec", "selector", "matchLabels")
	if !found || len(sel) == 0 {
		return "", nil
	}
	pods := &corev1.PodList{}
	if err := r.Client.List(ctx, pods, client.InNamespace(workload.GetNamespace()), client.MatchingLabels(sel)); err != nil {
		return "", err
	}
	slices.SortFunc(pods.Items, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	for _, p := range pods.Items {
		if p.DeletionTimestamp != nil {
			continue
		}
		if why := podreason.Of(&p); why != podreason.Ready {
			return "pod " + p.Name + ": " + why, nil
		}
	}
	return "", nil
}

// podReadinessChanged lets through the pod events that can change why a
// workload waits: a pod created or deleted, or its readiness or waiting
// reason changed. Other status updates (probes passing again and again,
// resource usage) do not reconcile the Shop.
var podReadinessChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		before, ok1 := e.ObjectOld.(*corev1.Pod)
		after, ok2 := e.ObjectNew.(*corev1.Pod)
		return !ok1 || !ok2 || podreason.Of(before) != podreason.Of(after)
	},
}

// shopOfPod maps a Shop's pod to its Shop (the label every child's pods carry).
func shopOfPod(_ context.Context, obj client.Object) []reconcile.Request {
	name := obj.GetLabels()[render.LabelShop]
	if name == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: obj.GetNamespace(), Name: name}}}
}

// replicas returns ready and desired replicas of a Deployment or StatefulSet.
func replicas(u *unstructured.Unstructured) (int, int) {
	want, found, _ := unstructured.NestedInt64(u.Object, "spec", "replicas")
	if !found {
		want = 1
	}
	ready, _, _ := unstructured.NestedInt64(u.Object, "status", "readyReplicas")
	if u.GetKind() == "Deployment" {
		ready, _, _ = unstructured.NestedInt64(u.Object, "status", "availableReplicas")
	}
	return int(ready), int(want)
}

func statusEqual(a, b *shopv1.ShopStatus) bool { return equality.Semantic.DeepEqual(a, b) }

func condTrue(st *shopv1.ShopStatus, t string) bool {
	return meta.IsStatusConditionTrue(st.Conditions, t)
}

func becameStalled(before, after *shopv1.ShopStatus) bool {
	return !condTrue(before, shopv1.ConditionStalled) && condTrue(after, shopv1.ConditionStalled)
}

func becameReady(before, after *shopv1.ShopStatus) bool {
	return !condTrue(before, shopv1.ConditionReady) && condTrue(after, shopv1.ConditionReady)
}
