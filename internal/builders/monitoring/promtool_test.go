package monitoring_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"sigs.k8s.io/yaml"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
)

// tool finds a Prometheus tool or skips: Debian's prometheus and
// prometheus-alertmanager packages provide them (hack/prometheus-tools.sh).
func tool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not found: run hack/prometheus-tools.sh (Debian packages prometheus and prometheus-alertmanager)", name)
	}
	return path
}

func run(t *testing.T, dir, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s%s", filepath.Base(bin), args, err, out, stderr.String())
	}
	return string(out)
}

// TestPromtoolCheckRules checks every environment's rules with promtool.
func TestPromtoolCheckRules(t *testing.T) {
	promtool := tool(t, "promtool")
	for name, spec := range map[string]shopv1.ShopSpec{
		"testing":    {Environment: shopv1.Testing},
		"production": {Environment: shopv1.Production},
		"custom-slo": customSLO(),
		"probe":      syntheticProbe("0 9-17 * * 1-5"),
	} {
		t.Run(name, func(t *testing.T) {
			rule := prometheusRule(t, rendertest.Input(spec))
			dir := t.TempDir()
			writeYAML(t, filepath.Join(dir, "rules.yaml"), rule.Spec)
			run(t, dir, promtool, "check", "rules", "rules.yaml")
		})
	}
}

// customSLO is production with a 1 s latency threshold (an integer bucket
// bound, written "1" or "1.0") and a 99.95 % availability target.
func customSLO() shopv1.ShopSpec {
	spec := shopv1.ShopSpec{Environment: shopv1.Production}
	spec.Observability.Alerting.SLO = shopv1.SLOSpec{Availability: "99.95", LatencyTarget: "95.5",
		LatencyThreshold: &metav1.Duration{Duration: time.Second}}
	return spec
}

// syntheticProbe is production with the synthetic checkout on as a probe.
func syntheticProbe(schedule string) shopv1.ShopSpec {
	spec := shopv1.ShopSpec{Environment: shopv1.Production}
	spec.Operations.SyntheticCheck = shopv1.SyntheticCheckSpec{Enabled: ptr.To(true), Schedule: schedule}
	return spec
}

// TestPromtoolTestRules feeds synthetic series to the rules and asserts
// which alerts fire and which stay quiet (testdata/*rules_test.yaml).
// Annotations are dropped from the rules under test: promtool compares them
// verbatim, and `check rules` above already validates their templates.
func TestPromtoolTestRules(t *testing.T) {
	promtool := tool(t, "promtool")
	for file, spec := range map[string]shopv1.ShopSpec{
		"rules_test.yaml":                 {Environment: shopv1.Production},
		"custom_slo_rules_test.yaml":      customSLO(),
		"synthetic_rules_test.yaml":       {Environment: shopv1.Testing},
		"synthetic_probe_rules_test.yaml": syntheticProbe("*/30 * * * *"),
	} {
		t.Run(file, func(t *testing.T) {
			rule := prometheusRule(t, rendertest.Input(spec))
			for g := range rule.Spec.Groups {
				for r := range rule.Spec.Groups[g].Rules {
					rule.Spec.Groups[g].Rules[r].Annotations = nil
				}
			}
			dir := t.TempDir()
			writeYAML(t, filepath.Join(dir, "rules.yaml"), rule.Spec)
			tests, err := os.ReadFile(filepath.Join("testdata", file))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, file), tests, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Log(run(t, dir, promtool, "test", "rules", file))
		})
	}
}

func writeYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
