// Package policytest evaluates rendered Kubernetes NetworkPolicies for
// tests: the mesh builder's in-process tests and the live test that opens
// the same connections on the real node (test/live) use this one evaluator,
// so the table they compare against is the same. It lives outside
// internal/builders: its errors are the evaluator's, not a builder's.
package policytest

import (
	"fmt"
	"slices"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Pod is one end of a connection: its namespace, the labels of that
// namespace and the pod's own labels.
type Pod struct {
	Namespace       string
	NamespaceLabels map[string]string
	Labels          map[string]string
}

// NetworkAllows tells whether a TCP connection from a pod to port of a pod
// is admitted at ingress: a pod selected by no ingress NetworkPolicy accepts
// all; otherwise some rule of a selecting policy must admit the port and
// the peer. It refuses (an error) any field it does not model, so a policy
// can never look safer to a test than it is.
func NetworkAllows(policies []networkingv1.NetworkPolicy, to Pod, port int, from Pod) (bool, error) {
	selected := false
	for _, np := range policies {
		if np.Namespace != to.Namespace {
			continue
		}
		sel, err := selects(&np.Spec.PodSelector, to.Labels)
		if err != nil || !sel {
			if err != nil {
				return false, fmt.Errorf("%s: %w", np.Name, err)
			}
			continue
		}
		// policyTypes omitted means Ingress (plus Egress when egress rules exist).
		if len(np.Spec.PolicyTypes) > 0 && !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
			continue
		}
		selected = true
		for _, rule := range np.Spec.Ingress {
			pm, err := portMatches(rule.Ports, port)
			if err != nil {
				return false, fmt.Errorf("%s: %w", np.Name, err)
			}
			if !pm {
				continue
			}
			ok, err := peerMatches(rule.From, to.Namespace, from)
			if err != nil {
				return false, fmt.Errorf("%s: %w", np.Name, err)
			}
			if ok {
				return true, nil
			}
		}
	}
	return !selected, nil
}

func portMatches(ports []networkingv1.NetworkPolicyPort, port int) (bool, error) {
	if len(ports) == 0 {
		return true, nil
	}
	for _, p := range ports {
		if p.EndPort != nil || p.Port == nil || p.Port.StrVal != "" || (p.Protocol != nil && *p.Protocol != "TCP") {
			return false, fmt.Errorf("evaluator: unsupported port %v", p)
		}
		if p.Port.IntValue() == port {
			return true, nil
		}
	}
	return false, nil
}

func peerMatches(peers []networkingv1.NetworkPolicyPeer, ns string, from Pod) (bool, error) {
	if len(peers) == 0 {
		return true, nil
	}
	for _, p := range peers {
		if p.IPBlock != nil {
			return false, fmt.Errorf("evaluator: ipBlock is not modelled")
		}
		nsOK := from.Namespace == ns
		if p.NamespaceSelector != nil {
			var err error
			if nsOK, err = selects(p.NamespaceSelector, from.NamespaceLabels); err != nil {
				return false, err
			}
		}
		podOK := true
		if p.PodSelector != nil {
			var err error
			if podOK, err = selects(p.PodSelector, from.Labels); err != nil {
				return false, err
			}
		}
		if nsOK && podOK {
			return true, nil
		}
	}
	return false, nil
}

func selects(s *metav1.LabelSelector, l map[string]string) (bool, error) {
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		return false, err
	}
	return sel.Matches(labels.Set(l)), nil
}
