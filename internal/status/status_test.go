package status

import (
	"errors"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/builders/collector"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
)

// cond is one expected condition: status, reason and a message substring.
type cond struct {
	status  metav1.ConditionStatus
	reason  string
	message string
	gen     int64 // the condition's observedGeneration; 0: the observation's
}

const (
	T = metav1.ConditionTrue
	F = metav1.ConditionFalse
)

var earlier = metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))

// readyAt is the status of a Shop that was Ready at generation gen with
// components "frontend" (1/1) and "orders-db" (1/1).
func readyAt(gen int64) shopv1.ShopStatus {
	c := func(t string, s metav1.ConditionStatus, reason string) metav1.Condition {
		return metav1.Condition{Type: t, Status: s, Reason: reason, Message: "before", ObservedGeneration: gen, LastTransitionTime: earlier}
	}
	return shopv1.ShopStatus{
		ObservedGeneration: gen,
		Conditions: []metav1.Condition{
			c(shopv1.ConditionReady, T, ReasonSucceeded), c(shopv1.ConditionReconciling, F, ReasonSucceeded),
			c(shopv1.ConditionStalled, F, ReasonSucceeded), c(shopv1.ConditionWorkloadsReady, T, "Ready"),
			c(shopv1.ConditionDatabasesReady, T, "Ready"),
		},
		Environment:     shopv1.Development,
		URL:             "http://demo-frontend.shop.svc:8080",
		Components:      []shopv1.ComponentStatus{{Name: "frontend", Kind: "Deployment", Ready: "1/1"}, {Name: "orders-db", Kind: "StatefulSet", Ready: "1/1"}},
		ReadyComponents: "2/2",
	}
}

// stalledAt is a Shop refused at generation gen, after being Ready before.
func stalledAt(gen int64) shopv1.ShopStatus {
	st := readyAt(gen - 1)
	st.ObservedGeneration = gen
	for t, s := range map[string]metav1.ConditionStatus{shopv1.ConditionReady: F, shopv1.ConditionReconciling: F, shopv1.ConditionStalled: T} {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: t, Status: s, Reason: ReasonRenderFailed, Message: "refused", ObservedGeneration: gen})
	}
	return st
}

// faultySpec injects payment faults.
func faultySpec() shopv1.ShopSpec {
	spec := shopv1.ShopSpec{}
	spec.Operations.FaultInjection.Payment = &shopv1.PaymentFaultSpec{
		ErrorPercent: ptr.To[int32](50), Latency: &metav1.Duration{Duration: 200 * time.Millisecond},
	}
	return spec
}

// faultyAt is a Shop Ready at generation gen while injecting faults.
func faultyAt(gen int64) shopv1.ShopStatus {
	return Finalize(readyAt(gen-1), &Observation{Generation: gen, Reached: Observed,
		Input: input(faultySpec(), gen), Components: []Component{frontendReady, ordersDBReady}})
}

func input(spec shopv1.ShopSpec, gen int64) render.Input {
	shop := rendertest.Shop(spec)
	shop.Generation = gen
	return rendertest.InputFor(shop, render.APIs{})
}

// observed is a reconcile of generation gen that got to the end.
func observed(gen int64, components ...Component) *Observation {
	return &Observation{Generation: gen, Reached: Observed, Input: input(shopv1.ShopSpec{}, gen), Components: components}
}

var (
	frontendReady   = Component{Name: "frontend", Kind: "Deployment", Ready: 1, Total: 1}
	frontendRolling = Component{Name: "frontend", Kind: "Deployment", Ready: 0, Total: 2}
	ordersDBReady   = Component{Name: "orders-db", Kind: "StatefulSet", Database: true, Ready: 1, Total: 1}
	ordersDBWaiting = Component{Name: "orders-db", Kind: "StatefulSet", Database: true, Ready: 0, Total: 1}
	scaledToZero    = Component{Name: "payment", Kind: "Deployment", Ready: 0, Total: 0}
	ordersCrashing  = Component{Name: "orders", Kind: "Deployment", Ready: 0, Total: 1,
		Why: "pod staging-orders-6f7c-x2: container orders CrashLoopBackOff: back-off 40s restarting failed container=orders"}
	ordersDBPending = Component{Name: "orders-db", Kind: "StatefulSet", Database: true, Ready: 0, Total: 1,
		Why: "pod staging-orders-db-0: unschedulable: 0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims."}

	ordersSecretMissing = Problem{Kind: SecretNotFound, Subject: render.DatabaseOf("orders"), Secret: "orders-pg", Blocking: true}
	datadogKeyMissing   = Problem{Kind: SecretKeyMissing, Subject: render.Exporter("datadog"), Secret: "dd", Key: "api-key"}
	bucketMissing       = Problem{Kind: SecretNotFound, Subject: render.BackupUploadOf("orders"), Secret: "orders-bucket"}
	adminKeyMissing     = Problem{Kind: SecretKeyMissing, Subject: render.AdminAccount, Secret: "shop-admin", Key: "password"}

	refused = errors.New(`rendering backups: databases.orders.managed.backup.schedule: schedule "0 0 30 2 *" never runs twice`)
)

func with(o *Observation, change func(*Observation)) *Observation {
	change(o)
	return o
}

// TestFinalize walks the status transitions: each case is the status before,
// what one reconcile observed, and the summary conditions, observedGeneration
// and components after (cert-manager's readiness chain tests are the model).
func TestFinalize(t *testing.T) {
	cases := []struct {
		name string
		prev shopv1.ShopStatus
		obs  *Observation

		ready, reconciling, stalled cond
		others                      map[string]cond // other conditions; a zero cond: absent
		observedGeneration          int64
		readyComponents             string
		components                  int
		lastTransitionKept          bool // Ready's lastTransitionTime is the previous one
	}{
		{
			name: "first reconcile, everything ready", obs: observed(1, frontendReady, ordersDBReady),
			ready: cond{T, ReasonSucceeded, "all 2 components are ready", 0}, reconciling: cond{F, ReasonSucceeded, "match the spec", 0},
			stalled: cond{F, ReasonSucceeded, "nothing is blocked", 0},
			others: map[string]cond{
				shopv1.ConditionWorkloadsReady: {T, "Ready", "", 0}, shopv1.ConditionDatabasesReady: {T, "Ready", "", 0},
				shopv1.ConditionReferencesResolved: {T, "Resolved", "", 0}, shopv1.ConditionDependenciesAvailable: {T, "Available", "", 0},
				shopv1.ConditionMeshReady:       {F, "IstioNotInstalled", "NetworkPolicies", 0}, // no Istio here
				shopv1.ConditionMonitoringReady: {F, "PrometheusOperatorMissing", "", 0},
			},
			observedGeneration: 1, readyComponents: "2/2", components: 2,
		},
		{
			name: "rolling out: databases are named first", obs: observed(1, frontendRolling, ordersDBWaiting),
			ready:       cond{F, ReasonProgressing, "waiting for orders-db 0/1, frontend 0/2", 0},
			reconciling: cond{T, ReasonProgressing, "waiting for orders-db 0/1, frontend 0/2", 0},
			stalled:     cond{F, ReasonProgressing, "making progress", 0},
			others: map[string]cond{
				shopv1.ConditionWorkloadsReady: {F, ReasonProgressing, "waiting for frontend 0/2", 0},
				shopv1.ConditionDatabasesReady: {F, ReasonProgressing, "waiting for orders-db 0/1", 0},
			},
			observedGeneration: 1, readyComponents: "0/2", components: 2,
		},
		{
			name: "why a workload waits, in the kubelet's words", obs: observed(1, ordersCrashing, ordersDBPending),
			ready:       cond{F, ReasonProgressing, "waiting for orders-db 0/1 (pod staging-orders-db-0: unschedulable: ", 0},
			reconciling: cond{T, ReasonProgressing, "orders 0/1 (pod staging-orders-6f7c-x2: container orders CrashLoopBackOff: back-off 40s", 0},
			stalled:     cond{F, ReasonProgressing, "making progress", 0},
			others: map[string]cond{
				shopv1.ConditionWorkloadsReady: {F, ReasonProgressing, "waiting for orders 0/1 (pod staging-orders-6f7c-x2: container orders CrashLoopBackOff", 0},
				shopv1.ConditionDatabasesReady: {F, ReasonProgressing, "waiting for orders-db 0/1 (pod staging-orders-db-0: unschedulable: 0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims.)", 0},
			},
			observedGeneration: 1, readyComponents: "0/2", components: 2,
		},
		{
			name: "a workload scaled to zero is not ready", obs: observed(1, frontendReady, scaledToZero),
			ready: cond{F, ReasonProgressing, "payment 0/0", 0}, reconciling: cond{T, ReasonProgressing, "payment 0/0", 0},
			stalled: cond{F, ReasonProgressing, "", 0}, observedGeneration: 1, readyComponents: "1/2", components: 2,
		},
		{
			name: "still ready at the next generation: lastTransitionTime kept", prev: readyAt(1), obs: observed(2, frontendReady, ordersDBReady),
			ready: cond{T, ReasonSucceeded, "", 0}, reconciling: cond{F, ReasonSucceeded, "", 0}, stalled: cond{F, ReasonSucceeded, "", 0},
			observedGeneration: 2, readyComponents: "2/2", components: 2, lastTransitionKept: true,
		},
		{
			name: "a database's Secret is missing: stalled, and says which", prev: readyAt(1),
			obs:         with(observed(2, frontendReady), func(o *Observation) { o.Problems = Problems{ordersSecretMissing} }),
			ready:       cond{F, ReasonSecretMissing, `orders database: Secret "orders-pg" not found (create it; the Shop retries on its own)`, 0},
			reconciling: cond{F, ReasonSecretMissing, "orders-pg", 0}, stalled: cond{T, ReasonSecretMissing, "orders-pg", 0},
			others: map[string]cond{
				shopv1.ConditionDatabasesReady:     {F, ReasonSecretMissing, `orders database: Secret "orders-pg" not found`, 0},
				shopv1.ConditionReferencesResolved: {F, ReasonSecretMissing, `orders database: Secret "orders-pg" not found`, 0},
			},
			observedGeneration: 2, readyComponents: "1/1", components: 1,
		},
		{
			name: "an exporter's or a bucket's Secret is missing: still ready, each said where it belongs",
			obs: with(observed(1, frontendReady), func(o *Observation) {
				o.Input = input(shopv1.ShopSpec{Observability: shopv1.ObservabilitySpec{Datadog: shopv1.DatadogSpec{
					Enabled: ptr.To(true), APIKeySecretRef: &shopv1.SecretKeyRef{Name: "dd", Key: "api-key"}}}}, 1)
				o.Problems = Problems{datadogKeyMissing, bucketMissing}
			}),
			ready: cond{T, ReasonSucceeded, "", 0}, reconciling: cond{F, ReasonSucceeded, "", 0}, stalled: cond{F, ReasonSucceeded, "", 0},
			others: map[string]cond{
				shopv1.ConditionDatadogReady: {F, ReasonSecretMissing, `datadog exporter: Secret "dd" has no key "api-key"; the other exporters keep working`, 0},
				shopv1.ConditionReferencesResolved: {F, ReasonSecretMissing,
					`datadog exporter: Secret "dd" has no key "api-key"; orders backup upload: Secret "orders-bucket" not found`, 0},
				shopv1.ConditionDatabasesReady: {T, "Ready", "", 0},
				shopv1.ConditionNewRelicReady:  {}, // switched off: no condition
			},
			observedGeneration: 1, readyComponents: "1/1", components: 1,
		},
		{
			name: "the admin's Secret lacks a key: still ready (Ready never flips), said in ReferencesResolved", prev: readyAt(1),
			obs:   with(observed(2, frontendReady), func(o *Observation) { o.Problems = Problems{adminKeyMissing} }),
			ready: cond{T, ReasonSucceeded, "", 0}, reconciling: cond{F, ReasonSucceeded, "", 0}, stalled: cond{F, ReasonSucceeded, "", 0},
			others: map[string]cond{
				shopv1.ConditionReferencesResolved: {F, ReasonSecretMissing, `admin account: Secret "shop-admin" has no key "password"`, 0},
				shopv1.ConditionDatabasesReady:     {T, "Ready", "", 0},
			},
			observedGeneration: 2, readyComponents: "1/1", components: 1, lastTransitionKept: true,
		},
		{
			name: "refused after Ready: stalled for the new generation, the last components kept", prev: readyAt(1),
			obs:         &Observation{Generation: 2, Reached: Referenced, Input: input(shopv1.ShopSpec{}, 2), MissingAPIs: []string{"Istio"}, Refused: refused},
			ready:       cond{F, ReasonRenderFailed, "never runs twice (nothing was applied: change the spec)", 0},
			reconciling: cond{F, ReasonRenderFailed, "never runs twice", 0}, stalled: cond{T, ReasonRenderFailed, "never runs twice", 0},
			others: map[string]cond{
				shopv1.ConditionReferencesResolved:    {T, "Resolved", "", 0},
				shopv1.ConditionDependenciesAvailable: {F, "APIsNotInstalled", "not installed: Istio", 0},
				// Not observed at generation 2: as they were.
				shopv1.ConditionWorkloadsReady: {T, "Ready", "before", 1},
			},
			observedGeneration: 2, readyComponents: "2/2", components: 2,
		},
		{
			name: "refused at the first generation", obs: &Observation{Generation: 1, Reached: Referenced, Input: input(shopv1.ShopSpec{}, 1), Refused: refused},
			ready: cond{F, ReasonRenderFailed, "never runs twice", 0}, reconciling: cond{F, ReasonRenderFailed, "", 0}, stalled: cond{T, ReasonRenderFailed, "", 0},
			others:             map[string]cond{shopv1.ConditionWorkloadsReady: {}},
			observedGeneration: 1, readyComponents: "", components: 0,
		},
		{
			name: "refused spec fixed: ready again", prev: stalledAt(2), obs: observed(3, frontendReady, ordersDBReady),
			ready: cond{T, ReasonSucceeded, "", 0}, reconciling: cond{F, ReasonSucceeded, "", 0}, stalled: cond{F, ReasonSucceeded, "", 0},
			observedGeneration: 3, readyComponents: "2/2", components: 2,
		},
		{
			name: "a transient error: retrying, the generation not processed", prev: readyAt(1),
			obs:         &Observation{Generation: 2, Reached: Referenced, Input: input(shopv1.ShopSpec{}, 2), Failure: errors.New("applying children: connection refused")},
			ready:       cond{F, ReasonReconcileFailed, "applying children: connection refused", 0},
			reconciling: cond{T, ReasonReconcileFailed, "retrying: applying children", 0},
			stalled:     cond{F, ReasonReconcileFailed, "retrying", 0},
			others: map[string]cond{
				shopv1.ConditionReferencesResolved: {T, "Resolved", "", 0}, // observed before the error
				shopv1.ConditionWorkloadsReady:     {T, "Ready", "before", 1},
			},
			observedGeneration: 1, readyComponents: "2/2", components: 2,
		},
		{
			name: "an error before anything was observed", prev: readyAt(1),
			obs:   &Observation{Generation: 2, Failure: errors.New("discovering optional APIs: timeout")},
			ready: cond{F, ReasonReconcileFailed, "discovering", 0}, reconciling: cond{T, ReasonReconcileFailed, "", 0}, stalled: cond{F, ReasonReconcileFailed, "", 0},
			others:             map[string]cond{shopv1.ConditionDependenciesAvailable: {}},
			observedGeneration: 1, readyComponents: "2/2", components: 2,
		},
		{
			name: "an error after a refused generation stops saying Stalled", prev: stalledAt(2),
			obs:   &Observation{Generation: 3, Failure: errors.New("reading Secret x: timeout")},
			ready: cond{F, ReasonReconcileFailed, "", 0}, reconciling: cond{T, ReasonReconcileFailed, "", 0}, stalled: cond{F, ReasonReconcileFailed, "", 0},
			observedGeneration: 2, readyComponents: "2/2", components: 2,
		},
		{
			name: "paused: only Reconciling changes", prev: readyAt(1), obs: &Observation{Generation: 2, Paused: true},
			ready: cond{T, ReasonSucceeded, "before", 1}, reconciling: cond{F, ReasonPaused, "spec.paused is true", 0}, stalled: cond{F, ReasonSucceeded, "before", 1},
			observedGeneration: 1, readyComponents: "2/2", components: 2, lastTransitionKept: true,
		},
		{
			name: "fault injection on: said in FaultInjection, still Ready", prev: readyAt(1),
			obs: with(observed(2, frontendReady, ordersDBReady), func(o *Observation) {
				o.Input = input(faultySpec(), 2)
			}),
			ready: cond{T, ReasonSucceeded, "all 2 components are ready", 0}, reconciling: cond{F, ReasonSucceeded, "", 0}, stalled: cond{F, ReasonSucceeded, "", 0},
			others: map[string]cond{
				shopv1.ConditionFaultInjection: {T, ReasonFaultsInjected, "payment: error ratio 0.5, added latency 200ms (on purpose", 0},
			},
			observedGeneration: 2, readyComponents: "2/2", components: 2, lastTransitionKept: true,
		},
		{
			name: "fault injection switched off: the condition goes", prev: faultyAt(2), obs: observed(3, frontendReady, ordersDBReady),
			ready: cond{T, ReasonSucceeded, "", 0}, reconciling: cond{F, ReasonSucceeded, "", 0}, stalled: cond{F, ReasonSucceeded, "", 0},
			others:             map[string]cond{shopv1.ConditionFaultInjection: {}},
			observedGeneration: 3, readyComponents: "2/2", components: 2, lastTransitionKept: true,
		},
		{
			name: "fault injection switched off in a refused spec: the pods still inject, the condition stays", prev: faultyAt(2),
			obs:   &Observation{Generation: 3, Reached: Referenced, Input: input(shopv1.ShopSpec{}, 3), Refused: refused},
			ready: cond{F, ReasonRenderFailed, "", 0}, reconciling: cond{F, ReasonRenderFailed, "", 0}, stalled: cond{T, ReasonRenderFailed, "", 0},
			others: map[string]cond{
				shopv1.ConditionFaultInjection: {T, ReasonFaultsInjected, "payment: error ratio 0.5", 2},
			},
			observedGeneration: 3, readyComponents: "2/2", components: 2,
		},
		{
			name: "a reconcile that ends without observing is reported, not Ready", prev: readyAt(1),
			obs:   &Observation{Generation: 2, Reached: Referenced, Input: input(shopv1.ShopSpec{}, 2)},
			ready: cond{F, ReasonReconcileFailed, "ended before observing", 0}, reconciling: cond{T, ReasonReconcileFailed, "", 0}, stalled: cond{F, ReasonReconcileFailed, "", 0},
			observedGeneration: 1, readyComponents: "2/2", components: 2,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Finalize(tc.prev, tc.obs)
			want := map[string]cond{shopv1.ConditionReady: tc.ready, shopv1.ConditionReconciling: tc.reconciling, shopv1.ConditionStalled: tc.stalled}
			for k, v := range tc.others {
				want[k] = v
			}
			for typ, w := range want {
				c := meta.FindStatusCondition(got.Conditions, typ)
				if w.status == "" {
					if c != nil {
						t.Errorf("%s = %s %s, want none", typ, c.Status, c.Reason)
					}
					continue
				}
				if c == nil {
					t.Errorf("%s missing, want %s %s", typ, w.status, w.reason)
					continue
				}
				gen := w.gen
				if gen == 0 {
					gen = tc.obs.Generation
				}
				if c.Status != w.status || c.Reason != w.reason || !strings.Contains(c.Message, w.message) || c.ObservedGeneration != gen {
					t.Errorf("%s = %s %s %q (generation %d), want %s %s containing %q (generation %d)",
						typ, c.Status, c.Reason, c.Message, c.ObservedGeneration, w.status, w.reason, w.message, gen)
				}
			}
			if got.ObservedGeneration != tc.observedGeneration {
				t.Errorf("observedGeneration = %d, want %d", got.ObservedGeneration, tc.observedGeneration)
			}
			if got.ReadyComponents != tc.readyComponents || len(got.Components) != tc.components {
				t.Errorf("components %v (%q), want %d (%q)", got.Components, got.ReadyComponents, tc.components, tc.readyComponents)
			}
			if ready := meta.FindStatusCondition(got.Conditions, shopv1.ConditionReady); tc.lastTransitionKept != ready.LastTransitionTime.Equal(&earlier) {
				t.Errorf("Ready's lastTransitionTime %v, kept %v: want kept %v", ready.LastTransitionTime, ready.LastTransitionTime.Equal(&earlier), tc.lastTransitionKept)
			}
			if tc.prev.Conditions != nil && &got.Conditions[0] == &tc.prev.Conditions[0] {
				t.Error("Finalize changed the previous status in place")
			}
		})
	}
}

// Every switchable exporter has a condition name in the API.
func TestExporterConditions(t *testing.T) {
	in := input(shopv1.ShopSpec{}, 1)
	for _, e := range collector.Exporters(in) {
		if ExporterConditions[e.Name] == "" {
			t.Errorf("exporter %s has no condition", e.Name)
		}
	}
}

func TestProblemMessages(t *testing.T) {
	for p, want := range map[Problem]string{
		ordersSecretMissing: `orders database: Secret "orders-pg" not found`,
		datadogKeyMissing:   `datadog exporter: Secret "dd" has no key "api-key"`,
		bucketMissing:       `orders backup upload: Secret "orders-bucket" not found`,
		{Kind: SecretNotFound, Subject: render.AlertRouting, Secret: "slack"}: `alert routing: Secret "slack" not found`,
		adminKeyMissing: `admin account: Secret "shop-admin" has no key "password"`,
		{Kind: SecretNotFound, Subject: render.AdminAccount, Secret: "shop-admin"}: `admin account: Secret "shop-admin" not found`,
	} {
		if got := p.String(); got != want {
			t.Errorf("%+v: %q, want %q", p, got, want)
		}
	}
	ps := Problems{ordersSecretMissing, datadogKeyMissing, bucketMissing, adminKeyMissing}
	if b := ps.Blocking(); len(b) != 1 || b[0] != ordersSecretMissing {
		t.Errorf("Blocking = %v", b)
	}
	if d := ps.About(render.Exporter("datadog")); len(d) != 1 || d[0] != datadogKeyMissing {
		t.Errorf("About(datadog) = %v", d)
	}
	if d := ps.In(render.AreaBackupUpload); len(d) != 1 || d[0] != bucketMissing {
		t.Errorf("In(backup upload) = %v", d)
	}
	if d := ps.About(render.AdminAccount); len(d) != 1 || d[0] != adminKeyMissing {
		t.Errorf("About(admin) = %v", d)
	}
}
