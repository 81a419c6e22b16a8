package mesh_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/golden"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
)

// matrixRoutes are the columns of the who-may-call-whom matrix.
var matrixRoutes = []struct {
	svc          string
	port         int
	method, path string
}{
	{render.Frontend, 8080, "GET", "/"},
	{render.Auth, 8080, "POST", "/api/auth/login"},
	{render.Auth, 8080, "PUT", "/api/auth/admin/users/{id}/role"},
	{render.Auth, 8080, "GET", "/.well-known/jwks.json"},
	{render.Catalog, 8080, "GET", "/api/catalog/products"},
	{render.Catalog, 8080, "POST", "/api/catalog/products"},
	{render.Catalog, 8080, "POST", "/api/catalog/reservations"},
	{render.Orders, 8080, "POST", "/api/orders/checkout"},
	{render.Payment, 8080, "POST", "/api/payments/charges"},
	{render.Catalog, 9090, "GET", "/metrics"},
}

var matrixCallers = []string{"gateway", render.Frontend, render.Auth, render.Catalog, render.Orders, render.Payment, "loadgen", "synthetic", "prometheus", "collector", "other-app", "plaintext"}

// matrix evaluates the rendered production policies (mTLS STRICT) for
// every caller and route: "yes" with any valid token, "admin" only with the
// admin role, "no" never.
func matrix(t *testing.T) string {
	in := rendertest.Input(shopv1.ShopSpec{Environment: shopv1.Production})
	objs, who := build(t, in), callers(in)
	var b strings.Builder
	b.WriteString("| caller |")
	for _, r := range matrixRoutes {
		fmt.Fprintf(&b, " %s `%s`%s |", r.method, r.path, map[bool]string{true: " :9090", false: ""}[r.port == 9090])
	}
	b.WriteString("\n|---|" + strings.Repeat("---|", len(matrixRoutes)) + "\n")
	for _, name := range matrixCallers {
		c := who[name]
		fmt.Fprintf(&b, "| %s |", name)
		for _, rt := range matrixRoutes {
			r := request{principal: c.principal, port: rt.port, method: rt.method, path: rt.path}
			if c.principal != "" {
				r.namespace = c.namespace
			}
			to := workload{namespace: in.Shop.Namespace, labels: in.Labels(rt.svc)}
			cell := "no"
			if r.claims = customer; istioAllows(t, objs, to, r) {
				cell = "yes"
			} else if r.claims = admin; istioAllows(t, objs, to, r) {
				cell = "admin"
			}
			fmt.Fprintf(&b, " %s |", cell)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// TestDocsMatrix keeps docs/security.md's matrix equal to what the rendered
// policies do.
func TestDocsMatrix(t *testing.T) {
	m := matrix(t)
	golden.Assert(t, "authz-matrix.md", []byte(m))
	doc, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "security.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), m) {
		t.Errorf("docs/security.md does not contain the matrix the policies give; paste testdata/authz-matrix.md into it:\n%s", m)
	}
}
