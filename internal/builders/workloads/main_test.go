package workloads_test

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/builders/workloads"
	"github.com/shopplatform/shop-operator/internal/buildertest"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
	"github.com/shopplatform/shop-operator/internal/testenv"
)

func TestMain(m *testing.M) { buildertest.Main(m, testenv.Options{}) }

// variants are the Shops the golden and apply tests render.
func variants() []buildertest.Variant {
	out := buildertest.Environments()
	external := shopv1.ShopSpec{Environment: shopv1.Production}
	external.Databases.Catalog.External = &shopv1.ExternalDatabase{SecretName: "catalog-pg"}
	noHPA := shopv1.ShopSpec{Environment: shopv1.Production}
	noHPA.Workloads.Frontend.Autoscaling = &shopv1.AutoscalingSpec{Enabled: ptr.To(false)}
	noHPA.Workloads.Auth.Autoscaling = &shopv1.AutoscalingSpec{Enabled: ptr.To(false)}
	noHPA.Workloads.Auth.Replicas = ptr.To[int32](1)
	custom := shopv1.ShopSpec{
		Environment: shopv1.Testing,
		Image:       shopv1.ImageSpec{Repository: "registry.example.com/shop/shopd", Tag: "v9.0.0"},
	}
	custom.Workloads.Payment.Image = &shopv1.ImageSpec{Tag: "v9.0.0-debug", PullPolicy: corev1.PullAlways}
	custom.Workloads.Payment.Env = []corev1.EnvVar{
		{Name: "PAYMENT_FAULT_ERROR_RATIO", Value: "0.1"},
		{Name: "LOG_LEVEL", Value: "warn"},
	}
	custom.Workloads.Orders.Resources = &corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("300m")},
	}
	return append(out,
		buildertest.Variant{Name: "production-external-db", Input: rendertest.Input(external)},
		buildertest.Variant{Name: "production-no-hpa", Input: rendertest.Input(noHPA)},
		buildertest.Variant{Name: "testing-custom-image", Input: rendertest.Input(custom)},
	)
}

func build(t testing.TB, in render.Input) []*unstructured.Unstructured {
	t.Helper()
	return buildertest.Build(t, workloads.Build, in)
}

func TestGolden(t *testing.T) { buildertest.Golden(t, variants(), workloads.Build) }

// TestApply proves the real API server accepts every object of every variant
// (server-side apply, dry run), owned by a real Shop.
func TestApply(t *testing.T) { buildertest.ApplyDryRun(t, "workloads", variants(), workloads.Build) }

// TestReapplyWritesNothing creates every object for real and applies the
// same render again: nothing may change, or the operator would write on
// every reconcile.
func TestReapplyWritesNothing(t *testing.T) {
	buildertest.ReapplyWritesNothing(t, "workloads-steady", buildertest.Environments(), workloads.Build)
}

// find returns the object of kind and name, or nil.
var find = buildertest.Find

func count(objs []*unstructured.Unstructured, kind string) int {
	n := 0
	for _, u := range objs {
		if u.GetKind() == kind {
			n++
		}
	}
	return n
}

// containerEnv returns the env of a Deployment's one container, by name.
func containerEnv(t *testing.T, d *unstructured.Unstructured) (map[string]map[string]any, []string) {
	t.Helper()
	cs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	if len(cs) != 1 {
		t.Fatalf("%s has %d containers, want 1", d.GetName(), len(cs))
	}
	vars, _, _ := unstructured.NestedSlice(cs[0].(map[string]any), "env")
	out := map[string]map[string]any{}
	var names []string
	for _, v := range vars {
		m := v.(map[string]any)
		name := m["name"].(string)
		out[name] = m
		names = append(names, name)
	}
	return out, names
}

func TestReplicasUnsetWhenAutoscaled(t *testing.T) {
	objs := build(t, rendertest.Input(shopv1.ShopSpec{Environment: shopv1.Production}))
	for _, svc := range render.Services {
		d := find(objs, "Deployment", "demo-"+svc)
		if _, found, _ := unstructured.NestedFieldNoCopy(d.Object, "spec", "replicas"); found {
			t.Errorf("%s: spec.replicas is set although an HPA scales it: server-side apply would fight the HPA", svc)
		}
		if find(objs, "HorizontalPodAutoscaler", "demo-"+svc) == nil {
			t.Errorf("%s: no HPA in production", svc)
		}
		if find(objs, "PodDisruptionBudget", "demo-"+svc) == nil {
			t.Errorf("%s: no PDB in production", svc)
		}
	}
}

func TestReplicasSetWithoutAutoscaling(t *testing.T) {
	spec := shopv1.ShopSpec{Environment: shopv1.Production}
	spec.Workloads.Auth.Autoscaling = &shopv1.AutoscalingSpec{Enabled: ptr.To(false)}
	spec.Workloads.Auth.Replicas = ptr.To[int32](1)
	objs := build(t, rendertest.Input(spec))
	got, _, _ := unstructured.NestedInt64(find(objs, "Deployment", "demo-auth").Object, "spec", "replicas")
	if got != 1 {
		t.Errorf("auth replicas = %d, want 1", got)
	}
	if find(objs, "HorizontalPodAutoscaler", "demo-auth") != nil {
		t.Error("auth has an HPA although autoscaling is off")
	}
	if find(objs, "PodDisruptionBudget", "demo-auth") != nil {
		t.Error("auth has a PDB with a single replica: it would block every drain")
	}
	if find(objs, "HorizontalPodAutoscaler", "demo-catalog") == nil {
		t.Error("catalog lost its HPA")
	}
}

func TestDevelopmentHasNoProductionExtras(t *testing.T) {
	objs := build(t, rendertest.Input(shopv1.ShopSpec{}))
	for _, kind := range []string{"HorizontalPodAutoscaler", "PodDisruptionBudget"} {
		if n := count(objs, kind); n != 0 {
			t.Errorf("development renders %d %s", n, kind)
		}
	}
	for _, kind := range []string{"Deployment", "Service", "ServiceAccount"} {
		if n := count(objs, kind); n != len(render.Services) {
			t.Errorf("%d %s, want %d", n, kind, len(render.Services))
		}
	}
	d := find(objs, "Deployment", "demo-frontend")
	if _, found, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "topologySpreadConstraints"); found {
		t.Error("development spreads pods over zones")
	}
}

func TestExternalDatabaseEnvFromUserSecret(t *testing.T) {
	spec := shopv1.ShopSpec{}
	spec.Databases.Orders.External = &shopv1.ExternalDatabase{SecretName: "orders-pg"}
	objs := build(t, rendertest.Input(spec))
	vars, _ := containerEnv(t, find(objs, "Deployment", "demo-orders"))
	for name, key := range map[string]string{"PGHOST": "host", "PGPORT": "port", "PGDATABASE": "dbname", "PGUSER": "user", "PGPASSWORD": "password", "PGSSLMODE": "sslmode"} {
		ref, _, _ := unstructured.NestedMap(vars[name], "valueFrom", "secretKeyRef")
		if ref["name"] != "orders-pg" || ref["key"] != key {
			t.Errorf("%s = %v, want key %s of Secret orders-pg", name, vars[name], key)
		}
		if _, hasValue := vars[name]["value"]; hasValue {
			t.Errorf("%s has a literal value: %v", name, vars[name])
		}
	}
	if ssl, _, _ := unstructured.NestedBool(vars["PGSSLMODE"], "valueFrom", "secretKeyRef", "optional"); !ssl {
		t.Error("sslmode must be optional in the user's Secret")
	}
	// A managed database next to it still uses the generated credentials.
	auth, _ := containerEnv(t, find(objs, "Deployment", "demo-auth"))
	if auth["PGHOST"]["value"] != "demo-auth-db" || auth["PGUSER"]["value"] != "auth" {
		t.Errorf("managed auth database env: %v %v", auth["PGHOST"], auth["PGUSER"])
	}
	if ref, _, _ := unstructured.NestedMap(auth["PGPASSWORD"], "valueFrom", "secretKeyRef"); ref["name"] != "demo-auth-db-credentials" || ref["key"] != "password" {
		t.Errorf("auth PGPASSWORD = %v, want the service role's password, never the superuser's", ref)
	}
}

func TestUserEnvWins(t *testing.T) {
	spec := shopv1.ShopSpec{}
	spec.Workloads.Payment.Env = []corev1.EnvVar{{Name: "LOG_LEVEL", Value: "error"}, {Name: "PAYMENT_FAULT_LATENCY", Value: "300ms"}}
	vars, names := containerEnv(t, find(build(t, rendertest.Input(spec)), "Deployment", "demo-payment"))
	if vars["LOG_LEVEL"]["value"] != "error" {
		t.Errorf("LOG_LEVEL = %v, want the user's error", vars["LOG_LEVEL"])
	}
	seen := map[string]bool{}
	for _, n := range names {
		if seen[n] {
			t.Errorf("env %s appears twice: server-side apply refuses duplicate keys", n)
		}
		seen[n] = true
	}
	if names[len(names)-1] != "PAYMENT_FAULT_LATENCY" {
		t.Errorf("the user's env is not last: %v", names)
	}
}

func TestNoArgoCDTrackingOnChildren(t *testing.T) {
	shop := rendertest.Shop(shopv1.ShopSpec{Environment: shopv1.Production})
	shop.Labels = map[string]string{"app.kubernetes.io/instance": "shop-prod"}
	shop.Annotations = map[string]string{"argocd.argoproj.io/tracking-id": "shop-prod:commerce.shopplatform.io/Shop:shop/demo"}
	for _, u := range build(t, rendertest.InputFor(shop, render.AllAPIs)) {
		check := func(where string, m map[string]string) {
			for k := range m {
				if k == "app.kubernetes.io/instance" || strings.HasPrefix(k, "argocd.argoproj.io/") {
					t.Errorf("%s %s: %s carries %s", u.GetKind(), u.GetName(), where, k)
				}
			}
		}
		check("labels", u.GetLabels())
		check("annotations", u.GetAnnotations())
		tl, _, _ := unstructured.NestedStringMap(u.Object, "spec", "template", "metadata", "labels")
		check("pod labels", tl)
		ta, _, _ := unstructured.NestedStringMap(u.Object, "spec", "template", "metadata", "annotations")
		check("pod annotations", ta)
	}
}

func TestEveryContainerIsLockedDown(t *testing.T) {
	for _, v := range variants() {
		for _, u := range build(t, v.Input) {
			if u.GetKind() != "Deployment" {
				continue
			}
			pod, _, _ := unstructured.NestedMap(u.Object, "spec", "template", "spec")
			if nonRoot, _, _ := unstructured.NestedBool(pod, "securityContext", "runAsNonRoot"); !nonRoot {
				t.Errorf("%s/%s: pod may run as root", v.Name, u.GetName())
			}
			if sc, _, _ := unstructured.NestedString(pod, "securityContext", "seccompProfile", "type"); sc != "RuntimeDefault" {
				t.Errorf("%s/%s: seccomp %q", v.Name, u.GetName(), sc)
			}
			cs, _, _ := unstructured.NestedSlice(pod, "containers")
			for _, c := range cs {
				c := c.(map[string]any)
				ro, _, _ := unstructured.NestedBool(c, "securityContext", "readOnlyRootFilesystem")
				esc, found, _ := unstructured.NestedBool(c, "securityContext", "allowPrivilegeEscalation")
				drop, _, _ := unstructured.NestedStringSlice(c, "securityContext", "capabilities", "drop")
				if !ro || !found || esc || len(drop) != 1 || drop[0] != "ALL" {
					t.Errorf("%s/%s container %s: securityContext %v", v.Name, u.GetName(), c["name"], c["securityContext"])
				}
			}
		}
	}
}

func configData(t *testing.T, objs []*unstructured.Unstructured) map[string]string {
	t.Helper()
	data, _, _ := unstructured.NestedStringMap(find(objs, "ConfigMap", "demo-config").Object, "data")
	return data
}

func TestTelemetrySettings(t *testing.T) {
	prod := configData(t, build(t, rendertest.Input(shopv1.ShopSpec{Environment: shopv1.Production})))
	if prod["OTEL_EXPORTER_OTLP_ENDPOINT"] != "http://demo-collector:4317" {
		t.Errorf("endpoint = %q", prod["OTEL_EXPORTER_OTLP_ENDPOINT"])
	}
	if prod["OTEL_TRACES_SAMPLER_ARG"] != "1.0" {
		t.Errorf("production tail-samples in the collector: the services must keep every trace, got %q", prod["OTEL_TRACES_SAMPLER_ARG"])
	}

	head := shopv1.ShopSpec{Environment: shopv1.Production}
	head.Observability.Collector.TailSampling = ptr.To(false)
	if got := configData(t, build(t, rendertest.Input(head)))["OTEL_TRACES_SAMPLER_ARG"]; got != "0.1" {
		t.Errorf("head sampling at 10%%: ratio %q, want 0.1", got)
	}

	off := shopv1.ShopSpec{}
	off.Observability.Collector.Enabled = ptr.To(false)
	if ep, ok := configData(t, build(t, rendertest.Input(off)))["OTEL_EXPORTER_OTLP_ENDPOINT"]; ok {
		t.Errorf("collector disabled, endpoint still %q", ep)
	}
	noOperator := rendertest.InputFor(rendertest.Shop(shopv1.ShopSpec{}), render.APIs{Istio: true})
	if ep, ok := configData(t, build(t, noOperator))["OTEL_EXPORTER_OTLP_ENDPOINT"]; ok {
		t.Errorf("no opentelemetry-operator, endpoint still %q", ep)
	}
}

func TestIstioInjection(t *testing.T) {
	label := func(in render.Input) string {
		d := find(build(t, in), "Deployment", "demo-catalog")
		l, _, _ := unstructured.NestedString(d.Object, "spec", "template", "metadata", "labels", workloads.IstioInjectLabel)
		return l
	}
	if got := label(rendertest.Input(shopv1.ShopSpec{})); got != "true" {
		t.Errorf("istio on: inject label %q", got)
	}
	d := find(build(t, rendertest.Input(shopv1.ShopSpec{})), "Deployment", "demo-catalog")
	if a, _, _ := unstructured.NestedString(d.Object, "spec", "template", "metadata", "annotations", "proxy.istio.io/config"); !strings.Contains(a, "holdApplicationUntilProxyStarts") {
		t.Errorf("istio on: the app may start before its sidecar (proxy config %q)", a)
	}
	if got := label(rendertest.InputFor(rendertest.Shop(shopv1.ShopSpec{}), render.APIs{})); got != "" {
		t.Errorf("no Istio in the cluster: inject label %q", got)
	}
	off := shopv1.ShopSpec{}
	off.Gateway.Istio.Enabled = ptr.To(false)
	if got := label(rendertest.Input(off)); got != "" {
		t.Errorf("istio disabled: inject label %q", got)
	}
}

// TestChecksumRollsPods: a settings change changes every pod template; a
// change to one service's settings leaves the others alone.
func TestChecksumRollsPods(t *testing.T) {
	annotation := func(spec shopv1.ShopSpec, svc, key string) string {
		d := find(build(t, rendertest.Input(spec)), "Deployment", "demo-"+svc)
		a, _, _ := unstructured.NestedString(d.Object, "spec", "template", "metadata", "annotations", key)
		return a
	}
	base := shopv1.ShopSpec{}
	changed := shopv1.ShopSpec{}
	changed.Observability.Collector.SamplingPercentage = ptr.To[int32](50)
	for _, svc := range render.Services {
		a, b := annotation(base, svc, workloads.ConfigChecksumAnnotation), annotation(changed, svc, workloads.ConfigChecksumAnnotation)
		if a == "" || a == b {
			t.Errorf("%s: config checksum %q -> %q, want a change", svc, a, b)
		}
	}
	if annotation(base, render.Auth, workloads.SecretsChecksumAnnotation) == "" {
		t.Error("auth has no secrets checksum")
	}

	secretsSum := func(objs []*unstructured.Unstructured, svc string) string {
		a, _, _ := unstructured.NestedString(find(objs, "Deployment", "demo-"+svc).Object,
			"spec", "template", "metadata", "annotations", workloads.SecretsChecksumAnnotation)
		return a
	}
	in := rendertest.Input(base)
	before := build(t, in)
	in.Generated["demo-frontend-cookie"] = map[string][]byte{"cookie-secret": []byte("other")}
	after := build(t, in)
	for _, svc := range render.Services {
		changed := secretsSum(before, svc) != secretsSum(after, svc)
		if changed != (svc == render.Frontend) {
			t.Errorf("%s: secrets checksum changed = %v after the cookie secret changed", svc, changed)
		}
	}
}

func TestMissingGeneratedSecretIsAnError(t *testing.T) {
	in := rendertest.Input(shopv1.ShopSpec{})
	delete(in.Generated, in.SigningKeySecretName())
	if _, err := workloads.Build(in); err == nil || !strings.Contains(err.Error(), "demo-auth-signing-key") {
		t.Errorf("err = %v, want one naming the missing Secret", err)
	}
}

func BenchmarkBuild(b *testing.B) {
	in := rendertest.Input(shopv1.ShopSpec{Environment: shopv1.Production})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := workloads.Build(in); err != nil {
			b.Fatal(err)
		}
	}
}
