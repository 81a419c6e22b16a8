// Package status decides a Shop's status from what one reconcile observed.
// It is the one place where conditions, observedGeneration and the
// components are computed, whatever path the reconcile took (an early return,
// a refused spec, an error), as Flux's deferred finalizeStatus does; the
// controller only records facts in an Observation. It is pure, and its
// transitions are unit-tested as a table.
package status

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/builders/collector"
	"github.com/shopplatform/shop-operator/internal/builders/mesh"
	workloadsbuilder "github.com/shopplatform/shop-operator/internal/builders/workloads"
	"github.com/shopplatform/shop-operator/internal/render"
)

// Reasons of the summary conditions (Ready, Reconciling, Stalled).
const (
	// ReasonSucceeded: the children match the spec and every workload is ready.
	ReasonSucceeded = "Succeeded"
	// ReasonProgressing: applied; some workloads are not ready yet.
	ReasonProgressing = "Progressing"
	// ReasonPaused: spec.paused is true.
	ReasonPaused = "Paused"
	// ReasonReconcileFailed: an error worth retrying (the API server, discovery).
	ReasonReconcileFailed = "ReconcileFailed"
	// ReasonRenderFailed: a builder refused the spec; only a new spec helps.
	ReasonRenderFailed = "RenderFailed"
	// ReasonSecretMissing: a referenced Secret, or a key of it, is missing.
	ReasonSecretMissing = "SecretMissing"
)

// Stage is how far a reconcile got; each stage makes more of the status known.
type Stage int

const (
	Started    Stage = iota
	Resolved         // optional APIs detected, the spec resolved: DependenciesAvailable
	Referenced       // referenced Secrets checked: ReferencesResolved, the exporters
	Observed         // children applied and pruned, workloads observed: everything
)

// Observation is what one reconcile learned about a Shop, stage by stage.
type Observation struct {
	Generation int64
	Reached    Stage

	Paused  bool
	Failure error // worth retrying: this generation is not processed yet
	Refused error // a builder refused the spec: final for this generation

	Input       render.Input // the resolved input (from Resolved on)
	MissingAPIs []string     // optional APIs the Shop wants and the cluster lacks (from Resolved on)
	Problems    Problems     // referenced Secrets missing or incomplete (from Referenced on)
	Components  []Component  // the workloads' readiness (from Observed on)
}

// Component is the readiness of one workload child.
type Component struct {
	Name, Kind string
	Database   bool // a managed database's StatefulSet
	Ready      int  // ready (StatefulSet) or available (Deployment) replicas
	Total      int  // desired replicas
	// Why a replica is not ready, in the kubelet's words, naming the pod
	// ("pod orders-7d9f-x: container orders CrashLoopBackOff: ..."); empty
	// when every replica is ready or no pod exists yet.
	Why string
}

// IsReady: every desired replica is ready, and there is at least one.
func (c Component) IsReady() bool { return c.Total > 0 && c.Ready >= c.Total }

func (c Component) replicas() string { return fmt.Sprintf("%d/%d", c.Ready, c.Total) }

func (c Component) String() string {
	if c.Why != "" && !c.IsReady() {
		return c.Name + " " + c.replicas() + " (" + c.Why + ")"
	}
	return c.Name + " " + c.replicas()
}

// conditions sets conditions at one generation.
type conditions struct {
	list       *[]metav1.Condition
	generation int64
}

func (c conditions) set(t string, ok bool, reason, msg string) {
	st := metav1.ConditionFalse
	if ok {
		st = metav1.ConditionTrue
	}
	meta.SetStatusCondition(c.list, metav1.Condition{
		Type: t, Status: st, Reason: reason, Message: msg, ObservedGeneration: c.generation,
	})
}

func (c conditions) remove(t string) { meta.RemoveStatusCondition(c.list, t) }

// summary sets Ready, Reconciling and Stalled.
func (c conditions) summary(ready, reconciling, stalled bool, reason, msg string) {
	c.set(shopv1.ConditionReady, ready, reason, msg)
	c.set(shopv1.ConditionReconciling, reconciling, reason, msg)
	c.set(shopv1.ConditionStalled, stalled, reason, msg)
}

// Finalize decides the status that follows prev after the reconcile
// described by o: every condition, observedGeneration ("this generation was
// fully processed": applied and observed, or refused for good) and the
// components. What the reconcile did not get to see keeps its last observed
// value. Conditions keep their lastTransitionTime when unchanged.
func Finalize(prev shopv1.ShopStatus, o *Observation) shopv1.ShopStatus {
	st := *prev.DeepCopy()
	c := conditions{list: &st.Conditions, generation: o.Generation}
	if o.Paused {
		c.set(shopv1.ConditionReconciling, false, ReasonPaused, "reconciliation is paused: spec.paused is true; nothing is created, changed or deleted")
		return st
	}
	if o.Reached >= Resolved {
		dependencies(c, o.MissingAPIs)
	}
	if o.Reached >= Referenced {
		references(c, o.Problems)
		exporters(c, o.Input, o.Problems)
	}
	var waiting []Component
	if o.Reached >= Observed {
		_, reason, msg := mesh.Status(o.Input)
		c.set(shopv1.ConditionMeshReady, mesh.ModeOf(o.Input) == mesh.ModeIstio, reason, msg)
		monitoring(c, o.Input)
		faultInjection(c, o.Input)
		waiting = workloads(c, o.Components, o.Problems)
	}

	switch blockers := o.Problems.Blocking(); {
	case o.Failure != nil:
		// Nothing is decided for this generation: keep what was observed.
		msg := o.Failure.Error()
		c.set(shopv1.ConditionReady, false, ReasonReconcileFailed, msg)
		c.set(shopv1.ConditionReconciling, true, ReasonReconcileFailed, "retrying: "+msg)
		c.set(shopv1.ConditionStalled, false, ReasonReconcileFailed, "retrying: "+msg)
		return st
	case o.Refused != nil:
		// Final for this generation: nothing was applied, the children of the
		// last accepted spec keep running and keep their observed readiness.
		c.summary(false, false, true, ReasonRenderFailed, o.Refused.Error()+" (nothing was applied: change the spec)")
		st.ObservedGeneration = o.Generation
		return st
	case o.Reached < Observed:
		// Every path fails, is refused or observes: this is a bug.
		c.summary(false, true, false, ReasonReconcileFailed, "the reconcile ended before observing the workloads")
		return st
	case len(blockers) > 0:
		c.summary(false, false, true, ReasonSecretMissing, join(blockers, "; ")+" (create it; the Shop retries on its own)")
	case len(waiting) > 0:
		msg := "waiting for " + join(waiting, ", ")
		c.set(shopv1.ConditionStalled, false, ReasonProgressing, "making progress")
		c.set(shopv1.ConditionReconciling, true, ReasonProgressing, msg)
		c.set(shopv1.ConditionReady, false, ReasonProgressing, msg)
	default:
		c.set(shopv1.ConditionStalled, false, ReasonSucceeded, "nothing is blocked")
		c.set(shopv1.ConditionReconciling, false, ReasonSucceeded, "the children match the spec")
		c.set(shopv1.ConditionReady, true, ReasonSucceeded, fmt.Sprintf("all %d components are ready", len(o.Components)))
	}
	st.ObservedGeneration = o.Generation
	st.Environment = o.Input.Spec.Environment
	st.URL = StorefrontURL(o.Input)
	st.Components = nil
	ready := 0
	for _, comp := range o.Components {
		st.Components = append(st.Components, shopv1.ComponentStatus{Name: comp.Name, Kind: comp.Kind, Ready: comp.replicas()})
		if comp.IsReady() {
			ready++
		}
	}
	st.ReadyComponents = fmt.Sprintf("%d/%d", ready, len(o.Components))
	return st
}

// join joins the String of each item.
func join[T fmt.Stringer](items []T, sep string) string {
	s := make([]string, len(items))
	for i, item := range items {
		s[i] = item.String()
	}
	return strings.Join(s, sep)
}

func dependencies(c conditions, missing []string) {
	if len(missing) == 0 {
		c.set(shopv1.ConditionDependenciesAvailable, true, "Available", "every optional API the Shop uses is installed")
		return
	}
	c.set(shopv1.ConditionDependenciesAvailable, false, "APIsNotInstalled",
		"not installed: "+strings.Join(missing, "; ")+". The Shop runs without the objects of these APIs; install them to get them")
}

func references(c conditions, problems Problems) {
	if len(problems) == 0 {
		c.set(shopv1.ConditionReferencesResolved, true, "Resolved", "every referenced Secret exists and holds its keys")
		return
	}
	c.set(shopv1.ConditionReferencesResolved, false, ReasonSecretMissing, join(problems, "; "))
}

// ExporterConditions names the condition of each switchable exporter.
var ExporterConditions = map[string]string{
	"jaeger": shopv1.ConditionJaegerReady, "loki": shopv1.ConditionLokiReady,
	"datadog": shopv1.ConditionDatadogReady, "newrelic": shopv1.ConditionNewRelicReady,
}

// exporters sets one condition per exporter the Shop switches on (and
// removes it when switched off): configured, its Secret present, or why not.
func exporters(c conditions, in render.Input, problems Problems) {
	for _, e := range collector.Exporters(in) {
		t := ExporterConditions[e.Name]
		if !e.Enabled {
			c.remove(t)
			continue
		}
		if mine := problems.About(render.Exporter(e.Name)); len(mine) > 0 {
			c.set(t, false, ReasonSecretMissing, join(mine, "; ")+"; the other exporters keep working")
			continue
		}
		c.set(t, e.Rendered, e.Reason, e.Message)
	}
}

// monitoring reports whether the Shop's ServiceMonitors and rules exist.
func monitoring(c conditions, in render.Input) {
	p := in.Spec.Observability.Prometheus
	switch {
	case !ptr.Deref(p.ServiceMonitors, false) && !ptr.Deref(p.Rules, false):
		c.remove(shopv1.ConditionMonitoringReady)
	case !in.APIs.PrometheusOperator:
		c.set(shopv1.ConditionMonitoringReady, false, "PrometheusOperatorMissing",
			"the cluster does not serve monitoring.coreos.com/v1: install prometheus-operator to get ServiceMonitors and alerting rules")
	default:
		c.set(shopv1.ConditionMonitoringReady, true, "Applied", "ServiceMonitors and alerting rules are applied")
	}
}

// ReasonFaultsInjected: the pods applied fail on purpose.
const ReasonFaultsInjected = "FaultsInjected"

// faultInjection says, True, what the applied pods inject while they fail on
// purpose, and removes the condition otherwise. It is informational: a Shop
// injecting faults is still Ready (its children are what the spec asks for).
func faultInjection(c conditions, in render.Input) {
	faults := workloadsbuilder.Faults(in)
	if faults == "" {
		c.remove(shopv1.ConditionFaultInjection)
		return
	}
	c.set(shopv1.ConditionFaultInjection, true, ReasonFaultsInjected,
		faults+" (on purpose: spec.operations.faultInjection or workloads.payment.env; remove it to stop)")
}

// workloads sets DatabasesReady and WorkloadsReady and returns the
// components that are not ready yet, databases first.
func workloads(c conditions, components []Component, problems Problems) []Component {
	var waiting, dbWaiting []Component
	for _, comp := range components {
		switch {
		case comp.IsReady():
		case comp.Database:
			dbWaiting = append(dbWaiting, comp)
		default:
			waiting = append(waiting, comp)
		}
	}
	switch dbProblems := problems.In(render.AreaDatabase); {
	case len(dbProblems) > 0:
		c.set(shopv1.ConditionDatabasesReady, false, ReasonSecretMissing, join(dbProblems, "; "))
	case len(dbWaiting) > 0:
		c.set(shopv1.ConditionDatabasesReady, false, ReasonProgressing, "waiting for "+join(dbWaiting, ", "))
	default:
		c.set(shopv1.ConditionDatabasesReady, true, "Ready", "every database is ready")
	}
	if len(waiting) > 0 {
		c.set(shopv1.ConditionWorkloadsReady, false, ReasonProgressing, "waiting for "+join(waiting, ", "))
	} else {
		c.set(shopv1.ConditionWorkloadsReady, true, "Ready", "every workload is available")
	}
	return append(dbWaiting, waiting...)
}

// StorefrontURL is where shoppers reach the shop: the gateway's address
// when hosts are set, else the frontend Service inside the cluster.
func StorefrontURL(in render.Input) string {
	if u := mesh.StorefrontURL(in); u != "" {
		return u
	}
	return fmt.Sprintf("http://%s.%s.svc:%d", in.Name(render.Frontend), in.Shop.Namespace, render.HTTPPort)
}
