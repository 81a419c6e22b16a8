package backups_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"sigs.k8s.io/yaml"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/builders/backups"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
)

// promtool finds promtool or skips: Debian's prometheus package provides it
// (hack/prometheus-tools.sh).
func promtool(t *testing.T, dir string, args ...string) {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not found: run hack/prometheus-tools.sh (Debian package prometheus)")
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %v: %v\n%s", args, err, out)
	}
	t.Logf("promtool %v:\n%s", args, out)
}

func rule(t *testing.T, spec shopv1.ShopSpec) *monitoringv1.PrometheusRule {
	t.Helper()
	objs, err := backups.Build(rendertest.Input(spec))
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if r, ok := o.(*monitoringv1.PrometheusRule); ok {
			return r
		}
	}
	t.Fatal("no PrometheusRule rendered")
	return nil
}

func writeRules(t *testing.T, dir string, r *monitoringv1.PrometheusRule) {
	t.Helper()
	b, err := yaml.Marshal(r.Spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestPromtoolCheckRules checks the rules (annotation templates included)
// of every profile that renders them.
func TestPromtoolCheckRules(t *testing.T) {
	for _, e := range []shopv1.Environment{shopv1.Testing, shopv1.Production} {
		t.Run(string(e), func(t *testing.T) {
			dir := t.TempDir()
			// With an upload, so that every alert's annotations are checked.
			orders := shopv1.DatabaseSpec{Managed: &shopv1.ManagedDatabase{Backup: &shopv1.BackupSpec{S3: &shopv1.BackupS3Spec{SecretName: "bucket"}}}}
			writeRules(t, dir, rule(t, shopv1.ShopSpec{Environment: e, Databases: shopv1.Databases{Orders: orders}}))
			promtool(t, dir, "check", "rules", "rules.yaml")
		})
	}
}

// TestPromtoolTestRules feeds synthetic series to production's rules
// (testdata/rules_test.yaml). Annotations are dropped: promtool compares
// them verbatim, and check rules validates their templates.
func TestPromtoolTestRules(t *testing.T) {
	// auth and orders also upload to a bucket (ShopBackupUploadFailing).
	upload := func() shopv1.DatabaseSpec {
		return shopv1.DatabaseSpec{Managed: &shopv1.ManagedDatabase{Backup: &shopv1.BackupSpec{S3: &shopv1.BackupS3Spec{SecretName: "bucket"}}}}
	}
	r := rule(t, shopv1.ShopSpec{Environment: shopv1.Production, Databases: shopv1.Databases{Auth: upload(), Orders: upload()}})
	for g := range r.Spec.Groups {
		for i := range r.Spec.Groups[g].Rules {
			r.Spec.Groups[g].Rules[i].Annotations = nil
		}
	}
	dir := t.TempDir()
	writeRules(t, dir, r)
	tests, err := os.ReadFile(filepath.Join("testdata", "rules_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules_test.yaml"), tests, 0o644); err != nil {
		t.Fatal(err)
	}
	promtool(t, dir, "test", "rules", "rules_test.yaml")
}
