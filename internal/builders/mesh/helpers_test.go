package mesh_test

import (
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/builders/mesh"
	"github.com/shopplatform/shop-operator/internal/engine"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
	"github.com/shopplatform/shop-operator/internal/scheme"
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

// rendered returns the mesh family's objects exactly as the engine stamps
// them (owner reference, common labels, type metadata).
func rendered(t testing.TB, in render.Input) []*unstructured.Unstructured {
	t.Helper()
	mine, err := mesh.Build(in)
	if err != nil {
		t.Fatal(err)
	}
	all, err := engine.Desired(in)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, o := range mine {
		gvk, err := apiutil.GVKForObject(o, scheme.Scheme)
		if err != nil {
			t.Fatal(err)
		}
		want[gvk.Kind+"/"+o.GetName()] = true
	}
	var out []*unstructured.Unstructured
	for _, u := range all {
		if want[u.GetKind()+"/"+u.GetName()] {
			out = append(out, u)
		}
	}
	if len(out) != len(mine) {
		t.Fatalf("the engine returned %d of the %d mesh objects", len(out), len(mine))
	}
	return out
}

// typeName is an object's Go type, e.g. *v1.AuthorizationPolicy from istio.io.
func typeName(o any) string { return reflect.TypeOf(o).Elem().PkgPath() }
