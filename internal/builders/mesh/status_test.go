package mesh_test

import (
	"strings"
	"testing"

	"k8s.io/utils/ptr"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/builders/mesh"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
)

func TestStatus(t *testing.T) {
	noIstio := render.AllAPIs
	noIstio.Istio = false
	disabled := shopv1.ShopSpec{Gateway: shopv1.GatewaySpec{Istio: shopv1.IstioSpec{Enabled: ptr.To(false)}}}
	for _, c := range []struct {
		name       string
		in         render.Input
		reason     string
		inMessage  string
		mode       mesh.Mode
		istioKinds bool
	}{
		{"istio", rendertest.Input(shopv1.ShopSpec{Environment: shopv1.Production}), mesh.ReasonIstioApplied, "mTLS STRICT", mesh.ModeIstio, true},
		{"istio-development", rendertest.Input(shopv1.ShopSpec{}), mesh.ReasonIstioApplied, "mTLS PERMISSIVE", mesh.ModeIstio, true},
		{"no-crds", rendertest.InputFor(rendertest.Shop(shopv1.ShopSpec{}), noIstio), mesh.ReasonIstioNotInstalled, "Istio CRDs not installed: NetworkPolicies enforce who may call whom", mesh.ModeNoCRDs, false},
		{"disabled", rendertest.Input(disabled), mesh.ReasonIstioDisabled, "disabled in the Shop", mesh.ModeDisabled, false},
		{"disabled-no-crds", rendertest.InputFor(rendertest.Shop(disabled), noIstio), mesh.ReasonIstioDisabled, "disabled in the Shop", mesh.ModeDisabled, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ready, reason, msg := mesh.Status(c.in)
			if !ready || reason != c.reason || !strings.Contains(msg, c.inMessage) {
				t.Errorf("Status = %v, %q, %q; want true, %q, containing %q", ready, reason, msg, c.reason, c.inMessage)
			}
			if got := mesh.ModeOf(c.in); got != c.mode {
				t.Errorf("ModeOf = %v, want %v", got, c.mode)
			}
			istioKinds := false
			for _, o := range build(t, c.in) {
				if strings.HasPrefix(typeName(o), "istio.io/") {
					istioKinds = true
				}
			}
			if istioKinds != c.istioKinds {
				t.Errorf("Istio objects rendered: %v, want %v", istioKinds, c.istioKinds)
			}
		})
	}
}

func TestStorefrontURL(t *testing.T) {
	for _, c := range []struct {
		hosts []string
		tls   string
		want  string
	}{
		{nil, "", ""},
		{nil, "shop-tls", ""},
		{[]string{"shop.example.com"}, "", "http://shop.example.com"},
		{[]string{"shop.example.com", "www.example.com"}, "shop-tls", "https://shop.example.com"},
		{[]string{"*.example.com", "shop.example.com"}, "shop-tls", "https://shop.example.com"},
		{[]string{"*.example.com"}, "", ""},
	} {
		in := rendertest.Input(shopv1.ShopSpec{Gateway: shopv1.GatewaySpec{Hosts: c.hosts, TLSSecretName: c.tls}})
		if got := mesh.StorefrontURL(in); got != c.want {
			t.Errorf("StorefrontURL(hosts %v, tls %q) = %q, want %q", c.hosts, c.tls, got, c.want)
		}
	}
}
