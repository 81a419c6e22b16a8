package monitoring_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/builders/monitoring"
)

// TestInhibition runs a real Alertmanager (Debian's prometheus-alertmanager)
// on loopback with the configuration the AlertmanagerConfig implies, posts
// alerts, and reads which ones it inhibits.
func TestInhibition(t *testing.T) {
	bin := tool(t, "prometheus-alertmanager")
	dir := t.TempDir()
	writeYAML(t, filepath.Join(dir, "alertmanager.yaml"), alertmanagerYAML(t, alertmanagerConfig(t, everyReceiver(shopv1.Production))))

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--config.file=alertmanager.yaml", "--storage.path=data",
		"--web.listen-address="+addr, "--cluster.listen-address=")
	cmd.Dir = dir
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	base := "http://" + addr + "/api/v2/"
	client := &http.Client{Timeout: 2 * time.Second}
	if !poll(func() bool {
		r, err := client.Get(base + "status")
		return err == nil && r.Body.Close() == nil && r.StatusCode == 200
	}) {
		t.Fatalf("alertmanager did not start:\n%s", logs.String())
	}

	alert := func(name, severity, service string) map[string]any {
		return map[string]any{"labels": map[string]string{"alertname": name, "severity": severity, "service": service,
			"shop": "demo", "namespace": "shop"}, "startsAt": time.Now().Add(-time.Minute).Format(time.RFC3339)}
	}
	body, _ := json.Marshal([]any{
		alert(monitoring.AlertDatabaseDown, monitoring.Critical, "orders"),
		alert(monitoring.AlertHighErrorRatio, monitoring.Warning, "orders"),    // inhibited: its database is down
		alert(monitoring.AlertAvailabilityBurn, monitoring.Critical, "orders"), // inhibited: its database is down
		alert(monitoring.AlertHighErrorRatio, monitoring.Critical, "catalog"),  // fires
		alert(monitoring.AlertHighErrorRatio, monitoring.Warning, "catalog"),   // inhibited: critical of the same alert
		alert(monitoring.AlertHighErrorRatio, monitoring.Warning, "auth"),      // fires: nothing above it
	})
	r, err := client.Post(base+"alerts", "application/json", bytes.NewReader(body))
	if err != nil || r.StatusCode != 200 {
		t.Fatalf("posting alerts: %v %v", err, r)
	}
	_ = r.Body.Close()

	want := map[string]string{
		"ShopDatabaseDown/critical/orders":              "active",
		"ShopServiceHighErrorRatio/warning/orders":      "suppressed",
		"ShopSLOAvailabilityBudgetBurn/critical/orders": "suppressed",
		"ShopServiceHighErrorRatio/critical/catalog":    "active",
		"ShopServiceHighErrorRatio/warning/catalog":     "suppressed",
		"ShopServiceHighErrorRatio/warning/auth":        "active",
	}
	var got map[string]string
	ok := poll(func() bool {
		got = map[string]string{}
		r, err := client.Get(base + "alerts")
		if err != nil {
			return false
		}
		defer r.Body.Close()
		var alerts []struct {
			Labels map[string]string `json:"labels"`
			Status struct {
				State string `json:"state"`
			} `json:"status"`
		}
		if json.NewDecoder(r.Body).Decode(&alerts) != nil {
			return false
		}
		for _, a := range alerts {
			got[fmt.Sprintf("%s/%s/%s", a.Labels["alertname"], a.Labels["severity"], a.Labels["service"])] = a.Status.State
		}
		return fmt.Sprint(got) == fmt.Sprint(want)
	})
	if !ok {
		t.Errorf("alert states:\n got %v\nwant %v", got, want)
	}
}

// poll retries f ten times a second for at most ten seconds.
func poll(f func() bool) bool {
	for range 100 {
		if f() {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}
