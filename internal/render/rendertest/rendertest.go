// Package rendertest builds render inputs for builder tests.
package rendertest

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/profile"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/secrets"
)

// Environments lists every profile, for table tests.
var Environments = []shopv1.Environment{shopv1.Development, shopv1.Testing, shopv1.Production}

// Shop returns a Shop named "demo" in namespace "shop" with the given spec.
func Shop(spec shopv1.ShopSpec) *shopv1.Shop {
	return &shopv1.Shop{
		TypeMeta:   metav1.TypeMeta{APIVersion: shopv1.GroupVersion.String(), Kind: "Shop"},
		ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: "shop", UID: types.UID("00000000-0000-0000-0000-000000000001"), Generation: 1},
		Spec:       spec,
	}
}

// Input resolves the spec's profile with every optional API present and
// placeholder values for generated secrets.
func Input(spec shopv1.ShopSpec) render.Input {
	return InputFor(Shop(spec), render.AllAPIs)
}

// InputFor resolves a Shop for a cluster serving apis.
func InputFor(shop *shopv1.Shop, apis render.APIs) render.Input {
	in := render.Input{Shop: shop, Spec: profile.Resolve(shop.Spec), APIs: apis}
	in.Generated = secrets.Placeholders(secrets.For(in))
	return in
}
