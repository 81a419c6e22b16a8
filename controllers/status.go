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

// observation is what one reconcile learned about a Shop, stage by stage.
// The reconcile only records facts in it; finalizeStatus turns it into the
// status in one place, whatever path the reconcile took (an early return, a
// refused spec, an error), as Flux's deferred finalizeStatus does.
type observation struct {
	generation int64
	reached    stage

	paused  bool
	failure error // worth retrying: this generation is not processed yet
	refused error // a builder refused the spec: final for this generation

	in          render.Input // the resolved input (from resolved on)
	missingAPIs []string     // from resolved on
	refProblems []problem    // from referenced on
	components  []component  // from observed on
}

// component is the readiness of one workload child.
type component struct {
	name, kind   string
	database     bool // a managed database's StatefulSet
	ready, total int
}

func (c component) isReady() bool { return c.total > 0 && c.ready >= c.total }

func (c component) replicas() string { return fmt.Sprintf("%d/%d", c.ready, c.total) }

func (c component) String() string { return c.name + " " + c.replicas() }

func (c component) status() shopv1.ComponentStatus {
	return shopv1.ComponentStatus{Name: c.name, Kind: c.kind, Ready: c.replicas()}
}

// stage is how far a reconcile got; each stage makes more of the status known.
type stage int

const (
	started    stage = iota
	resolved         // optional APIs detected, the spec resolved: DependenciesAvailable
	referenced       // referenced Secrets checked: ReferencesResolved, the exporters
	observed         // children applied and pruned, workloads observed: everything
)

func newObservation(shop *shopv1.Shop) *observation {
	return &observation{generation: shop.Generation}
}

// conditionSetter sets conditions at one generation.
type conditionSetter struct {
	conditions *[]metav1.Condition
	generation int64
}

func (c conditionSetter) set(t string, ok bool, reason, msg string) {
	st := metav1.ConditionFalse
	if ok {
		st = metav1.ConditionTrue
	}
	meta.SetStatusCondition(c.conditions, metav1.Condition{
		Type: t, Status: st, Reason: reason, Message: msg, ObservedGeneration: c.generation,
	})
}

// summary sets Ready, Reconciling and Stalled together.
func (c conditionSetter) summary(ready, reconciling, stalled bool, reason, msg string) {
	c.set(shopv1.ConditionReady, ready, reason, msg)
	c.set(shopv1.ConditionReconciling, reconciling, reason, msg)
	c.set(shopv1.ConditionStalled, stalled, reason, msg)
}

// finalizeStatus is the one place that decides the status: every condition,
// observedGeneration ("this generation was fully processed": applied and
// observed, or refused for good), the components. What the reconcile did not
// get to see keeps its last observed value. Conditions keep their
// lastTransitionTime when unchanged.
func finalizeStatus(prev shopv1.ShopStatus, o *observation) shopv1.ShopStatus {
	st := *prev.DeepCopy()
	c := conditionSetter{conditions: &st.Conditions, generation: o.generation}
	if o.paused {
		c.set(shopv1.ConditionReconciling, false, "Paused", "reconciliation is paused: spec.paused is true; nothing is created, changed or deleted")
		return st
	}
	if o.reached >= resolved {
		dependencies(c, o.missingAPIs)
	}
	if o.reached >= referenced {
		references(c, o.refProblems)
		exporters(c, o.in, o.refProblems)
	}
	var waiting []component
	if o.reached >= observed {
		_, reason, msg := mesh.Status(o.in)
		c.set(shopv1.ConditionMeshReady, mesh.ModeOf(o.in) == mesh.ModeIstio, reason, msg)
		monitoringReady(c, o.in)
		waiting = workloadsReady(c, o.components, o.refProblems)
	}
	blockers := problemsOf(o.refProblems, blocking)

	switch {
	case o.failure != nil:
		// Nothing is decided for this generation: keep what was observed.
		msg := o.failure.Error()
		c.set(shopv1.ConditionReady, false, ReasonReconcileFailed, msg)
		c.set(shopv1.ConditionReconciling, true, ReasonReconcileFailed, "retrying: "+msg)
		c.set(shopv1.ConditionStalled, false, ReasonReconcileFailed, "retrying: "+msg)
		return st
	case o.refused != nil:
		// Final for this generation: nothing was applied, the children of the
		// last accepted spec keep running and keep their observed readiness.
		msg := o.refused.Error() + " (nothing was applied: change the spec)"
		c.summary(false, false, true, ReasonRenderFailed, msg)
		st.ObservedGeneration = o.generation
		return st
	case o.reached < observed:
		// Every path either fails, is refused or observes: this is a bug.
		msg := "the reconcile ended before observing the workloads"
		c.summary(false, true, false, ReasonReconcileFailed, msg)
		return st
	case len(blockers) > 0:
		// Only a blocking reference (a database's Secret: without it a
		// service cannot start) stalls the Shop. An exporter or receiver
		// without its Secret is left out and reported in its own condition;
		// the rest keeps working.
		c.summary(false, false, true, ReasonSecretMissing, join(blockers, "; ")+" (create it; the Shop retries on its own)")
	case len(waiting) > 0:
		msg := "waiting for " + join(waiting, ", ")
		c.set(shopv1.ConditionStalled, false, "Progressing", "making progress")
		c.set(shopv1.ConditionReconciling, true, "Progressing", msg)
		c.set(shopv1.ConditionReady, false, "Progressing", msg)
	default:
		c.set(shopv1.ConditionStalled, false, "Succeeded", "nothing is blocked")
		c.set(shopv1.ConditionReconciling, false, "Succeeded", "the children match the spec")
		c.set(shopv1.ConditionReady, true, "Succeeded", fmt.Sprintf("all %d components are ready", len(o.components)))
	}
	st.ObservedGeneration = o.generation
	st.Environment = o.in.Spec.Environment
	st.URL = storefrontURL(o.in)
	st.Components = nil
	ready := 0
	for _, comp := range o.components {
		st.Components = append(st.Components, comp.status())
		if comp.isReady() {
			ready++
		}
	}
	st.ReadyComponents = fmt.Sprintf("%d/%d", ready, len(o.components))
	return st
}

// Reasons of the summary conditions that more than one place sets.
const (
	// ReasonReconcileFailed: an error worth retrying (the API server, discovery).
	ReasonReconcileFailed = "ReconcileFailed"
	// ReasonRenderFailed: a builder refused the spec; only a new spec helps.
	ReasonRenderFailed = "RenderFailed"
	// ReasonSecretMissing: a referenced Secret, or a key of it, is missing.
	ReasonSecretMissing = "SecretMissing"
)

// join joins the String of each item.
func join[T fmt.Stringer](items []T, sep string) string {
	s := make([]string, len(items))
	for i, item := range items {
		s[i] = item.String()
	}
	return strings.Join(s, sep)
}

func dependencies(c conditionSetter, missing []string) {
	if len(missing) == 0 {
		c.set(shopv1.ConditionDependenciesAvailable, true, "Available", "every optional API the Shop uses is installed")
		return
	}
	c.set(shopv1.ConditionDependenciesAvailable, false, "APIsNotInstalled",
		"not installed: "+strings.Join(missing, "; ")+". The Shop runs without the objects of these APIs; install them to get them")
}

func references(c conditionSetter, problems []problem) {
	if len(problems) == 0 {
		c.set(shopv1.ConditionReferencesResolved, true, "Resolved", "every referenced Secret exists and holds its keys")
		return
	}
	c.set(shopv1.ConditionReferencesResolved, false, ReasonSecretMissing, join(problems, "; "))
}

// exporterConditions names the condition of each switchable exporter.
var exporterConditions = map[string]string{
	"jaeger": shopv1.ConditionJaegerReady, "loki": shopv1.ConditionLokiReady,
	"datadog": shopv1.ConditionDatadogReady, "newrelic": shopv1.ConditionNewRelicReady,
}

// exporters sets one condition per exporter the Shop switches on (and
// removes it when switched off): configured, its Secret present, or why not.
func exporters(c conditionSetter, in render.Input, refProblems []problem) {
	for _, e := range collector.Exporters(in) {
		t := exporterConditions[e.Name]
		if !e.Enabled {
			meta.RemoveStatusCondition(c.conditions, t)
			continue
		}
		if problems := problemsOf(refProblems, about(exporterNamed(e.Name))); len(problems) > 0 {
			c.set(t, false, ReasonSecretMissing, join(problems, "; ")+"; the other exporters keep working")
			continue
		}
		c.set(t, e.Rendered, e.Reason, e.Message)
	}
}

// monitoringReady reports whether the Shop's ServiceMonitors and rules exist.
func monitoringReady(c conditionSetter, in render.Input) {
	p := in.Spec.Observability.Prometheus
	switch {
	case !on(p.ServiceMonitors) && !on(p.Rules):
		meta.RemoveStatusCondition(c.conditions, shopv1.ConditionMonitoringReady)
	case !in.APIs.PrometheusOperator:
		c.set(shopv1.ConditionMonitoringReady, false, "PrometheusOperatorMissing",
			"the cluster does not serve monitoring.coreos.com/v1: install prometheus-operator to get ServiceMonitors and alerting rules")
	default:
		c.set(shopv1.ConditionMonitoringReady, true, "Applied", "ServiceMonitors and alerting rules are applied")
	}
}

// workloadsReady sets DatabasesReady and WorkloadsReady and returns the
// components that are not ready yet, databases first.
func workloadsReady(c conditionSetter, components []component, refProblems []problem) []component {
	var waiting, dbWaiting []component
	for _, comp := range components {
		switch {
		case comp.isReady():
		case comp.database:
			dbWaiting = append(dbWaiting, comp)
		default:
			waiting = append(waiting, comp)
		}
	}
	switch dbProblems := problemsOf(refProblems, inArea(areaDatabase)); {
	case len(dbProblems) > 0:
		c.set(shopv1.ConditionDatabasesReady, false, ReasonSecretMissing, join(dbProblems, "; "))
	case len(dbWaiting) > 0:
		c.set(shopv1.ConditionDatabasesReady, false, "Progressing", "waiting for "+join(dbWaiting, ", "))
	default:
		c.set(shopv1.ConditionDatabasesReady, true, "Ready", "every database is ready")
	}
	if len(waiting) > 0 {
		c.set(shopv1.ConditionWorkloadsReady, false, "Progressing", "waiting for "+join(waiting, ", "))
	} else {
		c.set(shopv1.ConditionWorkloadsReady, true, "Ready", "every workload is available")
	}
	return append(dbWaiting, waiting...)
}

// observeWorkloads reads the desired Deployments and StatefulSets from the
// cache and records their readiness as kstatus computes it.
func (r *ShopReconciler) observeWorkloads(ctx context.Context, shop *shopv1.Shop, desired []*unstructured.Unstructured, o *observation) error {
	databases := map[string]bool{}
	for _, svc := range render.Databases {
		if o.in.ManagedDatabase(svc) != nil {
			databases[o.in.DatabaseName(svc)] = true
		}
	}
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
		o.components = append(o.components, component{
			name: strings.TrimPrefix(d.GetName(), shop.Name+"-"), kind: kind, database: kind == "StatefulSet" && databases[d.GetName()],
			ready: max(ready, 0), total: total,
		})
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
