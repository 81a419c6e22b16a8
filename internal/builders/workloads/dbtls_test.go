package workloads_test

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/builders/workloads"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
)

// TestManagedDatabaseOverVerifiedTLS: a service with a managed database
// verifies the server against the database's own CA (verify-full, the CA
// file mounted alone, never the server's key); a service with an external
// database, or none, gets no CA volume.
func TestManagedDatabaseOverVerifiedTLS(t *testing.T) {
	spec := shopv1.ShopSpec{}
	spec.Databases.Catalog.External = &shopv1.ExternalDatabase{SecretName: "catalog-pg"}
	objs := build(t, rendertest.Input(spec))
	for _, svc := range render.Services {
		d := find(objs, "Deployment", "demo-"+svc)
		vars, _ := containerEnv(t, d)
		vol := volume(d, "db-tls")
		if svc != render.Auth && svc != render.Orders {
			if vol != nil {
				t.Errorf("%s: a database CA volume without a managed database", svc)
			}
			continue
		}
		if vars["PGSSLMODE"]["value"] != "verify-full" || vars["PGSSLROOTCERT"]["value"] != "/var/run/secrets/shop/db-tls/ca.crt" {
			t.Errorf("%s: PGSSLMODE %v PGSSLROOTCERT %v", svc, vars["PGSSLMODE"], vars["PGSSLROOTCERT"])
		}
		items, _, _ := unstructured.NestedSlice(vol, "secret", "items")
		name, _, _ := unstructured.NestedString(vol, "secret", "secretName")
		if name != "demo-"+svc+"-db-tls" || len(items) != 1 || items[0].(map[string]any)["key"] != "ca.crt" {
			t.Errorf("%s: CA volume %v: want ca.crt alone from demo-%s-db-tls", svc, vol, svc)
		}
	}
	catalog, _ := containerEnv(t, find(objs, "Deployment", "demo-catalog"))
	if _, set := catalog["PGSSLROOTCERT"]; set {
		t.Error("the external catalog database gets the operator's CA")
	}

	// A new CA (the Secret deleted and regenerated) rolls the service's pods.
	in := rendertest.Input(shopv1.ShopSpec{})
	before := build(t, in)
	in.Generated["demo-orders-db-tls"] = map[string][]byte{"ca.crt": []byte("new"), "tls.crt": []byte("new"), "tls.key": []byte("new")}
	after := build(t, in)
	sum := func(objs []*unstructured.Unstructured, svc string) string {
		a, _, _ := unstructured.NestedString(find(objs, "Deployment", "demo-"+svc).Object,
			"spec", "template", "metadata", "annotations", workloads.SecretsChecksumAnnotation)
		return a
	}
	for _, svc := range render.Services {
		if changed := sum(before, svc) != sum(after, svc); changed != (svc == render.Orders) {
			t.Errorf("%s: secrets checksum changed = %v after the orders CA changed", svc, changed)
		}
	}
}

// TestExternalDatabaseCA: a service with an external database reads the
// optional ca.crt of the user's Secret as its default root certificate
// ($HOME/.postgresql/root.crt, from a volume that tolerates the key's
// absence) and never gets PGSSLROOTCERT, which pgx would fail on when the
// file is missing. The sslmode stays the user's.
func TestExternalDatabaseCA(t *testing.T) {
	spec := shopv1.ShopSpec{}
	spec.Databases.Catalog.External = &shopv1.ExternalDatabase{SecretName: "catalog-pg"}
	objs := build(t, rendertest.Input(spec))
	for _, svc := range render.Services {
		d := find(objs, "Deployment", "demo-"+svc)
		vars, _ := containerEnv(t, d)
		vol := volume(d, "db-ca")
		if svc != render.Catalog {
			if vol != nil || vars["HOME"] != nil {
				t.Errorf("%s: an external database CA volume or HOME without an external database", svc)
			}
			continue
		}
		if _, set := vars["PGSSLROOTCERT"]; set {
			t.Error("PGSSLROOTCERT set for an external database")
		}
		mode, _, _ := unstructured.NestedMap(vars["PGSSLMODE"], "valueFrom", "secretKeyRef")
		if mode["name"] != "catalog-pg" || mode["key"] != "sslmode" || mode["optional"] != true {
			t.Errorf("PGSSLMODE %v: want the user's optional sslmode", vars["PGSSLMODE"])
		}
		secret, _, _ := unstructured.NestedMap(vol, "secret")
		items, _, _ := unstructured.NestedSlice(secret, "items")
		if secret["secretName"] != "catalog-pg" || secret["optional"] != true || len(items) != 1 ||
			items[0].(map[string]any)["key"] != "ca.crt" || items[0].(map[string]any)["path"] != "root.crt" {
			t.Errorf("CA volume %v: want ca.crt alone as root.crt from catalog-pg, optional", vol)
		}
		home, _ := vars["HOME"]["value"].(string) // nil map reads as ""
		if got := mountPath(t, d, "db-ca"); home == "" || got != home+"/.postgresql" {
			t.Errorf("HOME %q, CA mounted at %q: want $HOME/.postgresql", home, got)
		}
	}
}

// TestExternalDatabaseCARollsPods: the controller passes an external
// database Secret's ca.crt (render.Input.Referenced); a new CA changes only
// that service's secrets checksum, and a Secret without one changes nothing,
// so Shops without a CA keep their pods.
func TestExternalDatabaseCARollsPods(t *testing.T) {
	spec := shopv1.ShopSpec{}
	spec.Databases.Catalog.External = &shopv1.ExternalDatabase{SecretName: "catalog-pg"}
	sums := func(cas map[string][]byte) map[string]string {
		in := rendertest.Input(spec)
		in.Referenced = map[string]map[string][]byte{}
		for name, ca := range cas {
			in.Referenced[name] = map[string][]byte{"ca.crt": ca}
		}
		objs := build(t, in)
		out := map[string]string{}
		for _, svc := range render.Services {
			out[svc], _, _ = unstructured.NestedString(find(objs, "Deployment", "demo-"+svc).Object,
				"spec", "template", "metadata", "annotations", workloads.SecretsChecksumAnnotation)
		}
		return out
	}
	none, empty := sums(nil), sums(map[string][]byte{"catalog-pg": nil})
	first, second := sums(map[string][]byte{"catalog-pg": []byte("ca one")}), sums(map[string][]byte{"catalog-pg": []byte("ca two")})
	for _, svc := range render.Services {
		if none[svc] != empty[svc] {
			t.Errorf("%s: an empty ca.crt changed the checksum", svc)
		}
		if changed := first[svc] != second[svc]; changed != (svc == render.Catalog) {
			t.Errorf("%s: secrets checksum changed = %v after the catalog database's CA changed", svc, changed)
		}
		if changed := none[svc] != first[svc]; changed != (svc == render.Catalog) {
			t.Errorf("%s: secrets checksum changed = %v when the catalog database's CA appeared", svc, changed)
		}
	}
}

func mountPath(t *testing.T, d *unstructured.Unstructured, volume string) string {
	t.Helper()
	cs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	mounts, _, _ := unstructured.NestedSlice(cs[0].(map[string]any), "volumeMounts")
	for _, m := range mounts {
		if m.(map[string]any)["name"] == volume {
			return m.(map[string]any)["mountPath"].(string)
		}
	}
	return ""
}

func volume(d *unstructured.Unstructured, name string) map[string]any {
	vols, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "volumes")
	for _, v := range vols {
		if v.(map[string]any)["name"] == name {
			return v.(map[string]any)
		}
	}
	return nil
}
