package backups_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/builders/backups"
	"github.com/shopplatform/shop-operator/internal/builders/mesh"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
	"github.com/shopplatform/shop-operator/internal/testenv"
)

func TestPeriod(t *testing.T) {
	for schedule, want := range map[string]time.Duration{
		"0 * * * *":    time.Hour,
		"0 3 * * *":    24 * time.Hour,
		"*/15 * * * *": 15 * time.Minute,
		"30 2 * * 1-5": 72 * time.Hour, // Friday to Monday
		"@weekly":      7 * 24 * time.Hour,
		"0 0 1 * *":    31 * 24 * time.Hour,
	} {
		got, err := backups.Period(schedule)
		if err != nil || got != want {
			t.Errorf("Period(%q) = %v, %v; want %v", schedule, got, err, want)
		}
	}
	if _, err := backups.Period("every hour"); err == nil {
		t.Error("a bad schedule was accepted")
	}
}

func TestProfiles(t *testing.T) {
	for env, want := range map[shopv1.Environment]string{shopv1.Development: "", shopv1.Testing: "0 3 * * *", shopv1.Production: "0 * * * *"} {
		objs := build(t, rendertest.Input(shopv1.ShopSpec{Environment: env}))
		if want == "" {
			if len(objs) != 0 {
				t.Errorf("%s renders %d objects, want none", env, len(objs))
			}
			continue
		}
		for _, svc := range render.Databases {
			cj := find(objs, "CronJob", "demo-"+svc+"-db-backup")
			if cj == nil {
				t.Fatalf("%s: no CronJob for %s", env, svc)
			}
			if s, _, _ := unstructured.NestedString(cj.Object, "spec", "schedule"); s != want {
				t.Errorf("%s: schedule %q, want %q", env, s, want)
			}
			// The database's NetworkPolicy admits exactly this component.
			labels, _, _ := unstructured.NestedStringMap(cj.Object, "spec", "jobTemplate", "spec", "template", "metadata", "labels")
			if !containsString(mesh.DatabaseClientComponents(svc), labels[render.LabelComponent]) {
				t.Errorf("%s: backup pods are %q, not admitted by the NetworkPolicy (%v)", env, labels[render.LabelComponent], mesh.DatabaseClientComponents(svc))
			}
			pvc := find(objs, "PersistentVolumeClaim", "demo-"+svc+"-db-backups")
			if pvc == nil || pvc.GetAnnotations()[render.AnnotationRetain] != "true" || len(pvc.GetOwnerReferences()) != 0 {
				t.Errorf("%s: backups claim of %s missing or not retained: %v", env, svc, pvc)
			}
		}
		if find(objs, "PrometheusRule", "demo-backups") == nil {
			t.Errorf("%s: no PrometheusRule demo-backups", env)
		}
	}
}

// TestRuleNeedsMetrics: without a collector the backups report nothing, so
// the alert (which would always fire) is not rendered; the CronJobs are.
func TestRuleNeedsMetrics(t *testing.T) {
	spec := shopv1.ShopSpec{Environment: shopv1.Production}
	spec.Observability.Collector.Enabled = ptr.To(false)
	objs := build(t, rendertest.Input(spec))
	if find(objs, "PrometheusRule", "demo-backups") != nil {
		t.Error("alert rendered without a metrics pipeline")
	}
	cj := find(objs, "CronJob", "demo-orders-db-backup")
	if cj == nil {
		t.Fatal("no CronJob")
	}
	containers, _, _ := unstructured.NestedSlice(cj.Object, "spec", "jobTemplate", "spec", "template", "spec", "containers")
	for _, e := range containers[0].(map[string]any)["env"].([]any) {
		if e := e.(map[string]any); e["name"] == backups.EnvMetricsURL && e["value"] != nil && e["value"] != "" {
			t.Errorf("metrics URL %v without a collector", e["value"])
		}
	}
}

func TestBadSchedule(t *testing.T) {
	spec := shopv1.ShopSpec{Environment: shopv1.Testing}
	spec.Databases.Orders.Managed = &shopv1.ManagedDatabase{Backup: &shopv1.BackupSpec{Schedule: "61 * * * *"}}
	_, err := backups.Build(rendertest.Input(spec))
	if err == nil || !strings.Contains(err.Error(), "databases.orders.managed.backup.schedule") {
		t.Errorf("error %v, want one naming databases.orders.managed.backup.schedule", err)
	}
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestRunbook: the alert's runbook_url points at a page that exists.
func TestRunbook(t *testing.T) {
	if _, err := os.Stat(filepath.Join(testenv.RepoRoot(), "docs", "runbooks", backups.AlertBackupMissing+".md")); err != nil {
		t.Error(err)
	}
}
