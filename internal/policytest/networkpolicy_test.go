package policytest

import (
	"testing"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

func policy(pods map[string]string, rules ...networkingv1.NetworkPolicyIngressRule) networkingv1.NetworkPolicy {
	return networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "shop"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: pods},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress:     rules,
		},
	}
}

func port(p int32) []networkingv1.NetworkPolicyPort {
	return []networkingv1.NetworkPolicyPort{{Port: ptr.To(intstr.FromInt32(p))}}
}

// TestNetworkAllows: Kubernetes' semantics for the fields the builders use.
func TestNetworkAllows(t *testing.T) {
	db := Pod{Namespace: "shop", Labels: map[string]string{"app": "db"}}
	api := Pod{Namespace: "shop", Labels: map[string]string{"app": "api"}}
	other := Pod{Namespace: "shop", Labels: map[string]string{"app": "other"}}
	prom := Pod{Namespace: "monitoring", NamespaceLabels: map[string]string{"kubernetes.io/metadata.name": "monitoring"}, Labels: map[string]string{"app": "api"}}
	monitoring := &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "monitoring"}}
	policies := []networkingv1.NetworkPolicy{policy(map[string]string{"app": "db"},
		networkingv1.NetworkPolicyIngressRule{Ports: port(5432), From: []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "api"}}}}},
		networkingv1.NetworkPolicyIngressRule{Ports: port(9187), From: []networkingv1.NetworkPolicyPeer{{NamespaceSelector: monitoring}}},
	), policy(map[string]string{"app": "job"})}
	for _, c := range []struct {
		name string
		to   Pod
		port int
		from Pod
		want bool
	}{
		{"selected pod, admitted peer and port", db, 5432, api, true},
		{"selected pod, other peer", db, 5432, other, false},
		{"a pod selector alone is the policy's own namespace", db, 5432, prom, false},
		{"admitted peer, other port", db, 9187, api, false},
		{"namespace selector", db, 9187, prom, true},
		{"no rule admits anyone", Pod{Namespace: "shop", Labels: map[string]string{"app": "job"}}, 80, api, false},
		{"a pod no policy selects accepts all", other, 1, prom, true},
		{"policies of another namespace do not apply", Pod{Namespace: "else", Labels: map[string]string{"app": "db"}}, 5432, other, true},
	} {
		got, err := NetworkAllows(policies, c.to, c.port, c.from)
		if err != nil || got != c.want {
			t.Errorf("%s: %v, %v; want %v", c.name, got, err, c.want)
		}
	}
}

// TestNetworkAllowsRefusesWhatItDoesNotModel: a field the evaluator does
// not know is an error, never a guess.
func TestNetworkAllowsRefusesWhatItDoesNotModel(t *testing.T) {
	to := Pod{Namespace: "shop", Labels: map[string]string{"app": "db"}}
	for name, rule := range map[string]networkingv1.NetworkPolicyIngressRule{
		"ipBlock":    {From: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: "10.0.0.0/8"}}}},
		"endPort":    {Ports: []networkingv1.NetworkPolicyPort{{Port: ptr.To(intstr.FromInt32(1)), EndPort: ptr.To[int32](9)}}},
		"named port": {Ports: []networkingv1.NetworkPolicyPort{{Port: ptr.To(intstr.FromString("http"))}}},
	} {
		if _, err := NetworkAllows([]networkingv1.NetworkPolicy{policy(to.Labels, rule)}, to, 5, to); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
