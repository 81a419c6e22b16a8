package mesh

import (
	"fmt"
	"strconv"

	secv1beta1 "istio.io/api/security/v1beta1"
	typev1beta1 "istio.io/api/type/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/render"
)

// JWT settings shared with the auth service (docs/services.md).
const (
	jwtIssuer   = "shop-auth"
	jwtAudience = "shop"
	// RoleClaim is the attribute AuthorizationPolicies read the role from.
	RoleClaim = "request.auth.claims[role]"
)

func security(in render.Input) []client.Object {
	out := peerAuthentications(in)
	for _, svc := range render.Services {
		out = append(out, requestAuthentication(in, svc), denyByDefault(in, svc), allowPolicy(in, svc))
	}
	return out
}

// JWKSURL is where the auth service publishes its signing keys.
func JWKSURL(in render.Input) string {
	return fmt.Sprintf("http://%s:%d/.well-known/jwks.json", host(in, render.Auth), render.HTTPPort)
}

func selector(in render.Input, component string) *typev1beta1.WorkloadSelector {
	return &typev1beta1.WorkloadSelector{MatchLabels: in.SelectorLabels(component)}
}

// peerAuthentications set the Shop's mTLS mode on each service's pods (not
// namespace-wide: other apps in the namespace keep theirs). One policy per
// service, because Istio resolves two workload-selecting policies on the
// same pods by age, not by specificity. In STRICT mode the auth service's
// API port also takes plain text: istiod, which runs outside the mesh,
// fetches the JWKS from it (istio/istio#40553). Its AuthorizationPolicy
// admits plain-text callers to the JWKS routes and nothing else.
func peerAuthentications(in render.Input) []client.Object {
	mode := mtlsMode(in.Spec.Gateway.Istio.MTLSMode)
	var out []client.Object
	for _, svc := range render.Services {
		pa := &securityv1.PeerAuthentication{ObjectMeta: in.ObjectMeta(in.Name(svc), svc)}
		pa.Spec = secv1beta1.PeerAuthentication{
			Selector: selector(in, svc),
			Mtls:     &secv1beta1.PeerAuthentication_MutualTLS{Mode: mode},
		}
		if svc == render.Auth && mode == secv1beta1.PeerAuthentication_MutualTLS_STRICT {
			pa.Spec.PortLevelMtls = map[uint32]*secv1beta1.PeerAuthentication_MutualTLS{
				render.HTTPPort: {Mode: secv1beta1.PeerAuthentication_MutualTLS_PERMISSIVE},
			}
		}
		out = append(out, pa)
	}
	return out
}

func mtlsMode(m shopv1.MTLSMode) secv1beta1.PeerAuthentication_MutualTLS_Mode {
	if m == "PERMISSIVE" {
		return secv1beta1.PeerAuthentication_MutualTLS_PERMISSIVE
	}
	return secv1beta1.PeerAuthentication_MutualTLS_STRICT
}

// requestAuthentication makes the sidecar verify any bearer token against
// the auth service's keys (a request with an invalid token is refused; one
// without a token goes on, unauthenticated) and keeps the token for the
// service, which verifies it again.
func requestAuthentication(in render.Input, svc string) *securityv1.RequestAuthentication {
	ra := &securityv1.RequestAuthentication{ObjectMeta: in.ObjectMeta(in.Name(svc), svc)}
	ra.Spec = secv1beta1.RequestAuthentication{
		Selector: selector(in, svc),
		JwtRules: []*secv1beta1.JWTRule{{
			Issuer:               jwtIssuer,
			Audiences:            []string{jwtAudience},
			JwksUri:              JWKSURL(in),
			ForwardOriginalToken: true,
		}},
	}
	return ra
}

// denyByDefault is an ALLOW policy without rules: it matches nothing, so
// the service's pods refuse every request no other ALLOW policy admits,
// even if the allow policy is deleted.
func denyByDefault(in render.Input, svc string) *securityv1.AuthorizationPolicy {
	ap := &securityv1.AuthorizationPolicy{ObjectMeta: in.ObjectMeta(in.Name(svc)+"-deny-by-default", svc)}
	ap.Spec = secv1beta1.AuthorizationPolicy{Selector: selector(in, svc), Action: secv1beta1.AuthorizationPolicy_ALLOW}
	return ap
}

// allowPolicy turns the service's grants into rules, plus the admin port for
// monitoring.
func allowPolicy(in render.Input, svc string) *securityv1.AuthorizationPolicy {
	api := []string{strconv.Itoa(render.HTTPPort)}
	var rules []*secv1beta1.Rule
	for _, g := range grants[svc] {
		r := &secv1beta1.Rule{To: []*secv1beta1.Rule_To{{Operation: &secv1beta1.Operation{
			Ports: api, Methods: g.methods, Paths: g.paths, NotPaths: g.notPaths,
		}}}}
		if !g.anyone {
			r.From = []*secv1beta1.Rule_From{{Source: &secv1beta1.Source{Principals: principals(in, g.from)}}}
		}
		if g.adminOnly {
			r.When = []*secv1beta1.Condition{{Key: RoleClaim, Values: []string{"admin"}}}
		}
		rules = append(rules, r)
	}
	rules = append(rules, &secv1beta1.Rule{
		From: []*secv1beta1.Rule_From{
			{Source: &secv1beta1.Source{Namespaces: MonitoringNamespaces}},
			{Source: &secv1beta1.Source{Principals: []string{collectorPrincipal(in)}}},
		},
		To: []*secv1beta1.Rule_To{{Operation: &secv1beta1.Operation{
			Ports: []string{strconv.Itoa(render.AdminPort)}, Methods: []string{"GET"},
		}}},
	})
	ap := &securityv1.AuthorizationPolicy{ObjectMeta: in.ObjectMeta(in.Name(svc), svc)}
	ap.Spec = secv1beta1.AuthorizationPolicy{Selector: selector(in, svc), Action: secv1beta1.AuthorizationPolicy_ALLOW, Rules: rules}
	return ap
}

// principals maps callers to mesh identities.
func principals(in render.Input, callers []string) []string {
	var out []string
	for _, c := range callers {
		if c == Edge {
			out = append(out, IngressGatewayPrincipals...)
			continue
		}
		out = append(out, principal(in, c))
	}
	return out
}
