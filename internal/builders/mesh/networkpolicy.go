package mesh

import (
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/shopplatform/shop-operator/internal/render"
)

// serviceNetworkPolicies express the grants at layer 4 when there is no
// mesh: each service's pods accept its API port only from its callers (the
// frontend's from anywhere) and the admin port only from monitoring. Other
// pods of the namespace are not selected, so other apps are untouched.
func serviceNetworkPolicies(in render.Input) []client.Object {
	var out []client.Object
	for _, svc := range render.Services {
		var api []networkingv1.NetworkPolicyPeer
		public := false
		for _, c := range callersOf(svc) {
			if c == Edge {
				// Without a gateway only the frontend is exposed.
				public = public || svc == render.Frontend
				continue
			}
			api = append(api, podPeer(in.SelectorLabels(c)))
		}
		rules := []networkingv1.NetworkPolicyIngressRule{}
		if public {
			rules = append(rules, networkingv1.NetworkPolicyIngressRule{Ports: tcp(render.HTTPPort)})
		} else if len(api) > 0 {
			rules = append(rules, networkingv1.NetworkPolicyIngressRule{Ports: tcp(render.HTTPPort), From: api})
		}
		rules = append(rules, networkingv1.NetworkPolicyIngressRule{Ports: tcp(render.AdminPort), From: monitoringPeers(in)})
		out = append(out, networkPolicy(in, in.Name(svc), svc, in.SelectorLabels(svc), rules))
	}
	return out
}

// databaseNetworkPolicies: a managed database accepts Postgres only from its
// own service (and its backup job), and its exporter port from monitoring.
func databaseNetworkPolicies(in render.Input) []client.Object {
	var out []client.Object
	for _, svc := range render.Databases {
		if in.ManagedDatabase(svc) != nil {
			var clients []networkingv1.NetworkPolicyPeer
			for _, c := range DatabaseClientComponents(svc) {
				clients = append(clients, podPeer(in.SelectorLabels(c)))
			}
			component := DatabaseComponent(svc)
			out = append(out, networkPolicy(in, in.DatabaseName(svc), component, in.SelectorLabels(component), []networkingv1.NetworkPolicyIngressRule{
				{Ports: tcp(render.PostgresPort), From: clients},
				{Ports: tcp(render.PostgresExporterPort), From: monitoringPeers(in)},
			}))
		}
	}
	return out
}

func networkPolicy(in render.Input, name, component string, pods map[string]string, rules []networkingv1.NetworkPolicyIngressRule) *networkingv1.NetworkPolicy {
	return &networkingv1.NetworkPolicy{
		ObjectMeta: in.ObjectMeta(name, component),
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: pods},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
			Ingress:     rules,
		},
	}
}

// monitoringPeers: Prometheus in the monitoring namespaces and the Shop's collector.
func monitoringPeers(in render.Input) []networkingv1.NetworkPolicyPeer {
	return []networkingv1.NetworkPolicyPeer{
		{NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
			Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpIn, Values: MonitoringNamespaces,
		}}}},
		podPeer(collectorPodLabels(in)),
	}
}

// podPeer selects pods of the Shop's own namespace.
func podPeer(labels map[string]string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchLabels: labels}}
}

func tcp(port int) []networkingv1.NetworkPolicyPort {
	p, proto := intstr.FromInt32(int32(port)), corev1.ProtocolTCP
	return []networkingv1.NetworkPolicyPort{{Protocol: &proto, Port: &p}}
}
