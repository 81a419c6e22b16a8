package collector_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
)

// TestValidateWithOtelcol runs the real collector's `validate` on the config
// of every collector every variant renders (every profile, every exporter on
// and off). The collector comes from hack/otelcol (make otelcol), a separate
// module, so the operator does not depend on the collector's code.
//
// Components that cannot be built here (see hack/otelcol/builder-config.yaml)
// are replaced in the validated copy by built ones of the same shape, so the
// pipelines stay exactly as rendered:
//   - the datadog exporter by nop/datadog,
//   - the datadog connector (traces -> metrics) by span_metrics/datadog,
//   - the load_balancing exporter by an otlp_grpc exporter with its
//     protocol.otlp settings and the resolver's host and port, so those
//     settings are validated by the real OTLP exporter.
//
// Their own sections are checked against their documented fields in
// TestUnbuildableSections.
func TestValidateWithOtelcol(t *testing.T) {
	bin := os.Getenv("SHOP_OTELCOL")
	if bin == "" {
		t.Skip("SHOP_OTELCOL is not set: run `make otelcol` (or hack/otelcol/build.sh, which prints the binary's path) " +
			"and set SHOP_OTELCOL to the binary to validate the rendered collector configs with the real collector")
	}
	dir := t.TempDir()
	validate := func(file string) ([]byte, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "validate", "--config="+file)
		// Dummy credentials: the config refers to them as ${env:...}.
		cmd.Env = append(os.Environ(), "DD_API_KEY=dummy-datadog-key", "NEW_RELIC_LICENSE_KEY=dummy-newrelic-key")
		return cmd.CombinedOutput()
	}
	// The validator must be able to say no: a misspelt OTTL path in the
	// redaction processor fails.
	t.Run("rejects-a-broken-config", func(t *testing.T) {
		for _, u := range renderObjects(t, withExporters(shopv1.Production, exporters...)) {
			if u.GetName() != "demo" || u.GetKind() != "OpenTelemetryCollector" {
				continue
			}
			cfg, _, _ := unstructured.NestedMap(u.Object, "spec", "config")
			b, err := yaml.Marshal(standIns(t, cfg))
			if err != nil {
				t.Fatal(err)
			}
			broken := strings.Replace(string(b), "span.attributes", "span.attribs", 1)
			file := filepath.Join(dir, "broken.yaml")
			if err := os.WriteFile(file, []byte(broken), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := validate(file)
			if err == nil || !strings.Contains(string(out), "attribs") {
				t.Errorf("otelcol validate accepted a misspelt OTTL path (err %v):\n%s", err, out)
			}
		}
	})
	for _, v := range variants() {
		t.Run(v.Name, func(t *testing.T) {
			for _, u := range renderFor(t, v.Input) {
				if u.GetKind() != "OpenTelemetryCollector" {
					continue
				}
				cfg, _, err := unstructured.NestedMap(u.Object, "spec", "config")
				if err != nil {
					t.Fatal(err)
				}
				b, err := yaml.Marshal(standIns(t, cfg))
				if err != nil {
					t.Fatal(err)
				}
				file := filepath.Join(dir, v.Name+"-"+u.GetName()+".yaml")
				if err := os.WriteFile(file, b, 0o644); err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				out, err := validate(file)
				if err != nil {
					t.Errorf("otelcol validate %s (collector %s): %v\n%s\nconfig:\n%s", v.Name, u.GetName(), err, out, b)
					continue
				}
				t.Logf("%s: collector %s valid (%d bytes, validated in %s)", v.Name, u.GetName(), len(b), time.Since(start).Round(time.Millisecond))
			}
		})
	}
}

// standIns returns a copy of cfg with the components that cannot be built
// here replaced by built ones of the same shape.
func standIns(t *testing.T, cfg map[string]any) map[string]any {
	t.Helper()
	cfg = deepCopy(cfg)
	rename := map[string]string{}
	if ex, ok := cfg["exporters"].(map[string]any); ok {
		if _, ok := ex["datadog"]; ok {
			delete(ex, "datadog")
			ex["nop/datadog"] = map[string]any{}
			rename["datadog"] = "nop/datadog"
		}
		if lb, ok := ex["load_balancing"].(map[string]any); ok {
			otlp, _, _ := unstructured.NestedMap(lb, "protocol", "otlp")
			host, _, _ := unstructured.NestedString(lb, "resolver", "dns", "hostname")
			port, _, _ := unstructured.NestedString(lb, "resolver", "dns", "port")
			if otlp == nil || host == "" || port == "" {
				t.Fatalf("load_balancing exporter without protocol.otlp or a DNS resolver: %v", lb)
			}
			otlp["endpoint"] = host + ":" + port
			delete(ex, "load_balancing")
			ex["otlp_grpc/loadbalancing"] = otlp
			rename["load_balancing"] = "otlp_grpc/loadbalancing"
		}
	}
	if conn, ok := cfg["connectors"].(map[string]any); ok {
		if _, ok := conn["datadog/connector"]; ok {
			delete(conn, "datadog/connector")
			conn["span_metrics/datadog"] = map[string]any{}
			rename["datadog/connector"] = "span_metrics/datadog"
		}
	}
	pipelines, _, _ := unstructured.NestedMap(cfg, "service", "pipelines")
	for name, p := range pipelines {
		pm := p.(map[string]any)
		for _, list := range []string{"receivers", "exporters"} {
			ids, _ := pm[list].([]any)
			for i, id := range ids {
				if to, ok := rename[id.(string)]; ok {
					ids[i] = to
				}
			}
		}
		pipelines[name] = pm
	}
	if err := unstructured.SetNestedMap(cfg, pipelines, "service", "pipelines"); err != nil {
		t.Fatal(err)
	}
	for id := range rename {
		if strings.Contains(string(mustJSON(t, cfg)), `"`+id+`"`) {
			t.Fatalf("%s is still referenced after replacing it", id)
		}
	}
	return cfg
}

func deepCopy(m map[string]any) map[string]any {
	return (&unstructured.Unstructured{Object: m}).DeepCopy().Object
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := yaml.YAMLToJSON(must(yaml.Marshal(v)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
