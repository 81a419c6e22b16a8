package workloads_test

import (
	"testing"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
)

// TestSecureCookiesBehindTLS: when the gateway terminates TLS the frontend's
// session and cart cookies must carry Secure (FRONTEND_SECURE_COOKIES, read
// by services/internal/frontend), so a browser never sends them over plain
// HTTP; without TLS they must not (a browser drops Secure cookies on http).
// Only the frontend reads the variable.
func TestSecureCookiesBehindTLS(t *testing.T) {
	tls := shopv1.ShopSpec{Environment: shopv1.Production}
	tls.Gateway.Hosts = []string{"shop.example.com"}
	tls.Gateway.TLSSecretName = "shop-tls"
	for name, c := range map[string]struct {
		spec shopv1.ShopSpec
		want string
	}{
		"tls":    {tls, "true"},
		"no tls": {shopv1.ShopSpec{Environment: shopv1.Production}, "false"},
	} {
		objs := build(t, rendertest.Input(c.spec))
		for _, svc := range render.Services {
			vars, _ := containerEnv(t, find(objs, "Deployment", "demo-"+svc))
			got, set := vars["FRONTEND_SECURE_COOKIES"]
			switch {
			case svc != render.Frontend && set:
				t.Errorf("%s: %s gets FRONTEND_SECURE_COOKIES", name, svc)
			case svc == render.Frontend && got["value"] != c.want:
				t.Errorf("%s: frontend FRONTEND_SECURE_COOKIES = %v, want %q", name, got, c.want)
			}
		}
	}
}
