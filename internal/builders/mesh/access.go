package mesh

import (
	"fmt"
	"slices"

	"github.com/shopplatform/shop-operator/internal/builders/operations"
	"github.com/shopplatform/shop-operator/internal/render"
)

// Edge stands for callers from outside the Shop: with Istio, the ingress
// gateway; without Istio, only the frontend is exposed, to anyone.
const Edge = "edge"

// shoppers are the callers that may do what an external shopper may: the
// edge, and the Shop's own load generator and synthetic checkout, which call
// the APIs directly as the edge does (docs/operations-testing.md). Their
// ServiceAccounts <shop>-loadgen and <shop>-synthetic are their mesh
// identities, their component labels select them without Istio.
var shoppers = []string{Edge, operations.LoadGenerator, operations.SyntheticCheck}

// shoppersAnd is shoppers plus some of the Shop's services.
func shoppersAnd(services ...string) []string { return slices.Concat(shoppers, services) }

// grant allows some callers to reach some routes of a service's API port.
// With Istio it becomes one AuthorizationPolicy rule; without Istio only its
// callers count (NetworkPolicies see ports, not paths or tokens: the services
// check those themselves in every mode).
type grant struct {
	from []string // services, the load generator and synthetic checkout, or Edge
	// anyone also admits callers without a mesh identity. Only the public
	// JWKS uses it: istiod fetches it in plain text from outside the mesh.
	anyone    bool
	methods   []string
	paths     []string
	notPaths  []string
	adminOnly bool // the caller's JWT must carry role: admin
}

// Public routes of the auth service's signing keys.
var jwksPaths = []string{"/.well-known/jwks.json", "/api/auth/.well-known/jwks.json"}

// grants is THE table of who may call whom (docs/security.md shows it).
// Everything not granted here is denied.
var grants = map[string][]grant{
	render.Frontend: {
		{from: shoppers},
	},
	render.Auth: {
		{from: shoppersAnd(render.Frontend), paths: []string{"/api/auth/*"}, notPaths: []string{"/api/auth/admin/*"}},
		{from: shoppersAnd(render.Frontend), paths: []string{"/api/auth/admin/*"}, adminOnly: true},
		// Services verify tokens themselves and fetch the keys.
		{from: shoppersAnd(render.Frontend, render.Catalog, render.Orders, render.Payment), anyone: true,
			methods: []string{"GET", "HEAD"}, paths: jwksPaths},
	},
	render.Catalog: {
		{from: shoppersAnd(render.Frontend, render.Orders), methods: []string{"GET", "HEAD"}, paths: []string{"/api/catalog/*"}},
		{from: []string{render.Orders}, paths: []string{"/api/catalog/reservations", "/api/catalog/reservations/*"}},
		{from: shoppersAnd(render.Frontend), methods: []string{"POST", "PUT", "DELETE"},
			paths: []string{"/api/catalog/products", "/api/catalog/products/*"}, adminOnly: true},
	},
	render.Orders: {
		{from: shoppersAnd(render.Frontend), paths: []string{"/api/orders", "/api/orders/*"}},
	},
	render.Payment: {
		// Only orders, never the edge nor the load generator or synthetic
		// checkout: charges happen inside a checkout.
		{from: []string{render.Orders}, paths: []string{"/api/payments/*"}},
	},
}

// callersOf lists the services (and Edge) that may reach a service's API port.
func callersOf(svc string) []string {
	var out []string
	seen := map[string]bool{}
	for _, g := range grants[svc] {
		for _, c := range g.from {
			if !seen[c] {
				seen[c] = true
				out = append(out, c)
			}
		}
	}
	return out
}

// The admin port (/metrics, /healthz, /readyz) is reachable from Prometheus
// and from the Shop's collector.
var (
	// MonitoringNamespaces may reach every admin port and database exporter
	// port: Prometheus runs there. Not yet a Shop field.
	MonitoringNamespaces = []string{"monitoring"}

	// IngressGatewayPrincipals are the identities of Istio's ingress
	// gateway in its default installs: istioctl's default profile and the
	// istio/gateway Helm chart released as istio-ingressgateway.
	IngressGatewayPrincipals = []string{
		"cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account",
		"cluster.local/ns/istio-system/sa/istio-ingressgateway",
	}

	// IstioNamespace is where the ingress gateway (its principals above)
	// and istiod run; the NetworkPolicies of the Istio mode admit them from
	// there, by pod labels.
	IstioNamespace = "istio-system"

	// IstiodPodLabels select istiod's pods (every revision carries them).
	IstiodPodLabels = map[string]string{"app": "istiod"}

	// SidecarMetricsPorts are the Istio sidecar's metrics ports, which
	// Prometheus scrapes in a mesh: 15020 (the agent's merged app and Envoy
	// metrics) and 15090 (Envoy's own).
	SidecarMetricsPorts = []int{15020, 15090}
)

// principal is the mesh identity of a component's pods (a service, the load
// generator or the synthetic checkout): their ServiceAccount <shop>-<component>
// in the default trust domain.
func principal(in render.Input, svc string) string {
	return fmt.Sprintf("cluster.local/ns/%s/sa/%s", in.Shop.Namespace, in.Name(svc))
}

// collectorPrincipal is the mesh identity of the Shop's collector: the
// ServiceAccount the collector builder runs it as.
func collectorPrincipal(in render.Input) string {
	return fmt.Sprintf("cluster.local/ns/%s/sa/%s", in.Shop.Namespace, in.CollectorServiceAccountName())
}

// collectorPodLabels select the collector pods the opentelemetry-operator
// runs for the collector CR named <shop>.
func collectorPodLabels(in render.Input) map[string]string {
	return map[string]string{
		"app.kubernetes.io/managed-by": "opentelemetry-operator",
		"app.kubernetes.io/component":  "opentelemetry-collector",
		"app.kubernetes.io/instance":   in.Shop.Namespace + "." + in.Shop.Name,
	}
}

// DatabaseComponent is the component label of a service's managed database
// pods (selector labels in.SelectorLabels(DatabaseComponent(svc))).
func DatabaseComponent(svc string) string { return svc + "-db" }

// DatabaseClientComponents are the components whose pods may connect to a
// service's database: the service itself and its backup job.
func DatabaseClientComponents(svc string) []string {
	return []string{svc, DatabaseComponent(svc) + "-backup"}
}
