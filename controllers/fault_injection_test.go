package controllers

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/argocd"
	"github.com/shopplatform/shop-operator/internal/builders/workloads"
)

// paymentEnv returns the payment container's env by name.
func paymentEnv(t *testing.T, ns, shop string) map[string]corev1.EnvVar {
	t.Helper()
	d := &appsv1.Deployment{}
	mustGet(t, d, ns, shop+"-payment")
	out := map[string]corev1.EnvVar{}
	for _, v := range d.Spec.Template.Spec.Containers[0].Env {
		out[v.Name] = v
	}
	return out
}

// TestFaultInjectionIsShownAndKeepsTheShopReady switches payment faults on
// through the Shop: the payment pods get the variables, the Shop says so in
// FaultInjection and stays Ready (kstatus Current, Argo CD Healthy); off
// again, both go.
func TestFaultInjectionIsShownAndKeepsTheShopReady(t *testing.T) {
	ns := namespace(t)
	spec := shopv1.ShopSpec{Environment: shopv1.Testing}
	spec.Operations.FaultInjection.Payment = &shopv1.PaymentFaultSpec{
		ErrorPercent: ptr.To[int32](100), Latency: &metav1.Duration{Duration: 250 * time.Millisecond},
	}
	if err := k8s.Create(ctx, newShop(ns, "faulty", spec)); err != nil {
		t.Fatal(err)
	}
	markWorkloadsReady(t, ns, "faulty")
	s := waitCondition(t, ns, "faulty", shopv1.ConditionReady, metav1.ConditionTrue)
	st, reason, msg := condition(s, shopv1.ConditionFaultInjection)
	if st != metav1.ConditionTrue || !strings.Contains(msg, "payment: error ratio 1, added latency 250ms") {
		t.Errorf("FaultInjection = %s %s %q, want True naming the error ratio and latency", st, reason, msg)
	}
	env := paymentEnv(t, ns, "faulty")
	if env[workloads.EnvPaymentFaultErrorRatio].Value != "1" || env[workloads.EnvPaymentFaultLatency].Value != "250ms" {
		t.Errorf("payment env %v, %v; want 1 and 250ms", env[workloads.EnvPaymentFaultErrorRatio], env[workloads.EnvPaymentFaultLatency])
	}
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(s)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := kstatus.Compute(&unstructured.Unstructured{Object: u}); err != nil || res.Status != kstatus.CurrentStatus {
		t.Errorf("kstatus = %+v, %v; want Current while injecting faults", res, err)
	}
	if h, err := argocd.ShopHealth(u); err != nil || h.Status != argocd.Healthy {
		t.Errorf("Argo CD health = %+v, %v; want Healthy while injecting faults", h, err)
	}

	update(t, ns, "faulty", func(s *shopv1.Shop) { s.Spec.Operations.FaultInjection = shopv1.FaultInjectionSpec{} })
	eventually(t, "the fault variables gone from payment", func() (bool, string) {
		env := paymentEnv(t, ns, "faulty")
		_, ratio := env[workloads.EnvPaymentFaultErrorRatio]
		_, latency := env[workloads.EnvPaymentFaultLatency]
		return !ratio && !latency, "still set"
	})
	markWorkloadsReady(t, ns, "faulty")
	s = waitCondition(t, ns, "faulty", shopv1.ConditionReady, metav1.ConditionTrue)
	if st, reason, msg := condition(s, shopv1.ConditionFaultInjection); st != "" {
		t.Errorf("FaultInjection = %s %s %q after switching it off, want none", st, reason, msg)
	}
}
