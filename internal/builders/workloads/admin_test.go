package workloads_test

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/builders/workloads"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
)

// TestAdminFromUserSecret: spec.admin.secretName gives auth, and only auth,
// AUTH_ADMIN_EMAIL and AUTH_ADMIN_PASSWORD straight from the user's Secret
// (keys email and password): never a literal, never in the shared ConfigMap.
// Without it nobody gets them.
func TestAdminFromUserSecret(t *testing.T) {
	spec := shopv1.ShopSpec{Admin: &shopv1.AdminSpec{SecretName: "shop-admin"}}
	objs := build(t, rendertest.Input(spec))
	for _, svc := range render.Services {
		vars, _ := containerEnv(t, find(objs, "Deployment", "demo-"+svc))
		for name, key := range map[string]string{"AUTH_ADMIN_EMAIL": "email", "AUTH_ADMIN_PASSWORD": "password"} {
			v, set := vars[name]
			if svc != render.Auth {
				if set {
					t.Errorf("%s gets %s", svc, name)
				}
				continue
			}
			ref, _, _ := unstructured.NestedMap(v, "valueFrom", "secretKeyRef")
			if ref["name"] != "shop-admin" || ref["key"] != key || ref["optional"] != nil {
				t.Errorf("auth %s = %v, want key %s of Secret shop-admin, required", name, v, key)
			}
			if _, literal := v["value"]; literal {
				t.Errorf("auth %s has a literal value", name)
			}
		}
	}
	for k := range configData(t, objs) {
		if k == "AUTH_ADMIN_EMAIL" || k == "AUTH_ADMIN_PASSWORD" {
			t.Errorf("the shared ConfigMap holds %s", k)
		}
	}

	vars, _ := containerEnv(t, find(build(t, rendertest.Input(shopv1.ShopSpec{})), "Deployment", "demo-auth"))
	if _, set := vars["AUTH_ADMIN_EMAIL"]; set {
		t.Error("auth gets AUTH_ADMIN_EMAIL without spec.admin")
	}
}

// TestAdminSecretRollsAuth: auth reads the admin's credentials only at
// start, so the values the controller read (render.Input.Referenced) are in
// auth's secrets checksum: a new email or password rolls auth and nothing
// else; without them (no admin, or its Secret not read) the checksum is the
// one of a Shop without an admin.
func TestAdminSecretRollsAuth(t *testing.T) {
	spec := shopv1.ShopSpec{Admin: &shopv1.AdminSpec{SecretName: "shop-admin"}}
	sums := func(spec shopv1.ShopSpec, admin map[string][]byte) map[string]string {
		in := rendertest.Input(spec)
		if admin != nil {
			in.Referenced = map[string]map[string][]byte{"shop-admin": admin}
		}
		objs := build(t, in)
		out := map[string]string{}
		for _, svc := range render.Services {
			out[svc], _, _ = unstructured.NestedString(find(objs, "Deployment", "demo-"+svc).Object,
				"spec", "template", "metadata", "annotations", workloads.SecretsChecksumAnnotation)
		}
		return out
	}
	none := sums(shopv1.ShopSpec{}, nil)
	first := sums(spec, map[string][]byte{"email": []byte("ops@shop.example"), "password": []byte("first-password")})
	newPassword := sums(spec, map[string][]byte{"email": []byte("ops@shop.example"), "password": []byte("second-password")})
	newEmail := sums(spec, map[string][]byte{"email": []byte("admin@shop.example"), "password": []byte("first-password")})
	for _, svc := range render.Services {
		for what, other := range map[string]map[string]string{"password": newPassword, "email": newEmail, "admin": none} {
			if changed := first[svc] != other[svc]; changed != (svc == render.Auth) {
				t.Errorf("%s: secrets checksum changed = %v with another %s", svc, changed, what)
			}
		}
	}
	if got := sums(spec, nil); got[render.Auth] != none[render.Auth] {
		t.Error("an admin whose Secret was not read changed auth's checksum")
	}
}
