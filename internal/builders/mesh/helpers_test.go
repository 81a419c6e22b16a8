package mesh_test

import (
	"reflect"

	"k8s.io/utils/ptr"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/buildertest"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
)

// variant is one Shop the tests render: an environment, with or without TLS,
// on a cluster with or without Istio.
type variant struct {
	env   shopv1.Environment
	tls   bool
	istio bool
}

func (v variant) name() string {
	n := string(v.env)
	if v.tls {
		n += "-tls"
	}
	if v.istio {
		n += "-istio"
	} else {
		n += "-no-istio"
	}
	return n
}

func variants() []variant {
	var out []variant
	for _, env := range rendertest.Environments {
		for _, tls := range []bool{false, true} {
			for _, istio := range []bool{true, false} {
				out = append(out, variant{env, tls, istio})
			}
		}
	}
	return out
}

func (v variant) input() render.Input {
	spec := shopv1.ShopSpec{Environment: v.env}
	if v.tls {
		spec.Gateway.Hosts = []string{"shop.example.com", "www.shop.example.com"}
		spec.Gateway.TLSSecretName = "shop-tls"
	}
	apis := render.AllAPIs
	apis.Istio = v.istio
	return rendertest.InputFor(rendertest.Shop(spec), apis)
}

func disabledInput() render.Input {
	return rendertest.Input(shopv1.ShopSpec{Environment: shopv1.Production, Gateway: shopv1.GatewaySpec{
		Istio: shopv1.IstioSpec{Enabled: ptr.To(false)},
	}})
}

// allVariants are the golden and apply tests' Shops: every variant, and a
// production Shop that switched Istio off.
func allVariants() []buildertest.Variant {
	out := []buildertest.Variant{{Name: "production-istio-disabled", Input: disabledInput()}}
	for _, v := range variants() {
		out = append(out, buildertest.Variant{Name: v.name(), Input: v.input()})
	}
	return out
}

// typeName is an object's Go type, e.g. *v1.AuthorizationPolicy from istio.io.
func typeName(o any) string { return reflect.TypeOf(o).Elem().PkgPath() }
