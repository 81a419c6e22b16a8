package cli_test

import (
	"context"
	"encoding/base64"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/cli"
	"github.com/shopplatform/shop-operator/internal/engine"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/secrets"
	"github.com/shopplatform/shop-operator/internal/testenv"
)

func yamlToJSON(t *testing.T, y string) []byte {
	t.Helper()
	j, err := yaml.YAMLToJSON([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return j
}

const twoShops = `# two Shops, one with its own namespace
apiVersion: commerce.shopplatform.io/v1alpha1
kind: Shop
metadata:
  name: prod
  namespace: shop
spec:
  environment: production
---
apiVersion: v1
kind: ConfigMap
metadata: {name: not-a-shop}
---
apiVersion: commerce.shopplatform.io/v1alpha1
kind: Shop
metadata:
  name: dev
spec: {}
`

func samples() string { return filepath.Join(testenv.RepoRoot(), "config", "samples") }

func TestRenderIsStable(t *testing.T) {
	first := run(t, "shopctl", "", "render", "-f", samples())
	if first.code != 0 {
		t.Fatalf("exit %d: %s", first.code, first.stderr)
	}
	for range 3 {
		again := run(t, "shopctl", "", "render", "-f", samples())
		if again.stdout != first.stdout {
			t.Fatalf("two runs differ:\n%s", cmp.Diff(first.stdout, again.stdout))
		}
	}
	if len(docs(t, first.stdout)) == 0 {
		t.Fatal("rendered nothing")
	}
}

// TestRenderIsTheControllersOutput checks that render prints exactly what
// engine.Prepare and engine.Desired give for the stored Shop without a
// cluster (controllers' TestShopctlRendersWhatTheOperatorApplies compares
// with the operator on a cluster).
func TestRenderIsTheControllersOutput(t *testing.T) {
	res := run(t, "shopctl", twoShops, "render", "-f", "-", "--namespace", "team")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	if !strings.Contains(res.stderr, "skipping stdin (document 2): not a Shop") {
		t.Errorf("stderr = %q, want a note about the ConfigMap", res.stderr)
	}
	got := docs(t, res.stdout)

	var want []*unstructured.Unstructured
	for _, s := range []struct {
		name, namespace string
		env             shopv1.Environment
	}{{"prod", "shop", shopv1.Production}, {"dev", "team", shopv1.Development}} {
		shop := &shopv1.Shop{Spec: shopv1.ShopSpec{Environment: s.env}}
		shop.APIVersion, shop.Kind = shopv1.GroupVersion.String(), "Shop"
		shop.Name, shop.Namespace, shop.Generation = s.name, s.namespace, 1
		shop.UID = cli.FakeUID(s.namespace, s.name)
		p, err := engine.Prepare(context.Background(), shop, render.AllAPIs, nil, engine.Placeholders)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := engine.Desired(p.Input)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, objs...)
	}
	if len(got) != len(want) {
		t.Fatalf("rendered %d objects, engine.Desired gives %d", len(got), len(want))
	}
	for i := range want {
		w := &unstructured.Unstructured{}
		if err := w.UnmarshalJSON(mustJSON(t, want[i])); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(w.Object, got[i].Object); diff != "" {
			t.Errorf("object %d (%s) differs (-desired +rendered):\n%s", i, engine.Key(want[i]), diff)
		}
	}
}

func mustJSON(t *testing.T, u *unstructured.Unstructured) []byte {
	t.Helper()
	b, err := u.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRenderedYAMLApplies sends every rendered object of the samples, as
// printed (YAML round trip included), to the real API server with the real
// third-party CRDs as a server-side dry run.
func TestRenderedYAMLApplies(t *testing.T) {
	res := run(t, "shopctl", "", "render", "-f", samples())
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	for _, u := range docs(t, res.stdout) {
		if err := env.Client.Create(context.Background(), u, client.DryRunAll, client.FieldValidation(metav1.FieldValidationStrict)); err != nil {
			t.Errorf("%s: %v", engine.Key(u), err)
		}
	}
}

func TestRenderOwnsAndNamespacesEveryChild(t *testing.T) {
	res := run(t, "shopctl", twoShops, "render", "-f", "-")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	for _, u := range docs(t, res.stdout) {
		shop := u.GetLabels()[render.LabelShop]
		ns := map[string]string{"prod": "shop", "dev": "default"}[shop]
		if ns == "" {
			t.Fatalf("%s has no shop label", engine.Key(u))
		}
		if u.GetNamespace() != ns {
			t.Errorf("%s: namespace %q, want %q", engine.Key(u), u.GetNamespace(), ns)
		}
		refs := u.GetOwnerReferences()
		if u.GetAnnotations()[render.AnnotationRetain] == "true" {
			if len(refs) != 0 {
				t.Errorf("%s is retained but owned: %+v", engine.Key(u), refs)
			}
			continue
		}
		if len(refs) != 1 || refs[0].Name != shop || refs[0].UID != cli.FakeUID(ns, shop) {
			t.Errorf("%s: owner references %+v, want the Shop %s with its fake UID", engine.Key(u), refs, shop)
		}
	}
}

func TestRenderPrintsNoSecrets(t *testing.T) {
	res := run(t, "shopctl", "", "render", "-f", samples())
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	generated := map[string]bool{secrets.PasswordKey: true, secrets.SuperuserPasswordKey: true, secrets.SigningKeyKey: true, secrets.CookieSecretKey: true}
	seen := 0
	for _, u := range docs(t, res.stdout) {
		if u.GetKind() != "Secret" {
			continue
		}
		data, _, _ := unstructured.NestedStringMap(u.Object, "data")
		for k, v := range data {
			if !generated[k] {
				continue
			}
			seen++
			if raw, _ := base64.StdEncoding.DecodeString(v); string(raw) != "<generated>" {
				t.Errorf("Secret %s key %s holds %q, want the placeholder", u.GetName(), k, raw)
			}
		}
	}
	if seen == 0 {
		t.Error("no generated Secret values in the output: is the test still looking at the right keys?")
	}
}

func TestRenderAPIsFlag(t *testing.T) {
	optional := map[string]bool{
		"networking.istio.io": true, "security.istio.io": true,
		"monitoring.coreos.com": true, "opentelemetry.io": true,
	}
	res := run(t, "shopctl", "", "render", "-f", samples(), "--apis", "none")
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	for _, u := range docs(t, res.stdout) {
		if optional[u.GroupVersionKind().Group] {
			t.Errorf("--apis none rendered %s", engine.Key(u))
		}
	}
	all := run(t, "shopctl", "", "render", "-f", samples())
	groups := map[string]bool{}
	for _, u := range docs(t, all.stdout) {
		groups[u.GroupVersionKind().Group] = true
	}
	if !groups["networking.istio.io"] || !groups["monitoring.coreos.com"] {
		t.Errorf("by default render assumes every optional API; groups rendered: %v", groups)
	}
	if bad := run(t, "shopctl", "", "render", "-f", samples(), "--apis", "linkerd"); bad.code != 1 || !strings.Contains(bad.stderr, `unknown API "linkerd"`) {
		t.Errorf("--apis linkerd: exit %d, stderr %q", bad.code, bad.stderr)
	}
}

func TestRenderEnvironmentOverride(t *testing.T) {
	dev := filepath.Join(samples(), "commerce_v1alpha1_shop_development.yaml")
	asProd := run(t, "shopctl", "", "render", "-f", dev, "--environment", "production")
	if asProd.code != 0 {
		t.Fatalf("exit %d: %s", asProd.code, asProd.stderr)
	}
	kinds := map[string]bool{}
	for _, u := range docs(t, asProd.stdout) {
		kinds[u.GetKind()] = true
	}
	if !kinds["PodDisruptionBudget"] || !kinds["HorizontalPodAutoscaler"] {
		t.Errorf("the development sample rendered as production lacks PDBs or HPAs; kinds: %v", kinds)
	}
	bad := run(t, "shopctl", "", "render", "-f", dev, "--environment", "staging")
	if bad.code != 1 || !strings.Contains(bad.stderr, `spec.environment: Unsupported value: "staging"`) {
		t.Errorf("--environment staging: exit %d, stderr %q", bad.code, bad.stderr)
	}
}

func TestRenderRefusesInvalidShops(t *testing.T) {
	bad := `apiVersion: commerce.shopplatform.io/v1alpha1
kind: Shop
metadata: {name: bad}
spec:
  databases: {orders: {managed: {}, external: {secretName: orders}}}
`
	res := run(t, "shopctl", twoShops+"---\n"+bad, "render", "-f", "-")
	if res.code != 1 {
		t.Fatalf("exit %d, want 1", res.code)
	}
	if res.stdout != "" {
		t.Error("an invalid Shop must stop the whole render, but something was printed")
	}
	want := `stdin (document 4): Shop.commerce.shopplatform.io "bad" is invalid: spec.databases.orders: Invalid value: managed and external are mutually exclusive: set one of them`
	if !strings.Contains(res.stderr, want) {
		t.Errorf("stderr = %q\nwant it to contain %q", res.stderr, want)
	}
}

func TestRenderInputErrors(t *testing.T) {
	for _, c := range []struct {
		name, stdin string
		args        []string
		want        string
	}{
		{"no files", "", []string{"render"}, "no input"},
		{"missing file", "", []string{"render", "-f", "/nonexistent/shop.yaml"}, "no such file"},
		{"no shop", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", []string{"render", "-f", "-"}, "no Shop"},
		{"not yaml", "apiVersion: [", []string{"render", "-f", "-"}, "stdin (document 1)"},
		{"duplicate", twoShops + "---\n" + twoShops, []string{"render", "-f", "-"}, "shop shop/prod is also in stdin (document 1)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := run(t, "shopctl", c.stdin, c.args...)
			if res.code != 1 || !strings.Contains(res.stderr, c.want) {
				t.Errorf("exit %d, stderr %q; want 1 and %q", res.code, res.stderr, c.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	res := run(t, "kubectl-shop", "", "validate", "-f", samples())
	if res.code != 0 {
		t.Fatalf("exit %d: %s", res.code, res.stderr)
	}
	for _, name := range []string{"dev", "staging", "prod"} {
		if !strings.Contains(res.stdout, "shop/"+name+" is valid\n") {
			t.Errorf("stdout %q does not say shop/%s is valid", res.stdout, name)
		}
	}

	bad := run(t, "shopctl", "apiVersion: commerce.shopplatform.io/v1alpha1\nkind: Shop\nmetadata: {name: x}\nspec: {environment: staging}\n", "validate", "-f", "-")
	if bad.code != 1 || !strings.Contains(bad.stderr, `spec.environment: Unsupported value: "staging"`) || bad.stdout != "" {
		t.Errorf("invalid: exit %d, stdout %q, stderr %q", bad.code, bad.stdout, bad.stderr)
	}
}

func TestValidateOld(t *testing.T) {
	shopWith := func(size string) string {
		return "apiVersion: commerce.shopplatform.io/v1alpha1\nkind: Shop\nmetadata: {name: x, namespace: shop}\nspec: {databases: {orders: {managed: {storageSize: " + size + "}}}}\n"
	}
	old := writeFile(t, "old.yaml", shopWith("10Gi"))
	shrunk := run(t, "shopctl", shopWith("5Gi"), "validate", "-f", "-", "--old", old)
	if shrunk.code != 1 || !strings.Contains(shrunk.stderr, "storageSize is immutable") {
		t.Errorf("shrinking: exit %d, stderr %q", shrunk.code, shrunk.stderr)
	}
	same := run(t, "shopctl", shopWith("10240Mi"), "validate", "-f", "-", "--old", old)
	if same.code != 0 || same.stdout != "shop/x is valid\n" {
		t.Errorf("same size: exit %d, stdout %q, stderr %q", same.code, same.stdout, same.stderr)
	}
}

func TestKubectlPluginName(t *testing.T) {
	res := run(t, "kubectl-shop", "", "--help")
	if res.code != 0 || !strings.Contains(res.stdout, "kubectl shop [command]") {
		t.Errorf("exit %d, help:\n%s", res.code, res.stdout)
	}
	for _, cmd := range []string{"render", "validate", "status", "open"} {
		if !strings.Contains(res.stdout, "  "+cmd+" ") {
			t.Errorf("help does not list %s", cmd)
		}
	}
}

func BenchmarkRenderProduction(b *testing.B) {
	path := filepath.Join(samples(), "commerce_v1alpha1_shop_production.yaml")
	b.ReportAllocs()
	for b.Loop() {
		root := cli.NewRoot("shopctl")
		root.SetArgs([]string{"render", "-f", path})
		root.SetOut(discard{})
		root.SetErr(discard{})
		if err := root.Execute(); err != nil {
			b.Fatal(err)
		}
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
