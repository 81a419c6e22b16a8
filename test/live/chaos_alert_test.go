//go:build chaos

package live

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/shopplatform/shop-operator/internal/builders/monitoring"
)

// TestChaosPaymentAlertLifecycle is the long run of an alert's whole life
// (`make chaos`, about 35 minutes; `make test` has the short cases:
// PaymentFaultRaisesTheAlert sees the alert pending, and
// AlertsAreRoutedGroupedAndInhibited routes posted alerts). With the
// payment faults on, the Shop's own rule fires ShopPaymentFailureRatioHigh
// after its for: of 5 minutes, Prometheus sends it to the Alertmanager, and
// the routing prometheus-operator translated from the Shop delivers it to
// the critical receiver only (its warning twin, firing 5 minutes later, is
// inhibited); with the faults off again, the same receiver is told it
// resolved once the rule's 10-minute window has drained.
func TestChaosPaymentAlertLifecycle(t *testing.T) {
	useCluster(t)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Minute)
	defer cancel()
	s := startTestingShop(t, ctx, "alert-lifecycle")
	hooks := addWebhookReceivers(t, ctx, s)

	setPaymentFault(t, ctx, s, true)
	faultOn := time.Now()
	delivered := func(path, status string) bool {
		for _, n := range hooks.notifications(path) {
			if n.GroupLabels["alertname"] == monitoring.AlertPaymentFailures && n.Status == status {
				return true
			}
		}
		return false
	}
	// for: 5m, then group_wait 30 s.
	if err := wait.PollUntilContextTimeout(ctx, 5*time.Second, 12*time.Minute, true, func(context.Context) (bool, error) {
		return delivered("/critical", "firing"), nil
	}); err != nil {
		t.Fatalf("%s was not delivered firing to the critical receiver within 12 minutes of the fault: got %+v", monitoring.AlertPaymentFailures, hooks.notifications("/critical"))
	}
	t.Logf("%s delivered firing to the critical receiver %s after the fault began", monitoring.AlertPaymentFailures, time.Since(faultOn).Round(time.Second))
	checkNotified(t, "critical receiver", hooks.notifications("/critical"), monitoring.AlertPaymentFailures, monitoring.Critical, s)

	// The warning twin's for: is 10 minutes: wait it out, then see that it
	// was inhibited rather than delivered.
	if wait := time.Until(faultOn.Add(11 * time.Minute)); wait > 0 {
		time.Sleep(wait)
	}
	if delivered("/warning", "firing") {
		t.Errorf("the warning receiver got %s while its critical twin fired: the Shop's inhibition did not hold", monitoring.AlertPaymentFailures)
	}

	setPaymentFault(t, ctx, s, false)
	faultOff := time.Now()
	// The 10-minute ratio drops below 25% some 7.5 minutes after the faults
	// stop; the resolved notice waits for group_interval (5 minutes): 14.5
	// minutes when measured.
	if err := wait.PollUntilContextTimeout(ctx, 5*time.Second, 25*time.Minute, true, func(context.Context) (bool, error) {
		return delivered("/critical", "resolved"), nil
	}); err != nil {
		t.Fatalf("%s was not delivered resolved within 25 minutes of the fault ending: got %+v", monitoring.AlertPaymentFailures, hooks.notifications("/critical"))
	}
	t.Logf("%s delivered resolved %s after the fault ended", monitoring.AlertPaymentFailures, time.Since(faultOff).Round(time.Second))
}
