package secrets_test

import (
	"bytes"
	"slices"
	"testing"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
	"github.com/shopplatform/shop-operator/internal/secrets"
)

func names(specs []secrets.Spec) []string {
	var out []string
	for _, s := range specs {
		out = append(out, s.Name)
	}
	return out
}

func TestFor(t *testing.T) {
	spec := shopv1.ShopSpec{}
	spec.Databases.Catalog.External = &shopv1.ExternalDatabase{SecretName: "catalog-pg"}
	got := names(secrets.For(rendertest.Input(spec)))
	want := []string{"demo-auth-db-credentials", "demo-auth-db-tls", "demo-orders-db-credentials", "demo-orders-db-tls", "demo-auth-signing-key", "demo-frontend-cookie"}
	if !slices.Equal(got, want) {
		t.Errorf("generated Secrets = %v, want %v (an external database gets none)", got, want)
	}
}

func TestFillKeepsExistingValues(t *testing.T) {
	in := rendertest.Input(shopv1.ShopSpec{})
	specs := secrets.For(in)
	existing := map[string]map[string][]byte{
		"demo-frontend-cookie":     {secrets.CookieSecretKey: []byte("kept")},
		"demo-auth-db-credentials": {secrets.PasswordKey: []byte("kept-too")},
	}
	first, err := secrets.Fill(specs, existing)
	if err != nil {
		t.Fatal(err)
	}
	if v := first["demo-frontend-cookie"][secrets.CookieSecretKey]; string(v) != "kept" {
		t.Errorf("cookie secret regenerated: %q", v)
	}
	if v := first["demo-auth-db-credentials"][secrets.PasswordKey]; string(v) != "kept-too" {
		t.Errorf("password regenerated: %q", v)
	}
	super := first["demo-auth-db-credentials"][secrets.SuperuserPasswordKey]
	if len(super) < 32 {
		t.Errorf("missing superuser password generated as %q", super)
	}
	second, err := secrets.Fill(specs, first)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range first {
		for k, v := range data {
			if !bytes.Equal(second[name][k], v) {
				t.Errorf("%s/%s changed on the second fill", name, k)
			}
		}
	}
	if bytes.Equal(first["demo-orders-db-credentials"][secrets.PasswordKey], first["demo-catalog-db-credentials"][secrets.PasswordKey]) {
		t.Error("two databases share a password")
	}
}
