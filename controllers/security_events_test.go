package controllers

// The suite's API server has the third-party CRDs (see TestMain): the Shop
// here renders Istio's security objects.

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/engine"
	"github.com/shopplatform/shop-operator/internal/render"
)

// TestSecurityChangesAreEvents follows a Shop's security events: one per
// security-relevant child created; none when nothing changed; one per
// PeerAuthentication when the mTLS mode changes; a policy someone deleted
// twice is restored twice, and the repeat counts in the event's series; one
// per policy deleted when Istio is off.
func TestSecurityChangesAreEvents(t *testing.T) {
	ns := namespace(t)
	if err := k8s.Create(ctx, newShop(ns, "guard", shopv1.ShopSpec{})); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, ns, "guard", shopv1.ConditionMeshReady, metav1.ConditionTrue)

	// First reconcile: "created <Kind> <name>" for every security child.
	var want []string
	for gk := range securityKinds {
		for _, name := range childNames(t, ns, gk.Group, gk.Kind) {
			want = append(want, "created "+gk.Kind+" "+name)
		}
	}
	sort.Strings(want)
	for _, w := range []string{"created AuthorizationPolicy guard-payment", "created PeerAuthentication guard-auth",
		"created NetworkPolicy guard-orders-db", "created Secret guard-auth-signing-key", "created Gateway guard",
		"created Role guard-otel-collector", "created ServiceAccount guard-catalog"} {
		if !contains(want, w) {
			t.Fatalf("the Shop has no child for %q: the test's premise changed (children: %v)", w, want)
		}
	}
	eventually(t, "an event per security child created", func() (bool, string) {
		got := securityNotes(t, ns)
		return strings.Join(got, "\n") == strings.Join(want, "\n"), fmt.Sprintf("got %v, want %v", got, want)
	})

	// Nothing security-relevant changes: no event. The replicas change is
	// applied (the Deployment shows it) before the mTLS change below; any
	// stray security event from it would show up in the exact count there.
	update(t, ns, "guard", func(s *shopv1.Shop) { s.Spec.Workloads.Catalog.Replicas = ptr.To[int32](2) })
	waitCondition(t, ns, "guard", shopv1.ConditionMeshReady, metav1.ConditionTrue)

	// mTLS STRICT: every PeerAuthentication is configured.
	update(t, ns, "guard", func(s *shopv1.Shop) { s.Spec.Gateway.Istio.MTLSMode = shopv1.MTLSMode("STRICT") })
	var configured []string
	for _, name := range childNames(t, ns, "security.istio.io", "PeerAuthentication") {
		configured = append(configured, "configured PeerAuthentication "+name)
	}
	want2 := append(append([]string{}, want...), configured...)
	sort.Strings(want2)
	eventually(t, "an event per PeerAuthentication configured", func() (bool, string) {
		got := securityNotes(t, ns)
		return strings.Join(got, "\n") == strings.Join(want2, "\n"), fmt.Sprintf("got %v, want %v", got, want2)
	})

	// Someone deletes a policy, again and again: the operator restores it
	// and says so; a repeat while the Shop is unchanged (same resource
	// version) is counted in the event's series. The Shop's status may still
	// move between two restores, so up to five.
	const restored = "created NetworkPolicy guard-orders-db"
	series := func() *eventsv1.Event {
		for _, ev := range securityEvents(t, ns) {
			if ev.Note == restored && ev.Series != nil && ev.Series.Count >= 2 {
				return &ev
			}
		}
		return nil
	}
	occurrences := func() int {
		n := 0
		for _, note := range securityNotes(t, ns) {
			if note == restored {
				n++
			}
		}
		return n
	}
	for i := 0; i < 5 && series() == nil; i++ {
		before := occurrences()
		np := &networkingv1.NetworkPolicy{}
		mustGet(t, np, ns, "guard-orders-db")
		if err := k8s.Delete(ctx, np); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the NetworkPolicy restored and the event recorded", func() (bool, string) {
			again := &networkingv1.NetworkPolicy{}
			err := get(t, again, ns, "guard-orders-db")
			// A new event, or the previous one turned into a series.
			return err == nil && again.UID != np.UID && (occurrences() > before || series() != nil),
				fmt.Sprintf("%v; %d events %q", err, occurrences(), restored)
		})
	}
	ev := series()
	if ev == nil {
		t.Fatalf("five restores of the same policy made no event series: %v", securityNotes(t, ns))
	}
	if ev.Related == nil || ev.Related.Kind != "NetworkPolicy" || ev.Related.APIVersion != "networking.k8s.io/v1" {
		t.Errorf("related object %+v, want the NetworkPolicy", ev.Related)
	}

	// Istio off: its policies are pruned, one event each.
	policies := childNames(t, ns, "security.istio.io", "AuthorizationPolicy")
	update(t, ns, "guard", func(s *shopv1.Shop) { s.Spec.Gateway.Istio.Enabled = ptr.To(false) })
	eventually(t, "an event per AuthorizationPolicy deleted", func() (bool, string) {
		got := securityNotes(t, ns)
		var missing []string
		for _, name := range policies {
			if !contains(got, "deleted AuthorizationPolicy "+name) {
				missing = append(missing, name)
			}
		}
		return len(missing) == 0, fmt.Sprintf("no deletion event for %v", missing)
	})
	if ev := securityEvent(t, ns, "deleted AuthorizationPolicy guard-payment"); ev == nil || ev.Reason != ReasonSecurityObjectDeleted || ev.Action != "Delete" {
		t.Errorf("deletion event = %+v, want reason %s, action Delete", ev, ReasonSecurityObjectDeleted)
	}
	if ev := securityEvent(t, ns, "created Secret guard-auth-signing-key"); ev == nil || ev.Reason != ReasonSecurityObjectChanged ||
		ev.Regarding.Kind != "Shop" || ev.Regarding.Name != "guard" {
		t.Errorf("creation event = %+v, want reason %s regarding Shop guard", ev, ReasonSecurityObjectChanged)
	}
}

// childNames lists the names of the Shop's children of one kind.
func childNames(t *testing.T, ns, group, kind string) []string {
	t.Helper()
	var gv string
	for _, gvk := range append(kindsOfOptionalAPIs(), baseKinds...) {
		if gvk.Group == group && gvk.Kind == kind {
			gv = gvk.GroupVersion().String()
		}
	}
	if kind == "Secret" {
		gv = "v1"
	}
	list := &unstructured.UnstructuredList{}
	list.SetAPIVersion(gv)
	list.SetKind(kind + "List")
	if err := k8s.List(ctx, list, client.InNamespace(ns), client.MatchingLabels{render.LabelShop: "guard"}); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, item := range list.Items {
		names = append(names, item.GetName())
	}
	return names
}

func kindsOfOptionalAPIs() []schema.GroupVersionKind {
	var out []schema.GroupVersionKind
	for _, api := range engine.OptionalAPIs {
		out = append(out, api.Kinds...)
	}
	return out
}

// securityEvents lists the security events in ns.
func securityEvents(t *testing.T, ns string) []eventsv1.Event {
	t.Helper()
	list := &eventsv1.EventList{}
	if err := k8s.List(ctx, list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var out []eventsv1.Event
	for _, ev := range list.Items {
		if ev.Reason == ReasonSecurityObjectChanged || ev.Reason == ReasonSecurityObjectDeleted {
			out = append(out, ev)
		}
	}
	return out
}

// securityNotes returns the sorted messages of the security events in ns.
func securityNotes(t *testing.T, ns string) []string {
	t.Helper()
	var notes []string
	for _, ev := range securityEvents(t, ns) {
		notes = append(notes, ev.Note)
	}
	sort.Strings(notes)
	return notes
}

func securityEvent(t *testing.T, ns, note string) *eventsv1.Event {
	t.Helper()
	for _, ev := range securityEvents(t, ns) {
		if ev.Note == note {
			return &ev
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
