package live

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/builders/monitoring"
	"github.com/shopplatform/shop-operator/internal/localstack"
	"github.com/shopplatform/shop-operator/internal/render"
)

// webhookNotification is the part of Alertmanager's webhook payload the
// routing promises something about.
type webhookNotification struct {
	Receiver    string            `json:"receiver"`
	Status      string            `json:"status"`
	GroupLabels map[string]string `json:"groupLabels"`
	Alerts      []struct {
		Status string            `json:"status"`
		Labels map[string]string `json:"labels"`
	} `json:"alerts"`
}

// alertWebhooks is the test's receiver: one path per Shop receiver, every
// notification kept. It listens on the host's end of the node's veth, the
// one address beyond the cluster that its pods reach.
type alertWebhooks struct {
	url string
	mu  sync.Mutex
	got map[string][]webhookNotification // by path
}

func startAlertWebhooks(t *testing.T) *alertWebhooks {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(cluster.HostIP(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	w := &alertWebhooks{url: "http://" + ln.Addr().String(), got: map[string][]webhookNotification{}}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		var n webhookNotification
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&n); err != nil {
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		w.mu.Lock()
		w.got[r.URL.Path] = append(w.got[r.URL.Path], n)
		w.mu.Unlock()
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return w
}

func (w *alertWebhooks) notifications(path string) []webhookNotification {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]webhookNotification(nil), w.got[path]...)
}

// alertsAreRoutedGroupedAndInhibited: the Shop gets two webhook receivers,
// one per severity; prometheus-operator translates the AlertmanagerConfig the
// Shop renders into the real Alertmanager's configuration; alerts with the
// labels the Shop's own rules give (the critical and warning twins of
// ShopPaymentFailureRatioHigh, and a warning with no critical twin) reach
// the receivers as the routing promises: the critical one at the critical
// receiver only, grouped by shop and alertname; its warning twin inhibited;
// the lone warning at the warning receiver.
func alertsAreRoutedGroupedAndInhibited(t *testing.T, ctx context.Context, s *liveShop) {
	hooks := addWebhookReceivers(t, ctx, s)
	am := serviceURL(t, ctx, localstack.MonitoringNamespace, localstack.AlertmanagerService, "web")

	// The alerts as the Shop's rules label them, firing for 10 minutes.
	payment := ruleLabels(t, ctx, s, monitoring.AlertPaymentFailures)
	conflicts := ruleLabels(t, ctx, s, monitoring.AlertStockConflictsSpike)
	target := map[string]string{"namespace": s.ns, "shop": s.shop.Name}
	alerts := []map[string]string{
		with(target, payment[monitoring.Critical], map[string]string{"service": render.Payment}),
		with(target, payment[monitoring.Warning], map[string]string{"service": render.Payment}),
		with(target, conflicts[monitoring.Warning], map[string]string{"service": render.Catalog}),
	}
	postAlerts(t, ctx, am, alerts, time.Now().Add(10*time.Minute))
	posted := time.Now()

	// group_wait is 30 s: both groups are sent within a minute.
	err := wait.PollUntilContextTimeout(ctx, time.Second, 90*time.Second, true, func(context.Context) (bool, error) {
		return notified(hooks.notifications("/critical"), monitoring.AlertPaymentFailures) &&
			notified(hooks.notifications("/warning"), monitoring.AlertStockConflictsSpike), nil
	})
	if err != nil {
		t.Fatalf("not delivered within 90 s: critical receiver got %v, warning receiver got %v", hooks.notifications("/critical"), hooks.notifications("/warning"))
	}
	t.Logf("both receivers notified %s after the alerts were posted", time.Since(posted).Round(100*time.Millisecond))
	time.Sleep(5 * time.Second) // a late notification of the inhibited twin would come now

	critical, warning := hooks.notifications("/critical"), hooks.notifications("/warning")
	checkNotified(t, "critical receiver", critical, monitoring.AlertPaymentFailures, monitoring.Critical, s)
	checkNotified(t, "warning receiver", warning, monitoring.AlertStockConflictsSpike, monitoring.Warning, s)

	// Resolved notifications wait for group_interval (5 minutes): the long
	// run (`make chaos`, TestChaosPaymentAlertLifecycle) follows them; here the alerts are withdrawn.
	postAlerts(t, ctx, am, alerts, time.Now())
}

// addWebhookReceivers gives the Shop two webhook receivers, oncall
// (critical) and tickets (warning), whose URLs (in the Secret alert-webhooks)
// point at a server the test runs, and waits until the Alertmanager has
// loaded the routing prometheus-operator translated from the Shop's
// AlertmanagerConfig. It patches a copy of s.shop: other steps read it
// meanwhile.
func addWebhookReceivers(t *testing.T, ctx context.Context, s *liveShop) *alertWebhooks {
	t.Helper()
	begin := time.Now()
	hooks := startAlertWebhooks(t)
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "alert-webhooks", Namespace: s.ns},
		StringData: map[string]string{"critical": hooks.url + "/critical", "warning": hooks.url + "/warning"},
	}
	mustCreate(t, ctx, secret)
	shop := s.shop.DeepCopy()
	patch := client.MergeFrom(shop.DeepCopy())
	shop.Spec.Observability.Alerting.Receivers = []shopv1.Receiver{
		{Name: "oncall", Severity: monitoring.Critical, Webhook: &shopv1.WebhookReceiver{URLSecretRef: shopv1.SecretKeyRef{Name: secret.Name, Key: "critical"}}},
		{Name: "tickets", Severity: monitoring.Warning, Webhook: &shopv1.WebhookReceiver{URLSecretRef: shopv1.SecretKeyRef{Name: secret.Name, Key: "warning"}}},
	}
	if err := k8s.Patch(ctx, shop, patch); err != nil {
		t.Fatal(err)
	}

	// prometheus-operator names a receiver <namespace>/<AlertmanagerConfig>/<receiver>.
	am := serviceURL(t, ctx, localstack.MonitoringNamespace, localstack.AlertmanagerService, "web")
	want := fmt.Sprintf("%s/%s/oncall", s.ns, s.shop.Name+"-routing")
	err := wait.PollUntilContextTimeout(ctx, 2*time.Second, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		body, err := httpBody(ctx, am+"/api/v2/status")
		return err == nil && strings.Contains(body, want), nil
	})
	if err != nil {
		body, _ := httpBody(ctx, am+"/api/v2/status")
		t.Fatalf("Alertmanager's configuration has no receiver %s within 2 minutes of the Shop naming it:\n%.3000s", want, body)
	}
	t.Logf("Alertmanager loaded the Shop's routing %s after the patch", time.Since(begin).Round(100*time.Millisecond))
	return hooks
}

// checkNotified: of the notifications about the alerts the test posted
// (the Shop's real alerts may fire too on a busy machine, and are delivered
// the same way), exactly one, firing, grouped by the Shop's GroupBy, holding
// exactly the one alert named, with that severity.
func checkNotified(t *testing.T, who string, all []webhookNotification, alertname, severity string, s *liveShop) {
	t.Helper()
	var got []webhookNotification
	for _, n := range all {
		switch n.GroupLabels["alertname"] {
		case monitoring.AlertPaymentFailures, monitoring.AlertStockConflictsSpike:
			got = append(got, n)
		default:
			t.Logf("%s also got the Shop's own alert %s (%s), through Prometheus", who, n.GroupLabels["alertname"], n.Status)
		}
	}
	if len(got) != 1 || len(got[0].Alerts) != 1 {
		t.Errorf("%s: got %d notifications %+v, want one with one alert %s (severity %s): routing or inhibition is not what the Shop renders", who, len(got), got, alertname, severity)
		return
	}
	n, a := got[0], got[0].Alerts[0]
	if n.Status != "firing" || a.Labels["alertname"] != alertname || a.Labels["severity"] != severity || a.Labels["shop"] != s.shop.Name {
		t.Errorf("%s: status %s, labels %v; want firing %s severity %s of shop %s", who, n.Status, a.Labels, alertname, severity, s.shop.Name)
	}
	wantGroup := map[string]string{}
	for _, l := range monitoring.GroupBy {
		wantGroup[l] = a.Labels[l]
	}
	if fmt.Sprint(n.GroupLabels) != fmt.Sprint(wantGroup) {
		t.Errorf("%s: grouped by %v, want %v", who, n.GroupLabels, wantGroup)
	}
}

func notified(got []webhookNotification, alertname string) bool {
	return slices.ContainsFunc(got, func(n webhookNotification) bool { return n.GroupLabels["alertname"] == alertname })
}

// ruleLabels returns, per severity, the labels the Shop's PrometheusRule
// gives the alert (with alertname).
func ruleLabels(t *testing.T, ctx context.Context, s *liveShop, alert string) map[string]map[string]string {
	t.Helper()
	rules := &monitoringv1.PrometheusRuleList{}
	if err := k8s.List(ctx, rules, client.InNamespace(s.ns), client.MatchingLabels{render.LabelShop: s.shop.Name}); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]string{}
	for _, r := range rules.Items {
		for _, g := range r.Spec.Groups {
			for _, rule := range g.Rules {
				if rule.Alert == alert {
					out[rule.Labels["severity"]] = with(rule.Labels, map[string]string{"alertname": alert})
				}
			}
		}
	}
	if len(out) == 0 {
		t.Fatalf("the Shop's rules have no alert %s", alert)
	}
	return out
}

func with(maps ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range maps {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// postAlerts sends alerts to Alertmanager's API as Prometheus does.
func postAlerts(t *testing.T, ctx context.Context, am string, alerts []map[string]string, endsAt time.Time) {
	t.Helper()
	var body []map[string]any
	for _, labels := range alerts {
		body = append(body, map[string]any{"labels": labels, "startsAt": time.Now().Add(-time.Minute).Format(time.RFC3339), "endsAt": endsAt.Format(time.RFC3339)})
	}
	raw, _ := json.Marshal(body)
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, am+"/api/v2/alerts", bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		t.Fatalf("POST %s/api/v2/alerts: %s: %s", am, resp.Status, msg)
	}
}
