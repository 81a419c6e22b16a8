package mesh_test

import (
	"fmt"
	"slices"
	"strconv"
	"testing"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/shopplatform/shop-operator/internal/builders/backups"
	"github.com/shopplatform/shop-operator/internal/builders/mesh"
	"github.com/shopplatform/shop-operator/internal/builders/operations"
	"github.com/shopplatform/shop-operator/internal/render"
)

// caller is someone who sends requests to the Shop.
type caller struct {
	name      string
	principal string // mTLS identity; "" for plain text
	namespace string
	labels    map[string]string // pod labels, for NetworkPolicies
}

// callers of the demo Shop in namespace "shop".
func callers(in render.Input) map[string]caller {
	ns := in.Shop.Namespace
	sa := func(ns, name string) string { return fmt.Sprintf("cluster.local/ns/%s/sa/%s", ns, name) }
	out := map[string]caller{
		"gateway":    {principal: mesh.IngressGatewayPrincipals[0], namespace: "istio-system", labels: map[string]string{"istio": "ingressgateway"}},
		"prometheus": {principal: sa("monitoring", "prometheus"), namespace: "monitoring", labels: map[string]string{"app.kubernetes.io/name": "prometheus"}},
		"collector": {principal: sa(ns, in.CollectorServiceAccountName()), namespace: ns, labels: map[string]string{
			"app.kubernetes.io/managed-by": "opentelemetry-operator", "app.kubernetes.io/component": "opentelemetry-collector",
			"app.kubernetes.io/instance": ns + "." + in.Shop.Name,
		}},
		"other-app": {principal: sa(ns, "default"), namespace: ns, labels: map[string]string{"app": "other"}},
		"plaintext": {namespace: "istio-system", labels: map[string]string{"app": "istiod"}}, // e.g. istiod fetching the JWKS
	}
	for _, svc := range render.Services {
		out[svc] = caller{principal: sa(ns, in.Name(svc)), namespace: ns, labels: in.Labels(svc)}
	}
	// The load generator and the synthetic checkout, as the operations builder runs them.
	for _, c := range []string{operations.LoadGenerator, operations.SyntheticCheck} {
		out[c] = caller{principal: sa(ns, in.Name(c)), namespace: ns, labels: in.Labels(c)}
	}
	for _, svc := range render.Databases {
		out[svc+"-db-backup"] = caller{principal: sa(ns, "default"), namespace: ns, labels: in.Labels(mesh.DatabaseComponent(svc) + "-backup")}
	}
	for name, c := range out {
		c.name = name
		out[name] = c
	}
	return out
}

// Tokens a caller may carry (validated by RequestAuthentication).
var (
	anonymous = map[string][]string(nil)
	customer  = map[string][]string{"role": {"customer"}, "sub": {"u1"}}
	admin     = map[string][]string{"role": {"admin"}, "sub": {"u2"}}
)

// authzCase is one request and the intended outcome. The outcome the test
// checks is computed by evaluating the rendered policies.
type authzCase struct {
	from, to     string
	port         int
	method, path string
	token        map[string][]string
	allow        bool
}

func (c authzCase) String() string {
	role := "anonymous"
	if c.token != nil {
		role = c.token["role"][0]
	}
	return fmt.Sprintf("%s(%s) %s %s:%d%s", c.from, role, c.method, c.to, c.port, c.path)
}

// authzCases are the Shop's intended security properties.
var authzCases = []authzCase{
	// The edge reaches the storefront and the public APIs.
	{"gateway", render.Frontend, 8080, "GET", "/", anonymous, true},
	{"gateway", render.Frontend, 8080, "POST", "/checkout", customer, true},
	{"gateway", render.Catalog, 8080, "GET", "/api/catalog/products?page_size=20", anonymous, true},
	{"gateway", render.Catalog, 8080, "GET", "/api/catalog/products/BOOK-001", anonymous, true},
	{"gateway", render.Auth, 8080, "POST", "/api/auth/login", anonymous, true},
	{"gateway", render.Auth, 8080, "GET", "/.well-known/jwks.json", anonymous, true},
	{"gateway", render.Orders, 8080, "POST", "/api/orders/checkout", customer, true},
	{"gateway", render.Orders, 8080, "GET", "/api/orders", customer, true},
	// Admin routes need the admin role claim.
	{"gateway", render.Catalog, 8080, "POST", "/api/catalog/products", anonymous, false},
	{"gateway", render.Catalog, 8080, "POST", "/api/catalog/products", customer, false},
	{"gateway", render.Catalog, 8080, "POST", "/api/catalog/products", admin, true},
	{"gateway", render.Catalog, 8080, "PUT", "/api/catalog/products/BOOK-001", customer, false},
	{"gateway", render.Catalog, 8080, "PUT", "/api/catalog/products/BOOK-001", admin, true},
	{"gateway", render.Catalog, 8080, "DELETE", "/api/catalog/products/BOOK-001", customer, false},
	{"gateway", render.Catalog, 8080, "DELETE", "/api/catalog/products/BOOK-001", admin, true},
	{"gateway", render.Auth, 8080, "PUT", "/api/auth/admin/users/u1/role", customer, false},
	{"gateway", render.Auth, 8080, "PUT", "/api/auth/admin/users/u1/role", admin, true},
	{"frontend", render.Catalog, 8080, "POST", "/api/catalog/products", admin, true},
	{"frontend", render.Catalog, 8080, "POST", "/api/catalog/products", customer, false},
	// Only orders calls payment; nobody else, not even an admin at the edge.
	{"orders", render.Payment, 8080, "POST", "/api/payments/charges", customer, true},
	{"orders", render.Payment, 8080, "POST", "/api/payments/charges/c1/refunds", customer, true},
	{"frontend", render.Payment, 8080, "POST", "/api/payments/charges", customer, false},
	{"gateway", render.Payment, 8080, "POST", "/api/payments/charges", admin, false},
	{"gateway", render.Payment, 8080, "GET", "/api/payments/charges/c1", customer, false},
	{"catalog", render.Payment, 8080, "POST", "/api/payments/charges", customer, false},
	{"auth", render.Payment, 8080, "POST", "/api/payments/charges", customer, false},
	{"other-app", render.Payment, 8080, "POST", "/api/payments/charges", customer, false},
	// The frontend calls auth, catalog and orders; orders calls catalog.
	{"frontend", render.Auth, 8080, "POST", "/api/auth/login", anonymous, true},
	{"frontend", render.Catalog, 8080, "GET", "/api/catalog/categories", anonymous, true},
	{"frontend", render.Orders, 8080, "POST", "/api/orders/checkout", customer, true},
	{"orders", render.Catalog, 8080, "POST", "/api/catalog/reservations", customer, true},
	{"orders", render.Catalog, 8080, "POST", "/api/catalog/reservations/r1/commit", customer, true},
	{"orders", render.Catalog, 8080, "GET", "/api/catalog/products/BOOK-001", customer, true},
	{"frontend", render.Catalog, 8080, "POST", "/api/catalog/reservations", customer, false},
	{"gateway", render.Catalog, 8080, "POST", "/api/catalog/reservations", customer, false},
	{"payment", render.Catalog, 8080, "GET", "/api/catalog/products", anonymous, false},
	{"payment", render.Orders, 8080, "GET", "/api/orders", customer, false},
	{"catalog", render.Orders, 8080, "GET", "/api/orders", customer, false},
	// Every service may fetch the signing keys; istiod fetches them in plain text.
	{"catalog", render.Auth, 8080, "GET", "/.well-known/jwks.json", anonymous, true},
	{"orders", render.Auth, 8080, "GET", "/.well-known/jwks.json", anonymous, true},
	{"payment", render.Auth, 8080, "GET", "/api/auth/.well-known/jwks.json", anonymous, true},
	{"plaintext", render.Auth, 8080, "GET", "/.well-known/jwks.json", anonymous, true},
	{"plaintext", render.Auth, 8080, "POST", "/api/auth/login", anonymous, false},
	{"plaintext", render.Auth, 8080, "PUT", "/api/auth/admin/users/u1/role", admin, false},
	{"catalog", render.Auth, 8080, "POST", "/api/auth/login", anonymous, false},
	{"plaintext", render.Frontend, 8080, "GET", "/", anonymous, false},
	{"plaintext", render.Catalog, 8080, "GET", "/api/catalog/products", anonymous, false},
	{"plaintext", render.Payment, 8080, "POST", "/api/payments/charges", customer, false},
	// Other pods of the namespace get nothing.
	{"other-app", render.Frontend, 8080, "GET", "/", anonymous, false},
	{"other-app", render.Catalog, 8080, "GET", "/api/catalog/products", anonymous, false},
	{"other-app", render.Auth, 8080, "POST", "/api/auth/login", anonymous, false},
	// The load generator and the synthetic checkout call the APIs directly,
	// as a shopper at the edge does; never payment.
	{"loadgen", render.Frontend, 8080, "GET", "/", anonymous, true},
	{"loadgen", render.Catalog, 8080, "GET", "/api/catalog/products?page_size=20", anonymous, true},
	{"loadgen", render.Auth, 8080, "POST", "/api/auth/register", anonymous, true},
	{"loadgen", render.Orders, 8080, "POST", "/api/orders/checkout", customer, true},
	{"loadgen", render.Payment, 8080, "POST", "/api/payments/charges", customer, false},
	{"loadgen", render.Payment, 8080, "POST", "/api/payments/charges", admin, false},
	{"loadgen", render.Catalog, 8080, "POST", "/api/catalog/products", customer, false},
	{"loadgen", render.Catalog, 8080, "POST", "/api/catalog/products", anonymous, false},
	{"loadgen", render.Catalog, 8080, "POST", "/api/catalog/reservations", customer, false},
	{"loadgen", render.Catalog, 9090, "GET", "/metrics", anonymous, false},
	{"synthetic", render.Auth, 8080, "POST", "/api/auth/login", anonymous, true},
	{"synthetic", render.Catalog, 8080, "GET", "/api/catalog/products/BOOK-001", anonymous, true},
	{"synthetic", render.Orders, 8080, "POST", "/api/orders/checkout", customer, true},
	{"synthetic", render.Orders, 8080, "GET", "/api/orders/o1", customer, true},
	{"synthetic", render.Payment, 8080, "POST", "/api/payments/charges", customer, false},
	{"synthetic", render.Payment, 8080, "POST", "/api/payments/charges/c1/refunds", customer, false},
	{"synthetic", render.Auth, 8080, "PUT", "/api/auth/admin/users/u1/role", customer, false},
	// Monitoring reaches the admin port, and only the admin port.
	{"prometheus", render.Frontend, 9090, "GET", "/metrics", anonymous, true},
	{"prometheus", render.Payment, 9090, "GET", "/metrics", anonymous, true},
	{"prometheus", render.Auth, 9090, "GET", "/readyz", anonymous, true},
	{"prometheus", render.Catalog, 9090, "GET", "/metrics", anonymous, true},
	{"collector", render.Orders, 9090, "GET", "/metrics", anonymous, true},
	{"prometheus", render.Catalog, 8080, "GET", "/api/catalog/products", anonymous, false},
	{"prometheus", render.Payment, 8080, "POST", "/api/payments/charges", anonymous, false},
	{"prometheus", render.Catalog, 9090, "POST", "/metrics", anonymous, false},
	{"gateway", render.Frontend, 9090, "GET", "/metrics", anonymous, false},
	{"other-app", render.Catalog, 9090, "GET", "/metrics", anonymous, false},
	{"plaintext", render.Catalog, 9090, "GET", "/metrics", anonymous, false},
}

// TestAuthorizationPolicies evaluates the rendered Istio policies of every
// environment for each request and compares with the intended outcome.
func TestAuthorizationPolicies(t *testing.T) {
	for _, v := range variants() {
		if !v.istio {
			continue
		}
		in := v.input()
		objs := build(t, in)
		who := callers(in)
		strict := mesh.ModeOf(in) == mesh.ModeIstio && in.Spec.Gateway.Istio.MTLSMode == "STRICT"
		t.Run(v.name(), func(t *testing.T) {
			for _, c := range authzCases {
				from := who[c.from]
				r := request{principal: from.principal, port: c.port, method: c.method, path: c.path, claims: c.token}
				if from.principal != "" {
					r.namespace = from.namespace
				}
				to := workload{namespace: in.Shop.Namespace, labels: in.Labels(c.to)}
				if got := istioAllows(t, objs, to, r); got != c.allow {
					t.Errorf("%v (mTLS STRICT %v): allowed %v, want %v", c, strict, got, c.allow)
				}
			}
		})
	}
}

// TestNetworkPolicies checks the same callers against the NetworkPolicies
// rendered in every mode, at layer 4: a caller reaches a port when the
// intended outcome allows some route on it from that caller. Paths and
// tokens are the services' own checks there (and, with Istio, the
// sidecars'); where L4 is coarser (a customer token on an admin route) the
// port is open to the caller.
func TestNetworkPolicies(t *testing.T) {
	inputs := map[string]render.Input{"production-istio-disabled": disabledInput()}
	for _, v := range variants() {
		inputs[v.name()] = v.input()
	}
	for name, in := range inputs {
		objs := build(t, in)
		who := callers(in)
		istio := mesh.ModeOf(in) == mesh.ModeIstio
		t.Run(name, func(t *testing.T) {
			// A (caller, service, port) is intended reachable when any
			// case from it to that port is allowed.
			want := map[[3]string]bool{}
			for _, c := range authzCases {
				k := [3]string{c.from, c.to, fmt.Sprint(c.port)}
				want[k] = want[k] || c.allow
			}
			// The sidecar's metrics ports: Prometheus only, with Istio.
			for _, svc := range render.Services {
				for _, port := range mesh.SidecarMetricsPorts {
					for _, from := range []string{"prometheus", "collector", "gateway", "other-app", "loadgen", svc} {
						want[[3]string{from, svc, fmt.Sprint(port)}] = istio && from == "prometheus"
					}
				}
			}
			for k, allow := range want {
				from, svc, port := who[k[0]], k[1], k[2]
				switch {
				// Without Istio there is no gateway: only the frontend is
				// exposed, to anyone; the API services are reached through it.
				case !istio && k[0] == "gateway" && svc != render.Frontend && port == "8080":
					allow = false
				// Istio denies plain text by identity; L4 sees the pod and
				// namespace of istiod, which only auth admits (it fetches the
				// public keys), with Istio; without, only the public frontend.
				case k[0] == "plaintext" && port == "8080":
					allow = (istio && svc == render.Auth) || (!istio && svc == render.Frontend)
				// Without Istio other pods may open the public storefront, as
				// anyone may; with Istio only through the gateway.
				case !istio && k[0] == "other-app" && svc == render.Frontend && port == "8080":
					allow = true
				}
				p := peer{namespace: from.namespace, namespaceLabels: map[string]string{"kubernetes.io/metadata.name": from.namespace}, labels: from.labels}
				to := workload{namespace: in.Shop.Namespace, labels: in.Labels(svc)}
				portN, _ := strconv.Atoi(port)
				if got := networkAllows(t, objs, to, portN, p); got != allow {
					t.Errorf("%s -> %s:%s: allowed %v, want %v", k[0], svc, port, got, allow)
				}
			}
		})
	}
}

// TestEveryPodHasANetworkPolicy: in every mode, each pod the Shop runs that
// the mesh builder knows of (the services, the managed databases and their
// backup jobs) is selected by an ingress NetworkPolicy, so a pod outside the
// mesh (or a mesh that is misconfigured) meets a wall too. Backup jobs
// accept nothing at all.
func TestEveryPodHasANetworkPolicy(t *testing.T) {
	inputs := map[string]render.Input{"production-istio-disabled": disabledInput()}
	for _, v := range variants() {
		inputs[v.name()] = v.input()
	}
	for name, in := range inputs {
		objs := build(t, in)
		t.Run(name, func(t *testing.T) {
			components := slices.Clone(render.Services)
			for _, db := range render.Databases {
				m := in.ManagedDatabase(db)
				if m == nil {
					continue
				}
				components = append(components, mesh.DatabaseComponent(db))
				if m.Backup != nil && ptr.Deref(m.Backup.Enabled, false) {
					components = append(components, backups.Component(db))
				}
			}
			outsider := peer{namespace: "elsewhere", namespaceLabels: map[string]string{"kubernetes.io/metadata.name": "elsewhere"}}
			for _, c := range components {
				to := workload{namespace: in.Shop.Namespace, labels: in.Labels(c)}
				// An unlisted port of the pod, from another namespace: only
				// a selecting policy refuses it.
				if networkAllows(t, objs, to, 1, outsider) {
					t.Errorf("%s: no NetworkPolicy selects its pods", c)
				}
			}
			for _, db := range render.Databases {
				if m := in.ManagedDatabase(db); m == nil || m.Backup == nil || !ptr.Deref(m.Backup.Enabled, false) {
					continue
				}
				to := workload{namespace: in.Shop.Namespace, labels: in.Labels(backups.Component(db))}
				for from, c := range callers(in) {
					p := peer{namespace: c.namespace, namespaceLabels: map[string]string{"kubernetes.io/metadata.name": c.namespace}, labels: c.labels}
					for _, port := range []int{render.HTTPPort, render.AdminPort, render.PostgresPort, backups.OTLPHTTPPort} {
						if networkAllows(t, objs, to, port, p) {
							t.Errorf("%s -> %s backup job:%d: allowed, backup jobs accept nothing", from, db, port)
						}
					}
				}
			}
		})
	}
}

// TestDatabaseNetworkPolicies: in every mode, a database accepts Postgres
// only from its own service (and its backup job), its exporter only from
// monitoring.
func TestDatabaseNetworkPolicies(t *testing.T) {
	inputs := map[string]render.Input{"production-istio-disabled": disabledInput()}
	for _, v := range variants() {
		inputs[v.name()] = v.input()
	}
	for name, in := range inputs {
		objs := build(t, in)
		who := callers(in)
		t.Run(name, func(t *testing.T) {
			for _, db := range render.Databases {
				to := workload{namespace: in.Shop.Namespace, labels: in.Labels(mesh.DatabaseComponent(db))}
				for _, from := range who {
					p := peer{namespace: from.namespace, namespaceLabels: map[string]string{"kubernetes.io/metadata.name": from.namespace}, labels: from.labels}
					wantPG := from.name == db || from.name == db+"-db-backup"
					wantExporter := from.name == "prometheus" || from.name == "collector"
					if got := networkAllows(t, objs, to, 5432, p); got != wantPG {
						t.Errorf("%s -> %s database:5432: allowed %v, want %v", from.name, db, got, wantPG)
					}
					if got := networkAllows(t, objs, to, render.PostgresExporterPort, p); got != wantExporter {
						t.Errorf("%s -> %s database:%d: allowed %v, want %v", from.name, db, render.PostgresExporterPort, got, wantExporter)
					}
				}
			}
		})
	}
}

func build(t testing.TB, in render.Input) []client.Object {
	t.Helper()
	objs, err := mesh.Build(in)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}
