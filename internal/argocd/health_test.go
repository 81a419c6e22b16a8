package argocd

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	configargocd "github.com/shopplatform/shop-operator/config/argocd"
)

func cond(t string, s metav1.ConditionStatus, reason, msg string) metav1.Condition {
	return metav1.Condition{Type: t, Status: s, Reason: reason, Message: msg}
}

// shop is a Shop at generation 3 with the given status, in the unstructured
// form Argo CD hands to the script.
func shop(t testing.TB, paused bool, status *shopv1.ShopStatus) map[string]any {
	t.Helper()
	s := &shopv1.Shop{
		TypeMeta:   metav1.TypeMeta{APIVersion: shopv1.GroupVersion.String(), Kind: "Shop"},
		ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: "shop", Generation: 3},
		Spec:       shopv1.ShopSpec{Paused: paused},
	}
	if status != nil {
		s.Status = *status
	}
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(s)
	if err != nil {
		t.Fatal(err)
	}
	if status == nil {
		delete(u, "status")
	}
	return u
}

var (
	ready          = cond(shopv1.ConditionReady, metav1.ConditionTrue, "Succeeded", "all 9 components are ready")
	notReady       = cond(shopv1.ConditionReady, metav1.ConditionFalse, "Progressing", "waiting for orders 0/2")
	reconciling    = cond(shopv1.ConditionReconciling, metav1.ConditionTrue, "Progressing", "waiting for orders 0/2")
	notReconciling = cond(shopv1.ConditionReconciling, metav1.ConditionFalse, "Succeeded", "the children match the spec")
	stalled        = cond(shopv1.ConditionStalled, metav1.ConditionTrue, "SecretMissing", "Secret orders-db (databases.orders.external) not found")
	notStalled     = cond(shopv1.ConditionStalled, metav1.ConditionFalse, "Succeeded", "nothing is blocked")

	refusedMessage     = `rendering backups: databases.orders.managed.backup.schedule: schedule "0 0 30 2 *" never runs twice (nothing was applied: change the spec)`
	refused            = cond(shopv1.ConditionStalled, metav1.ConditionTrue, "RenderFailed", refusedMessage)
	refusedReady       = cond(shopv1.ConditionReady, metav1.ConditionFalse, "RenderFailed", refusedMessage)
	refusedReconciling = cond(shopv1.ConditionReconciling, metav1.ConditionFalse, "RenderFailed", refusedMessage)
)

func TestShopHealth(t *testing.T) {
	at := func(gen int64, cs ...metav1.Condition) *shopv1.ShopStatus {
		return &shopv1.ShopStatus{ObservedGeneration: gen, Conditions: cs}
	}
	cases := []struct {
		name    string
		obj     map[string]any
		status  string
		message string // substring
	}{
		{"no status yet", shop(t, false, nil), Progressing, "Waiting for the shop-operator"},
		{"status without observedGeneration", shop(t, false, at(0, ready)), Progressing, "Waiting for the shop-operator"},
		{"ready at the current generation", shop(t, false, at(3, ready, notReconciling, notStalled)), Healthy, "all 9 components are ready"},
		{"ready for an older generation", shop(t, false, at(2, ready, notReconciling, notStalled)), Progressing, "observe generation 3 (status is for generation 2)"},
		{"stalled for an older generation", shop(t, false, at(2, notReady, stalled)), Progressing, "observe generation 3"},
		{"reconciling", shop(t, false, at(3, notReady, reconciling, notStalled)), Progressing, "waiting for orders 0/2"},
		{"stalled", shop(t, false, at(3, cond(shopv1.ConditionReady, metav1.ConditionFalse, "SecretMissing", "x"), stalled)), Degraded, "Secret orders-db (databases.orders.external) not found"},
		{"stalled without a message", shop(t, false, at(3, cond(shopv1.ConditionStalled, metav1.ConditionTrue, "Failed", ""))), Degraded, "The Shop is stalled"},
		{"stalled wins over a stale Ready", shop(t, false, at(3, ready, stalled)), Degraded, "not found"},
		// A spec the API server accepts and a builder refuses, as the operator reports it.
		{"refused spec", shop(t, false, at(3, refusedReady, refusedReconciling, refused)), Degraded, "never runs twice"},
		{"not ready, nothing reconciling", shop(t, false, at(3, notReady, notReconciling)), Progressing, "waiting for orders 0/2"},
		{"no conditions", shop(t, false, at(3)), Progressing, "Waiting for the Shop to become ready"},
		{"paused", shop(t, true, at(3, ready)), Suspended, "paused"},
		{"paused before any status", shop(t, true, nil), Suspended, "paused"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h, err := ShopHealth(tc.obj)
			if err != nil {
				t.Fatal(err)
			}
			if h.Status != tc.status || !strings.Contains(h.Message, tc.message) {
				t.Errorf("got %s %q, want %s containing %q", h.Status, h.Message, tc.status, tc.message)
			}
		})
	}
}

// The script sees a YAML fixture the way Argo CD sees the live object
// (numbers decoded from JSON as int64/float64).
func TestShopHealthFromYAML(t *testing.T) {
	const fixture = `
apiVersion: commerce.shopplatform.io/v1alpha1
kind: Shop
metadata: {name: prod, namespace: shop, generation: 7}
spec: {environment: production}
status:
  observedGeneration: 7
  conditions:
  - {type: Ready, status: "True", reason: Succeeded, message: all 14 components are ready}
  - {type: Reconciling, status: "False", reason: Succeeded, message: the children match the spec}
  - {type: Stalled, status: "False", reason: Succeeded, message: nothing is blocked}
`
	var obj map[string]any
	if err := yaml.Unmarshal([]byte(fixture), &obj); err != nil {
		t.Fatal(err)
	}
	h, err := ShopHealth(obj)
	if err != nil {
		t.Fatal(err)
	}
	if h.Status != Healthy {
		t.Errorf("got %+v, want Healthy", h)
	}
}

// Argo CD returns Unknown for a code it does not know, and an error for a
// script that does not return a table.
func TestEvaluateConvention(t *testing.T) {
	h, err := Evaluate(`return {status = "Fine"}`, map[string]any{})
	if err != nil || h.Status != Unknown {
		t.Errorf("unknown code: got %+v, %v", h, err)
	}
	if _, err := Evaluate(`return "Healthy"`, map[string]any{}); err == nil {
		t.Error("a string return value was accepted")
	}
	// Argo CD does not load the string library.
	if _, err := Evaluate(`return {status = string.upper("healthy")}`, map[string]any{}); err == nil {
		t.Error("the string library is loaded, Argo CD does not load it")
	}
}

// The argocd-cm patch carries the very script that is tested here.
func TestConfigMapPatchCarriesTheScript(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "argocd", "argocd-cm-patch.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(raw, &cm); err != nil {
		t.Fatal(err)
	}
	if cm.Name != "argocd-cm" || cm.Namespace != "argocd" {
		t.Errorf("patch targets %s/%s, want argocd/argocd-cm", cm.Namespace, cm.Name)
	}
	if got := cm.Data[HealthKey]; got != configargocd.HealthLua {
		t.Errorf("argocd-cm-patch.yaml's %s differs from config/argocd/health.lua: copy health.lua into it", HealthKey)
	}
}

// Argo CD runs the script for every Shop on every refresh of the app.
func BenchmarkShopHealth(b *testing.B) {
	obj := shop(b, false, &shopv1.ShopStatus{ObservedGeneration: 3, Conditions: []metav1.Condition{ready, notReconciling, notStalled}})
	b.ReportAllocs()
	for b.Loop() {
		if h, err := ShopHealth(obj); err != nil || h.Status != Healthy {
			b.Fatal(h, err)
		}
	}
}
