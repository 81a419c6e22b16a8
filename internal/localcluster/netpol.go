package localcluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// netpolUser is the identity kube-network-policies runs as.
const netpolUser = "localcluster:kube-network-policies"

// netpolChain holds the rules that hand new pod connections to the enforcer.
const netpolChain = "LOCALCLUSTER-NETPOL"

// startNetworkPolicies enforces NetworkPolicies with kube-network-policies
// (sigs.k8s.io/kube-network-policies, as kind ships it), unmodified. It
// decides in user space on every packet the kernel queues to it. Upstream
// queues packets with an nftables `queue` rule, which this kernel lacks: its
// own rule sync fails (and is retried, logged), so the node steers the
// packets instead, with the iptables NFQUEUE target: the first packet of
// every connection to or from a pod, in the node's FORWARD chain (pod to
// pod over the bridge, the host to a pod, a pod to the host), goes to queue
// netpolQueue; kube-network-policies accepts or drops it against the
// policies of both ends, and conntrack lets the rest of an accepted
// connection through. The node's own traffic (kubelet probes) is not
// forwarded and not queued, as Kubernetes requires. --queue-bypass accepts
// while no enforcer listens (before it starts, after it stops).
func (c *Cluster) startNetworkPolicies(ctx context.Context, cs kubernetes.Interface, env []string) error {
	n := c.node
	if err := grantNetworkPolicies(ctx, cs); err != nil {
		return err
	}
	pods := n.net.podCIDR.String()
	q := strconv.Itoa(netpolQueue)
	for _, rule := range [][]string{
		{"iptables", "-w", "-N", netpolChain},
		{"iptables", "-w", "-A", netpolChain, "-s", pods, "-m", "conntrack", "--ctstate", "NEW", "-j", "NFQUEUE", "--queue-num", q, "--queue-bypass"},
		{"iptables", "-w", "-A", netpolChain, "-d", pods, "-m", "conntrack", "--ctstate", "NEW", "-j", "NFQUEUE", "--queue-num", q, "--queue-bypass"},
		{"iptables", "-w", "-I", "FORWARD", "1", "-j", netpolChain},
	} {
		if _, err := n.holder.run(ctx, rule...); err != nil {
			return fmt.Errorf("localcluster: NetworkPolicy steering: %w", err)
		}
	}
	// It reads only the in-cluster configuration, as the DaemonSet pod it
	// usually is: the service account files where a pod has them (/var/run
	// is the node's own /run), with the enforcer's token.
	sa := filepath.Join(n.dir, "run", "secrets", "kubernetes.io", "serviceaccount")
	if err := os.MkdirAll(sa, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(sa, "token"), []byte(n.tokens.netpol), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(sa, "ca.crt"), c.pki.caCertPEM, 0o644); err != nil {
		return err
	}
	_, err := c.startInNode("kube-network-policies", filepath.Join(c.opts.NodeBinDir, "kube-network-policies"),
		append(env, "KUBERNETES_SERVICE_HOST="+n.net.hostIP.String(), "KUBERNETES_SERVICE_PORT="+strconv.Itoa(c.apiPort)),
		"--hostname-override="+RealNodeName,
		"--nfqueue-id="+q,
		"--disable-nri",
		"--metrics-bind-address=127.0.0.1:9080",
		"--v=1",
	)
	return err
}

// grantNetworkPolicies lets the enforcer read what it decides on.
func grantNetworkPolicies(ctx context.Context, cs kubernetes.Interface) error {
	name := "localcluster:kube-network-policies"
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods", "namespaces", "nodes"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: []string{"get", "list", "watch"}},
		},
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: netpolUser}},
	}
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}
