package controllers

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/builders/collector"
	"github.com/shopplatform/shop-operator/internal/builders/mesh"
	"github.com/shopplatform/shop-operator/internal/render"
)

// shopStatus collects what one reconcile learned; apply writes it into the
// Shop's status. Conditions keep their lastTransitionTime when unchanged.
type shopStatus struct {
	shop       *shopv1.Shop
	conditions []metav1.Condition
	components []shopv1.ComponentStatus
	env        shopv1.Environment
	url        string

	stalledReason, stalledMessage string
	refProblems                   []string
	isPaused                      bool
	failure                       string
}

// status is the short name used in the reconciler.
type status = shopStatus

func newStatus(shop *shopv1.Shop) *status {
	return &status{shop: shop, conditions: append([]metav1.Condition(nil), shop.Status.Conditions...)}
}

func (s *status) set(t string, ok bool, reason, msg string) {
	st := metav1.ConditionFalse
	if ok {
		st = metav1.ConditionTrue
	}
	meta.SetStatusCondition(&s.conditions, metav1.Condition{
		Type: t, Status: st, Reason: reason, Message: msg, ObservedGeneration: s.shop.Generation,
	})
}

func (s *status) paused() {
	s.isPaused = true
	s.set(shopv1.ConditionReconciling, false, "Paused", "reconciliation is paused: spec.paused is true; nothing is created, changed or deleted")
}

func (s *status) failed(reason, msg string) {
	s.failure = msg
	s.set(shopv1.ConditionReady, false, reason, msg)
	s.set(shopv1.ConditionReconciling, true, reason, "retrying: "+msg)
}

func (s *status) stalled(reason, msg string) { s.stalledReason, s.stalledMessage = reason, msg }

func (s *status) dependencies(missing []string) {
	if len(missing) == 0 {
		s.set(shopv1.ConditionDependenciesAvailable, true, "Available", "every optional API the Shop uses is installed")
		return
	}
	s.set(shopv1.ConditionDependenciesAvailable, false, "APIsNotInstalled",
		"not installed: "+strings.Join(missing, "; ")+". The Shop runs without the objects of these APIs; install them to get them")
}

func (s *status) references(problems []string) {
	s.refProblems = problems
	if len(problems) == 0 {
		s.set(shopv1.ConditionReferencesResolved, true, "Resolved", "every referenced Secret exists and holds its keys")
		return
	}
	s.set(shopv1.ConditionReferencesResolved, false, "SecretMissing", strings.Join(problems, "; "))
}

// exporterConditions names the condition of each switchable exporter.
var exporterConditions = map[string]string{
	"jaeger": "JaegerReady", "loki": "LokiReady", "datadog": "DatadogReady", "newrelic": "NewRelicReady",
}

// exporters sets one condition per exporter the Shop switches on (and
// removes it when switched off): configured, its Secret present, or why not.
func (s *status) exporters(in render.Input) {
	for _, e := range collector.Exporters(in) {
		t := exporterConditions[e.Name]
		if !e.Enabled {
			meta.RemoveStatusCondition(&s.conditions, t)
			continue
		}
		if problems := filter(s.refProblems, exporterFor(e.Name)+":"); len(problems) > 0 {
			s.set(t, false, "SecretMissing", strings.Join(problems, "; ")+"; the other exporters keep working")
			continue
		}
		s.set(t, e.Rendered, e.Reason, e.Message)
	}
}

// monitoring reports whether the Shop's ServiceMonitors and rules exist.
func (s *status) monitoring(in render.Input) {
	p := in.Spec.Observability.Prometheus
	switch {
	case !on(p.ServiceMonitors) && !on(p.Rules):
		meta.RemoveStatusCondition(&s.conditions, shopv1.ConditionMonitoringReady)
	case !in.APIs.PrometheusOperator:
		s.set(shopv1.ConditionMonitoringReady, false, "PrometheusOperatorMissing",
			"the cluster does not serve monitoring.coreos.com/v1: install prometheus-operator to get ServiceMonitors and alerting rules")
	default:
		s.set(shopv1.ConditionMonitoringReady, true, "Applied", "ServiceMonitors and alerting rules are applied")
	}
}

// finish derives Ready, Reconciling and Stalled from what was observed.
func (s *status) finish(in render.Input) {
	s.env = in.Spec.Environment
	s.url = storefrontURL(in)
	_, reason, msg := mesh.Status(in)
	s.set(shopv1.ConditionMeshReady, mesh.ModeOf(in) == mesh.ModeIstio, reason, msg)
	s.monitoring(in)
	var waiting, dbWaiting []string
	for _, c := range s.components {
		if ready, total := parseReady(c.Ready); ready < total || total == 0 {
			if strings.HasSuffix(c.Name, "-db") {
				dbWaiting = append(dbWaiting, c.Name+" "+c.Ready)
			} else {
				waiting = append(waiting, c.Name+" "+c.Ready)
			}
		}
	}
	dbProblems := filter(s.refProblems, " database:")
	switch {
	case len(dbProblems) > 0:
		s.set(shopv1.ConditionDatabasesReady, false, "SecretMissing", strings.Join(dbProblems, "; "))
	case len(dbWaiting) > 0:
		s.set(shopv1.ConditionDatabasesReady, false, "Progressing", "waiting for "+strings.Join(dbWaiting, ", "))
	default:
		s.set(shopv1.ConditionDatabasesReady, true, "Ready", "every database is ready")
	}
	if len(waiting) > 0 {
		s.set(shopv1.ConditionWorkloadsReady, false, "Progressing", "waiting for "+strings.Join(waiting, ", "))
	} else {
		s.set(shopv1.ConditionWorkloadsReady, true, "Ready", "every workload is available")
	}

	switch {
	case s.stalledReason != "":
		s.set(shopv1.ConditionStalled, true, s.stalledReason, s.stalledMessage)
		s.set(shopv1.ConditionReconciling, false, s.stalledReason, s.stalledMessage)
		s.set(shopv1.ConditionReady, false, s.stalledReason, s.stalledMessage)
	case len(dbProblems) > 0:
		// Only a database's Secret blocks the Shop: without it a service
		// cannot start. An exporter or receiver without its Secret is left
		// out and reported in its own condition; the rest keeps working.
		msg := strings.Join(dbProblems, "; ") + " (create it; the Shop retries on its own)"
		s.set(shopv1.ConditionStalled, true, "SecretMissing", msg)
		s.set(shopv1.ConditionReconciling, false, "SecretMissing", msg)
		s.set(shopv1.ConditionReady, false, "SecretMissing", msg)
	case len(waiting)+len(dbWaiting) > 0:
		msg := "waiting for " + strings.Join(append(dbWaiting, waiting...), ", ")
		s.set(shopv1.ConditionStalled, false, "Progressing", "making progress")
		s.set(shopv1.ConditionReconciling, true, "Progressing", msg)
		s.set(shopv1.ConditionReady, false, "Progressing", msg)
	default:
		s.set(shopv1.ConditionStalled, false, "Succeeded", "nothing is blocked")
		s.set(shopv1.ConditionReconciling, false, "Succeeded", "the children match the spec")
		s.set(shopv1.ConditionReady, true, "Succeeded", fmt.Sprintf("all %d components are ready", len(s.components)))
	}
}

// apply writes the collected status into st.
func (s *status) apply(st *shopv1.ShopStatus) {
	st.Conditions = s.conditions
	if s.isPaused || s.failure != "" {
		// Keep the last observed components and generation: nothing was observed.
		return
	}
	st.ObservedGeneration = s.shop.Generation
	st.Environment = s.env
	st.URL = s.url
	st.Components = s.components
	ready := 0
	for _, c := range s.components {
		if r, t := parseReady(c.Ready); r >= t && t > 0 {
			ready++
		}
	}
	st.ReadyComponents = fmt.Sprintf("%d/%d", ready, len(s.components))
}

// observeWorkloads reads the desired Deployments and StatefulSets from the
// cache and records their readiness as kstatus computes it.
func (r *ShopReconciler) observeWorkloads(ctx context.Context, shop *shopv1.Shop, desired []*unstructured.Unstructured, st *status) error {
	for _, d := range desired {
		kind := d.GetKind()
		if kind != "Deployment" && kind != "StatefulSet" {
			continue
		}
		live := &unstructured.Unstructured{}
		live.SetGroupVersionKind(d.GroupVersionKind())
		obj, err := r.Client.Scheme().New(d.GroupVersionKind())
		if err != nil {
			return err
		}
		typed := obj.(client.Object)
		ready, total := 0, 0
		if err := r.Client.Get(ctx, client.ObjectKeyFromObject(d), typed); client.IgnoreNotFound(err) != nil {
			return err
		} else if err == nil {
			m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(typed)
			if err != nil {
				return err
			}
			live.Object = m
			res, err := kstatus.Compute(live)
			if err != nil {
				return err
			}
			ready, total = replicas(live)
			if res.Status != kstatus.CurrentStatus && ready >= total {
				ready = min(ready, total-1) // rolling out: not ready yet
			}
		}
		name := strings.TrimPrefix(d.GetName(), shop.Name+"-")
		st.components = append(st.components, shopv1.ComponentStatus{Name: name, Kind: kind, Ready: fmt.Sprintf("%d/%d", max(ready, 0), total)})
	}
	return nil
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

func parseReady(s string) (int, int) {
	var r, t int
	_, _ = fmt.Sscanf(s, "%d/%d", &r, &t)
	return r, t
}

func filter(items []string, substr string) []string {
	var out []string
	for _, i := range items {
		if strings.Contains(i, substr) {
			out = append(out, i)
		}
	}
	return out
}

// storefrontURL is where shoppers reach the shop: the gateway's address
// when hosts are set, else the frontend Service inside the cluster.
func storefrontURL(in render.Input) string {
	if u := mesh.StorefrontURL(in); u != "" {
		return u
	}
	return fmt.Sprintf("http://%s.%s.svc:%d", in.Name(render.Frontend), in.Shop.Namespace, render.HTTPPort)
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
