package mesh_test

// Small evaluators of the subset of Istio AuthorizationPolicy,
// PeerAuthentication and Kubernetes NetworkPolicy semantics the mesh builder
// uses. They refuse (t.Fatal) any field they do not understand, so a
// policy can never look safer to the tests than it is.

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	secv1beta1 "istio.io/api/security/v1beta1"
	securityv1 "istio.io/client-go/pkg/apis/security/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/shopplatform/shop-operator/internal/policytest"
)

// workload is a pod the request is sent to.
type workload struct {
	namespace string
	labels    map[string]string
}

// request is one call as the target's sidecar sees it.
type request struct {
	principal string // the caller's mTLS identity; "" for plain text
	namespace string // the caller's namespace (known only with mTLS)
	port      int
	method    string
	path      string
	claims    map[string][]string // of a valid JWT; nil without one
}

// istioAllows: the request passes the target's PeerAuthentication (plain
// text refused where mTLS is STRICT) and its AuthorizationPolicies (DENY
// first, then: no ALLOW policy allows all, else one must match).
func istioAllows(t *testing.T, objs []client.Object, to workload, r request) bool {
	t.Helper()
	if r.principal == "" && mtlsStrict(t, objs, to, r.port) {
		return false
	}
	var allow []*securityv1.AuthorizationPolicy
	for _, o := range objs {
		ap, ok := o.(*securityv1.AuthorizationPolicy)
		if !ok || ap.Namespace != to.namespace || !selects(ap.Spec.Selector.GetMatchLabels(), to.labels) {
			continue
		}
		if ap.Spec.TargetRef != nil || len(ap.Spec.TargetRefs) > 0 || ap.Spec.GetProvider() != nil {
			t.Fatalf("evaluator: unsupported field in %s", ap.Name)
		}
		switch ap.Spec.Action {
		case secv1beta1.AuthorizationPolicy_DENY:
			if anyRuleMatches(t, ap.Spec.Rules, r) {
				return false
			}
		case secv1beta1.AuthorizationPolicy_ALLOW:
			allow = append(allow, ap)
		default:
			t.Fatalf("evaluator: unsupported action %v in %s", ap.Spec.Action, ap.Name)
		}
	}
	if len(allow) == 0 {
		return true
	}
	for _, ap := range allow {
		if anyRuleMatches(t, ap.Spec.Rules, r) {
			return true
		}
	}
	return false
}

// mtlsStrict: the PeerAuthentication selecting the workload decides, its
// port level over its workload level; none means PERMISSIVE here. Istio
// would pick the oldest of several workload-selecting policies, so the
// builder must never render two for the same pods.
func mtlsStrict(t *testing.T, objs []client.Object, to workload, port int) bool {
	t.Helper()
	var found *securityv1.PeerAuthentication
	for _, o := range objs {
		pa, ok := o.(*securityv1.PeerAuthentication)
		if !ok || pa.Namespace != to.namespace || !selects(pa.Spec.Selector.GetMatchLabels(), to.labels) {
			continue
		}
		if pa.Spec.Selector == nil {
			t.Fatalf("evaluator: namespace-wide PeerAuthentication %s is not modelled", pa.Name)
		}
		if found != nil {
			t.Fatalf("PeerAuthentications %s and %s both select %v: Istio would pick the older one", found.Name, pa.Name, to.labels)
		}
		found = pa
	}
	if found == nil {
		return false
	}
	mode := found.Spec.GetMtls().GetMode()
	if pl, ok := found.Spec.PortLevelMtls[uint32(port)]; ok {
		mode = pl.GetMode()
	}
	return mode == secv1beta1.PeerAuthentication_MutualTLS_STRICT
}

func selects(selector, podLabels map[string]string) bool {
	for k, v := range selector {
		if podLabels[k] != v {
			return false
		}
	}
	return true
}

func anyRuleMatches(t *testing.T, rules []*secv1beta1.Rule, r request) bool {
	for _, rule := range rules {
		if ruleMatches(t, rule, r) {
			return true
		}
	}
	return false
}

// ruleMatches: every present part of a rule must match; within from and
// to, any entry may.
func ruleMatches(t *testing.T, rule *secv1beta1.Rule, r request) bool {
	t.Helper()
	if len(rule.From) > 0 && !slices.ContainsFunc(rule.From, func(f *secv1beta1.Rule_From) bool { return sourceMatches(t, f.Source, r) }) {
		return false
	}
	if len(rule.To) > 0 && !slices.ContainsFunc(rule.To, func(to *secv1beta1.Rule_To) bool { return operationMatches(t, to.Operation, r) }) {
		return false
	}
	for _, c := range rule.When {
		if !conditionMatches(t, c, r) {
			return false
		}
	}
	return true
}

func sourceMatches(t *testing.T, s *secv1beta1.Source, r request) bool {
	t.Helper()
	if len(s.RequestPrincipals)+len(s.NotRequestPrincipals)+len(s.IpBlocks)+len(s.NotIpBlocks)+
		len(s.RemoteIpBlocks)+len(s.NotRemoteIpBlocks)+len(s.ServiceAccounts)+len(s.NotServiceAccounts) > 0 {
		t.Fatalf("evaluator: unsupported source field in %v", s)
	}
	return field(s.Principals, s.NotPrincipals, r.principal) && field(s.Namespaces, s.NotNamespaces, r.namespace)
}

func operationMatches(t *testing.T, op *secv1beta1.Operation, r request) bool {
	t.Helper()
	if len(op.Hosts)+len(op.NotHosts) > 0 {
		t.Fatalf("evaluator: unsupported operation field in %v", op)
	}
	path, _, _ := strings.Cut(r.path, "?")
	return field(op.Ports, op.NotPorts, strconv.Itoa(r.port)) &&
		field(op.Methods, op.NotMethods, r.method) &&
		field(op.Paths, op.NotPaths, path)
}

func conditionMatches(t *testing.T, c *secv1beta1.Condition, r request) bool {
	t.Helper()
	claim, ok := strings.CutPrefix(c.Key, "request.auth.claims[")
	if !ok || !strings.HasSuffix(claim, "]") {
		t.Fatalf("evaluator: unsupported condition key %q", c.Key)
	}
	claim = strings.TrimSuffix(claim, "]")
	vals, present := r.claims[claim]
	if len(c.Values) > 0 && !slices.ContainsFunc(vals, func(v string) bool { return anyMatch(c.Values, v) }) {
		return false
	}
	if len(c.NotValues) > 0 && (!present || slices.ContainsFunc(vals, func(v string) bool { return anyMatch(c.NotValues, v) })) {
		return false
	}
	return true
}

// field: a present value list must match, a present not-list must not.
// An absent attribute (empty string) matches no list.
func field(values, notValues []string, v string) bool {
	if len(values) > 0 && (v == "" || !anyMatch(values, v)) {
		return false
	}
	if len(notValues) > 0 && (v == "" || anyMatch(notValues, v)) {
		return false
	}
	return true
}

// anyMatch applies Istio's string match: exact, "*", "prefix*" or "*suffix".
func anyMatch(patterns []string, v string) bool {
	for _, p := range patterns {
		switch {
		case p == "*":
			return true
		case strings.HasSuffix(p, "*") && strings.HasPrefix(v, strings.TrimSuffix(p, "*")):
			return true
		case strings.HasPrefix(p, "*") && strings.HasSuffix(v, strings.TrimPrefix(p, "*")):
			return true
		case p == v:
			return true
		}
	}
	return false
}

// peer is the sender of a connection, for NetworkPolicies.
type peer struct {
	namespace       string
	namespaceLabels map[string]string
	labels          map[string]string
}

// networkAllows evaluates the rendered NetworkPolicies with policytest's
// evaluator, the one the live test compares the real node against.
func networkAllows(t *testing.T, objs []client.Object, to workload, port int, from peer) bool {
	t.Helper()
	var nps []networkingv1.NetworkPolicy
	for _, o := range objs {
		if np, ok := o.(*networkingv1.NetworkPolicy); ok {
			nps = append(nps, *np)
		}
	}
	ok, err := policytest.NetworkAllows(nps,
		policytest.Pod{Namespace: to.namespace, Labels: to.labels}, port,
		policytest.Pod{Namespace: from.namespace, NamespaceLabels: from.namespaceLabels, Labels: from.labels})
	if err != nil {
		t.Fatal(err)
	}
	return ok
}
