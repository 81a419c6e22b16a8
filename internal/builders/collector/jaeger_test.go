package collector_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestJaegerConfigValidates runs Jaeger v2's own `validate` (Jaeger is a
// collector distribution) on the config of every deployed Jaeger the
// variants render (memory and Badger storage). The binary comes from
// hack/otelcol/build-jaeger.sh, at the release of the default image.
func TestJaegerConfigValidates(t *testing.T) {
	bin := os.Getenv("SHOP_JAEGER")
	if bin == "" {
		t.Skip("SHOP_JAEGER is not set: run `make jaeger` (or hack/otelcol/build-jaeger.sh, which prints the binary's path) " +
			"and set SHOP_JAEGER to it to validate the rendered Jaeger configs with Jaeger itself")
	}
	dir := t.TempDir()
	seen := 0
	for _, v := range variants() {
		for _, u := range renderFor(t, v.Input) {
			if u.GetKind() != "ConfigMap" || u.GetName() != "demo-jaeger" {
				continue
			}
			seen++
			data, _, _ := unstructured.NestedString(u.Object, "data", "config.yaml")
			file := filepath.Join(dir, v.Name+".yaml")
			if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			start := time.Now()
			out, err := exec.CommandContext(ctx, bin, "validate", "--config="+file).CombinedOutput()
			cancel()
			if err != nil {
				t.Errorf("jaeger validate %s: %v\n%s\nconfig:\n%s", v.Name, err, out, data)
				continue
			}
			t.Logf("%s: Jaeger config valid (%d bytes, %s)", v.Name, len(data), time.Since(start).Round(time.Millisecond))
		}
	}
	if seen == 0 {
		t.Fatal("no variant deploys Jaeger")
	}
}
