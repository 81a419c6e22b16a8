package live

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/builders/monitoring"
	"github.com/shopplatform/shop-operator/internal/localstack"
	"github.com/shopplatform/shop-operator/internal/render"
)

// paymentFaultRaisesTheAlert: the Shop's own fault injection makes every
// charge fail (spec.operations.faultInjection.payment.errorPercent: 100),
// with the load generator turned up so that checkouts come every second;
// the Shop says so (condition FaultInjection), the dashboards' provider
// failure ratio, empty while healthy, gets a series, and the Shop's rule
// ShopPaymentFailureRatioHigh becomes active (pending: its for: of 5 to 10
// minutes is the long run's to wait out) in the live Prometheus for the
// payment service. Then the faults are turned off again and the Shop is
// Ready as before.
func paymentFaultRaisesTheAlert(t *testing.T, ctx context.Context, s *liveShop) {
	begin := time.Now()
	t.Cleanup(func() {
		if t.Failed() {
			setPaymentFault(t, ctx, s, false) // leave the Shop healthy for the steps after this one
		}
	})
	setPaymentFault(t, ctx, s, true)
	rolled := time.Now()
	t.Logf("fault on, payment rolled and the Shop Ready %s after the patch", rolled.Sub(begin).Round(100*time.Millisecond))

	cur := &shopv1.Shop{}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(s.shop), cur); err != nil {
		t.Fatal(err)
	}
	if c := meta.FindStatusCondition(cur.Status.Conditions, shopv1.ConditionFaultInjection); c == nil || c.Status != metav1.ConditionTrue {
		t.Errorf("condition FaultInjection = %+v, want True while payment faults are injected", c)
	}

	prom := serviceURL(t, ctx, localstack.MonitoringNamespace, localstack.PrometheusService, "web")
	failures := fmt.Sprintf(`sum(rate(%s{namespace=%q, shop=%q, outcome=~%q}[2m]))`, monitoring.Payments, s.ns, s.shop.Name, monitoring.PaymentFailedOutcomes)
	var state string
	err := wait.PollUntilContextTimeout(ctx, 5*time.Second, 4*time.Minute, true, func(ctx context.Context) (bool, error) {
		state = alertState(ctx, prom, monitoring.AlertPaymentFailures, map[string]string{"shop": s.shop.Name, "service": render.Payment})
		return state != "", nil
	})
	if err != nil {
		n, _ := promSeries(ctx, prom, failures)
		t.Fatalf("%s not active for service payment within 4 minutes of the fault (series of failed charges: %d)", monitoring.AlertPaymentFailures, n)
	}
	t.Logf("%s %s %s after the payment pods injected faults", monitoring.AlertPaymentFailures, state, time.Since(rolled).Round(100*time.Millisecond))
	if n, err := promSeries(ctx, prom, failures); err != nil || n == 0 {
		t.Errorf("the provider failure rate has no series while every charge fails (%v)", err)
	}

	setPaymentFault(t, ctx, s, false)
	t.Logf("fault off, the Shop Ready again; the step took %s", time.Since(begin).Round(100*time.Millisecond))
}

// setPaymentFault turns the Shop's payment fault injection on (every charge
// fails; the load generator at 20 requests/s, as checkout is 5% of its mix)
// or off (both back to the profile's), and waits until the Shop is Ready.
func setPaymentFault(t *testing.T, ctx context.Context, s *liveShop, on bool) {
	t.Helper()
	cur := &shopv1.Shop{}
	if err := k8s.Get(ctx, client.ObjectKeyFromObject(s.shop), cur); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(cur.DeepCopy())
	ops := &cur.Spec.Operations
	ops.FaultInjection.Payment, ops.LoadGenerator.RequestsPerSecond = nil, nil
	if on {
		ops.FaultInjection.Payment = &shopv1.PaymentFaultSpec{ErrorPercent: ptr.To[int32](100)}
		ops.LoadGenerator.RequestsPerSecond = ptr.To[int32](20)
	}
	if err := k8s.Patch(ctx, cur, patch); err != nil {
		t.Fatal(err)
	}
	*s.shop = *cur
	if err := localstack.WaitShop(ctx, k8s, cs, s.shop, 4*time.Minute, t.Logf); err != nil {
		t.Fatal(err)
	}
}

// alertState is the state (pending or firing) of an alert of Prometheus
// whose labels include want, or "" when none is active.
func alertState(ctx context.Context, prom, alertname string, want map[string]string) string {
	body, err := httpBody(ctx, prom+"/api/v1/alerts")
	if err != nil {
		return ""
	}
	var got struct {
		Data struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
				State  string            `json:"state"`
			} `json:"alerts"`
		} `json:"data"`
	}
	if json.Unmarshal([]byte(body), &got) != nil {
		return ""
	}
	for _, a := range got.Data.Alerts {
		if a.Labels["alertname"] != alertname {
			continue
		}
		match := true
		for k, v := range want {
			match = match && a.Labels[k] == v
		}
		if match {
			return a.State
		}
	}
	return ""
}
