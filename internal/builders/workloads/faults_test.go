package workloads_test

import (
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/builders/workloads"
	"github.com/shopplatform/shop-operator/internal/buildertest"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
)

func faulty(pct int32, latency time.Duration) shopv1.ShopSpec {
	spec := shopv1.ShopSpec{Environment: shopv1.Testing}
	spec.Operations.FaultInjection.Payment = &shopv1.PaymentFaultSpec{ErrorPercent: ptr.To(pct), Latency: &metav1.Duration{Duration: latency}}
	return spec
}

func TestFaultInjectionOffByDefault(t *testing.T) {
	for _, v := range buildertest.Environments() {
		objs := build(t, v.Input)
		for _, svc := range render.Services {
			vars, _ := containerEnv(t, find(objs, "Deployment", "demo-"+svc))
			for _, name := range []string{workloads.EnvPaymentFaultErrorRatio, workloads.EnvPaymentFaultLatency} {
				if _, ok := vars[name]; ok {
					t.Errorf("%s: %s renders %s without spec.operations.faultInjection", v.Name, svc, name)
				}
			}
		}
		if got := workloads.Faults(v.Input); got != "" {
			t.Errorf("%s: Faults = %q, want none", v.Name, got)
		}
	}
}

func TestFaultInjectionRendersOnPaymentOnly(t *testing.T) {
	in := rendertest.Input(faulty(35, 1500*time.Millisecond))
	objs := build(t, in)
	vars, _ := containerEnv(t, find(objs, "Deployment", "demo-payment"))
	if got := vars[workloads.EnvPaymentFaultErrorRatio]["value"]; got != "0.35" {
		t.Errorf("%s = %v, want 0.35", workloads.EnvPaymentFaultErrorRatio, got)
	}
	if got := vars[workloads.EnvPaymentFaultLatency]["value"]; got != "1.5s" {
		t.Errorf("%s = %v, want 1.5s (a Go duration, as the service parses it)", workloads.EnvPaymentFaultLatency, got)
	}
	for _, svc := range render.Services {
		if svc == render.Payment {
			continue
		}
		other, _ := containerEnv(t, find(objs, "Deployment", "demo-"+svc))
		if _, ok := other[workloads.EnvPaymentFaultErrorRatio]; ok {
			t.Errorf("%s renders %s", svc, workloads.EnvPaymentFaultErrorRatio)
		}
	}
	if got, want := workloads.Faults(in), "payment: error ratio 0.35, added latency 1.5s"; got != want {
		t.Errorf("Faults = %q, want %q", got, want)
	}

	// The pods read it at start: switching it on must change the pod template.
	off := find(build(t, rendertest.Input(shopv1.ShopSpec{Environment: shopv1.Testing})), "Deployment", "demo-payment")
	if equalTemplates(t, off, find(objs, "Deployment", "demo-payment")) {
		t.Error("the payment pod template is the same with and without fault injection: the pods would not roll")
	}

	// A whole error ratio and only one of the two.
	vars, _ = containerEnv(t, find(build(t, rendertest.Input(faulty(100, 0))), "Deployment", "demo-payment"))
	if got := vars[workloads.EnvPaymentFaultErrorRatio]["value"]; got != "1" {
		t.Errorf("100%%: %s = %v, want 1", workloads.EnvPaymentFaultErrorRatio, got)
	}
	if _, ok := vars[workloads.EnvPaymentFaultLatency]; ok {
		t.Errorf("latency 0 renders %s", workloads.EnvPaymentFaultLatency)
	}
	// Zero everywhere is off.
	if got := workloads.Faults(rendertest.Input(faulty(0, 0))); got != "" {
		t.Errorf("0%% and 0s: Faults = %q, want none", got)
	}
}

// TestFaultInjectionUserEnvWins: a variable of the same name in
// workloads.payment.env replaces the field's, as for every other variable,
// and the condition reports what the pods really get.
func TestFaultInjectionUserEnvWins(t *testing.T) {
	spec := faulty(50, 0)
	spec.Workloads.Payment.Env = []corev1.EnvVar{{Name: workloads.EnvPaymentFaultErrorRatio, Value: "0.1"}}
	in := rendertest.Input(spec)
	vars, names := containerEnv(t, find(build(t, in), "Deployment", "demo-payment"))
	if got := vars[workloads.EnvPaymentFaultErrorRatio]["value"]; got != "0.1" {
		t.Errorf("%s = %v, want the user's 0.1", workloads.EnvPaymentFaultErrorRatio, got)
	}
	n := 0
	for _, name := range names {
		if name == workloads.EnvPaymentFaultErrorRatio {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%s appears %d times, want once", workloads.EnvPaymentFaultErrorRatio, n)
	}
	if got, want := workloads.Faults(in), "payment: error ratio 0.1"; got != want {
		t.Errorf("Faults = %q, want %q", got, want)
	}

	// Hand-set without the field, the pods fail on purpose too: say so.
	hand := shopv1.ShopSpec{}
	hand.Workloads.Payment.Env = []corev1.EnvVar{
		{Name: workloads.EnvPaymentFaultLatency, Value: "250ms"},
		{Name: workloads.EnvPaymentFaultErrorRatio, ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "faults"}, Key: "ratio"}}},
	}
	if got, want := workloads.Faults(rendertest.Input(hand)), "payment: added latency 250ms, error ratio from PAYMENT_FAULT_ERROR_RATIO (workloads.payment.env)"; got != want {
		t.Errorf("hand-set: Faults = %q, want %q", got, want)
	}
	// The user's own zero switches the field's fault off.
	spec.Workloads.Payment.Env = []corev1.EnvVar{{Name: workloads.EnvPaymentFaultErrorRatio, Value: "0"}}
	if got := workloads.Faults(rendertest.Input(spec)); got != "" {
		t.Errorf("user's 0: Faults = %q, want none", got)
	}
}

func equalTemplates(t *testing.T, a, b *unstructured.Unstructured) bool {
	t.Helper()
	ta, _, _ := unstructured.NestedMap(a.Object, "spec", "template")
	tb, _, _ := unstructured.NestedMap(b.Object, "spec", "template")
	return reflect.DeepEqual(ta, tb)
}
