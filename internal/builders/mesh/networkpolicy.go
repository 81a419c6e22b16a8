package mesh

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/shopplatform/shop-operator/internal/builders/backups"
	"github.com/shopplatform/shop-operator/internal/render"
)

// serviceNetworkPolicies express the grants at layer 4, in every mode: each
// service's pods accept its API port only from its callers and the admin
// port only from monitoring. Without a mesh the edge is anyone, and only the
// frontend is exposed to it; with Istio they are defense in depth below the
// AuthorizationPolicies: the edge is the ingress gateway's pods, auth's
// public keys are fetched by istiod, and Prometheus may also scrape the
// sidecar's metrics ports. Other pods of the namespace are not selected, so
// other apps are untouched.
func serviceNetworkPolicies(in render.Input) []client.Object {
	istio := ModeOf(in) == ModeIstio
	var out []client.Object
	for _, svc := range render.Services {
		var api []networkingv1.NetworkPolicyPeer
		public := false
		for _, c := range callersOf(svc) {
			switch {
			case c == Edge && istio:
				api = append(api, ingressGatewayPeer(in))
			case c == Edge:
				// Without a gateway only the frontend is exposed.
				public = public || svc == render.Frontend
			default:
				api = append(api, podPeer(in.SelectorLabels(c)))
			}
		}
		if istio && slices.ContainsFunc(grants[svc], func(g grant) bool { return g.anyone }) {
			api = append(api, istiodPeer())
		}
		rules := []networkingv1.NetworkPolicyIngressRule{}
		if public {
			rules = append(rules, networkingv1.NetworkPolicyIngressRule{Ports: tcp(render.HTTPPort)})
		} else if len(api) > 0 {
			rules = append(rules, networkingv1.NetworkPolicyIngressRule{Ports: tcp(render.HTTPPort), From: api})
		}
		rules = append(rules, networkingv1.NetworkPolicyIngressRule{Ports: tcp(render.AdminPort), From: monitoringPeers(in)})
		if istio {
			rules = append(rules, networkingv1.NetworkPolicyIngressRule{Ports: tcp(SidecarMetricsPorts...), From: monitoringPeers(in)[:1]})
		}
		out = append(out, networkPolicy(in, in.Name(svc), svc, in.SelectorLabels(svc), rules))
	}
	return out
}

// databaseNetworkPolicies: a managed database accepts Postgres only from its
// own service (and its backup job), and its exporter port from monitoring.
// Backup jobs accept nothing: they only connect out.
func databaseNetworkPolicies(in render.Input) []client.Object {
	var out []client.Object
	for _, svc := range render.Databases {
		m := in.ManagedDatabase(svc)
		if m == nil {
			continue
		}
		var clients []networkingv1.NetworkPolicyPeer
		for _, c := range DatabaseClientComponents(svc) {
			clients = append(clients, podPeer(in.SelectorLabels(c)))
		}
		component := DatabaseComponent(svc)
		out = append(out, networkPolicy(in, in.DatabaseName(svc), component, in.SelectorLabels(component), []networkingv1.NetworkPolicyIngressRule{
			{Ports: tcp(render.PostgresPort), From: clients},
			{Ports: tcp(render.PostgresExporterPort), From: monitoringPeers(in)},
		}))
		if m.Backup != nil && ptr.Deref(m.Backup.Enabled, false) {
			job := backups.Component(svc)
			out = append(out, networkPolicy(in, backups.CronJobName(in, svc), job, in.SelectorLabels(job), nil))
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

// monitoringPeers: Prometheus in the monitoring namespaces (first) and the
// Shop's collector.
func monitoringPeers(in render.Input) []networkingv1.NetworkPolicyPeer {
	return []networkingv1.NetworkPolicyPeer{
		{NamespaceSelector: namespaces(MonitoringNamespaces...)},
		podPeer(collectorPodLabels(in)),
	}
}

// ingressGatewayPeer: the pods the Shop's Gateway selects, in the ingress
// gateway's namespace (the one of IngressGatewayPrincipals).
func ingressGatewayPeer(in render.Input) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{
		NamespaceSelector: namespaces(IstioNamespace),
		PodSelector:       &metav1.LabelSelector{MatchLabels: in.Spec.Gateway.Istio.GatewaySelector},
	}
}

// istiodPeer: istiod, which fetches auth's public keys in plain text.
func istiodPeer() networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{
		NamespaceSelector: namespaces(IstioNamespace),
		PodSelector:       &metav1.LabelSelector{MatchLabels: IstiodPodLabels},
	}
}

func namespaces(names ...string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
		Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpIn, Values: names,
	}}}
}

// podPeer selects pods of the Shop's own namespace.
func podPeer(labels map[string]string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchLabels: labels}}
}

func tcp(ports ...int) []networkingv1.NetworkPolicyPort {
	var out []networkingv1.NetworkPolicyPort
	for _, port := range ports {
		p, proto := intstr.FromInt32(int32(port)), corev1.ProtocolTCP
		out = append(out, networkingv1.NetworkPolicyPort{Protocol: &proto, Port: &p})
	}
	return out
}
