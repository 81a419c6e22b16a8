package databases_test

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/builders/databases"
	"github.com/shopplatform/shop-operator/internal/buildertest"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
	"github.com/shopplatform/shop-operator/internal/testenv"
)

func TestMain(m *testing.M) { buildertest.Main(m, testenv.Options{}) }

// variants are the Shops the golden and apply tests render. (HPA settings do
// not touch databases, so the workloads' production-no-hpa variant has no
// counterpart here.)
func variants() []buildertest.Variant {
	out := buildertest.Environments()
	external := shopv1.ShopSpec{Environment: shopv1.Production}
	external.Databases.Catalog.External = &shopv1.ExternalDatabase{SecretName: "catalog-pg"}
	custom := shopv1.ShopSpec{Environment: shopv1.Production}
	custom.Databases.Auth.Managed = &shopv1.ManagedDatabase{
		Image:            "registry.example.com/postgres:17.2-alpine",
		Version:          "17",
		StorageSize:      ptr.To(resource.MustParse("50Gi")),
		StorageClassName: ptr.To("fast-ssd"),
	}
	custom.Observability.Prometheus.ServiceMonitors = ptr.To(false)
	return append(out,
		buildertest.Variant{Name: "production-external-db", Input: rendertest.Input(external)},
		buildertest.Variant{Name: "production-custom-image", Input: rendertest.Input(custom)},
	)
}

func build(t testing.TB, in render.Input) []*unstructured.Unstructured {
	t.Helper()
	return buildertest.Build(t, databases.Build, in)
}

var find = buildertest.Find

func TestGolden(t *testing.T) { buildertest.Golden(t, variants(), databases.Build) }

// TestApply proves the real API server accepts every object of every variant
// (server-side apply, dry run), owned by a real Shop.
func TestApply(t *testing.T) { buildertest.ApplyDryRun(t, "databases", variants(), databases.Build) }

// TestReapplyWritesNothing creates every object for real and applies the
// same render again: nothing may change, or the operator would write on
// every reconcile.
func TestReapplyWritesNothing(t *testing.T) {
	buildertest.ReapplyWritesNothing(t, "databases-steady", buildertest.Environments(), databases.Build)
}

func TestExternalDatabaseRendersNothing(t *testing.T) {
	spec := shopv1.ShopSpec{Environment: shopv1.Production}
	spec.Databases.Catalog.External = &shopv1.ExternalDatabase{SecretName: "catalog-pg"}
	objs := build(t, rendertest.Input(spec))
	for _, u := range objs {
		if strings.Contains(u.GetName(), "catalog") {
			t.Errorf("external catalog database, yet %s %s is rendered", u.GetKind(), u.GetName())
		}
	}
	for _, svc := range []string{render.Auth, render.Orders} {
		if find(objs, "StatefulSet", "demo-"+svc+"-db") == nil {
			t.Errorf("managed %s database lost its StatefulSet", svc)
		}
	}

	spec.Databases.Auth.External = &shopv1.ExternalDatabase{SecretName: "auth-pg"}
	spec.Databases.Orders.External = &shopv1.ExternalDatabase{SecretName: "orders-pg"}
	if objs := build(t, rendertest.Input(spec)); len(objs) != 0 {
		t.Errorf("every database external, yet %d objects rendered", len(objs))
	}
}

func TestStorage(t *testing.T) {
	dev := find(build(t, rendertest.Input(shopv1.ShopSpec{})), "StatefulSet", "demo-orders-db")
	if _, found, _ := unstructured.NestedSlice(dev.Object, "spec", "volumeClaimTemplates"); found {
		t.Error("development is ephemeral, yet claims a volume")
	}
	vols, _, _ := unstructured.NestedSlice(dev.Object, "spec", "template", "spec", "volumes")
	if !hasEmptyDir(vols, "data") {
		t.Errorf("development: no emptyDir data volume in %v", vols)
	}

	for _, e := range []shopv1.Environment{shopv1.Testing, shopv1.Production} {
		sts := find(build(t, rendertest.Input(shopv1.ShopSpec{Environment: e})), "StatefulSet", "demo-orders-db")
		claims, _, _ := unstructured.NestedSlice(sts.Object, "spec", "volumeClaimTemplates")
		if len(claims) != 1 || claims[0].(map[string]any)["metadata"].(map[string]any)["name"] != "data" {
			t.Errorf("%s: claims %v, want one named data", e, claims)
		}
		policy, _, _ := unstructured.NestedStringMap(sts.Object, "spec", "persistentVolumeClaimRetentionPolicy")
		if policy["whenDeleted"] != "Retain" || policy["whenScaled"] != "Retain" {
			t.Errorf("%s: retention %v: deleting a Shop must keep its data", e, policy)
		}
		vols, _, _ := unstructured.NestedSlice(sts.Object, "spec", "template", "spec", "volumes")
		if hasEmptyDir(vols, "data") {
			t.Errorf("%s: data on an emptyDir", e)
		}
	}
}

func hasEmptyDir(vols []any, name string) bool {
	for _, v := range vols {
		m := v.(map[string]any)
		if _, ok := m["emptyDir"]; ok && m["name"] == name {
			return true
		}
	}
	return false
}

func TestExporterFollowsServiceMonitors(t *testing.T) {
	check := func(spec shopv1.ShopSpec, want bool) {
		t.Helper()
		objs := build(t, rendertest.Input(spec))
		cs, _, _ := unstructured.NestedSlice(find(objs, "StatefulSet", "demo-auth-db").Object, "spec", "template", "spec", "containers")
		ports, _, _ := unstructured.NestedSlice(find(objs, "Service", "demo-auth-db").Object, "spec", "ports")
		if got := len(cs) == 2; got != want {
			t.Errorf("exporter sidecar = %v, want %v", got, want)
		}
		if got := len(ports) == 2 && ports[1].(map[string]any)["port"] == int64(9187); got != want {
			t.Errorf("metrics port on the Service = %v, want %v (%v)", got, want, ports)
		}
	}
	check(shopv1.ShopSpec{}, true)
	off := shopv1.ShopSpec{}
	off.Observability.Prometheus.ServiceMonitors = ptr.To(false)
	check(off, false)
}

func TestCredentialsSecret(t *testing.T) {
	in := rendertest.Input(shopv1.ShopSpec{})
	in.Generated[in.DatabaseSecretName(render.Orders)] = map[string][]byte{"password": []byte("p1"), "superuser-password": []byte("p2")}
	s := find(build(t, in), "Secret", "demo-orders-db-credentials")
	data, _, _ := unstructured.NestedStringMap(s.Object, "data")
	want := map[string]string{"host": "demo-orders-db", "port": "5432", "dbname": "orders", "user": "orders", "password": "p1", "superuser-password": "p2"}
	for k, v := range want {
		// data is base64 in the unstructured form.
		if got := decode(t, data[k]); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	delete(in.Generated, in.DatabaseSecretName(render.Orders))
	if _, err := databases.Build(in); err == nil || !strings.Contains(err.Error(), "demo-orders-db-credentials") {
		t.Errorf("missing generated credentials: err = %v", err)
	}
}

func TestEveryContainerIsLockedDown(t *testing.T) {
	for _, v := range variants() {
		for _, u := range build(t, v.Input) {
			if u.GetKind() != "StatefulSet" {
				continue
			}
			pod, _, _ := unstructured.NestedMap(u.Object, "spec", "template", "spec")
			uid, _, _ := unstructured.NestedInt64(pod, "securityContext", "runAsUser")
			fsGroup, _, _ := unstructured.NestedInt64(pod, "securityContext", "fsGroup")
			nonRoot, _, _ := unstructured.NestedBool(pod, "securityContext", "runAsNonRoot")
			if uid != 70 || fsGroup != 70 || !nonRoot {
				t.Errorf("%s/%s: pod securityContext %v", v.Name, u.GetName(), pod["securityContext"])
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

func TestNoArgoCDTrackingOnChildren(t *testing.T) {
	shop := rendertest.Shop(shopv1.ShopSpec{Environment: shopv1.Production})
	shop.Labels = map[string]string{"app.kubernetes.io/instance": "shop-prod"}
	shop.Annotations = map[string]string{"argocd.argoproj.io/tracking-id": "shop-prod:commerce.shopplatform.io/Shop:shop/demo"}
	for _, u := range build(t, rendertest.InputFor(shop, render.AllAPIs)) {
		tl, _, _ := unstructured.NestedStringMap(u.Object, "spec", "template", "metadata", "labels")
		for _, m := range []map[string]string{u.GetLabels(), u.GetAnnotations(), tl} {
			for k := range m {
				if k == "app.kubernetes.io/instance" || strings.HasPrefix(k, "argocd.argoproj.io/") {
					t.Errorf("%s %s carries %s", u.GetKind(), u.GetName(), k)
				}
			}
		}
	}
}

func BenchmarkBuild(b *testing.B) {
	in := rendertest.Input(shopv1.ShopSpec{Environment: shopv1.Production})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := databases.Build(in); err != nil {
			b.Fatal(err)
		}
	}
}
