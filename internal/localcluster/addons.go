package localcluster

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/shopplatform/shop-operator/internal/podreason"
)

// The real node's add-ons, as kind installs them: CoreDNS for cluster DNS
// and rancher's local-path-provisioner for PersistentVolumeClaims.
const (
	// LocalPathStorageClass is the real node's default StorageClass: a
	// directory per volume under <cluster dir>/node/volumes.
	LocalPathStorageClass = "local-path"
	localPathNamespace    = "local-path-storage"
	localPathProvisioner  = "rancher.io/local-path"
)

// installAddons creates CoreDNS and the volume provisioner.
func (c *Cluster) installAddons(ctx context.Context, cs kubernetes.Interface) error {
	objs := append(c.coreDNS(), c.localPath()...)
	for _, o := range objs {
		if err := create(ctx, cs, o); err != nil {
			return err
		}
	}
	return nil
}

// restricted is the container security context every add-on runs with.
func restricted() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		RunAsNonRoot:             ptr.To(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
}

func withCapabilities(sc *corev1.SecurityContext, add ...corev1.Capability) *corev1.SecurityContext {
	sc.Capabilities.Add = add
	return sc
}

func requests(cpu, mem string) corev1.ResourceRequirements {
	return corev1.ResourceRequirements{Requests: corev1.ResourceList{
		corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem),
	}}
}

// coreDNS answers for cluster.local only: it has no upstream (nothing outside
// the machine is reachable), so other names do not exist.
func (c *Cluster) coreDNS() []any {
	ns := metav1.NamespaceSystem
	labels := map[string]string{"k8s-app": "kube-dns"}
	// Two server blocks: the cluster's zones, and everything else answered
	// NXDOMAIN at once (with no plugin for a name CoreDNS answers SERVFAIL,
	// which resolvers report as a failure rather than "no such host").
	const corefile = `cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {
    errors
    health {
        lameduck 5s
    }
    ready
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        pods insecure
        ttl 30
    }
    prometheus :9153
    cache 30
    loop
    reload
    loadbalance
}
.:53 {
    errors
    template ANY ANY {
        rcode NXDOMAIN
    }
}
`
	return []any{
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "coredns", Namespace: ns}},
		&rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: "system:coredns"},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{""}, Resources: []string{"endpoints", "services", "pods", "namespaces"}, Verbs: []string{"list", "watch"}},
				{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"list", "watch"}},
			},
		},
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "system:coredns"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:coredns"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "coredns", Namespace: ns}},
		},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "coredns", Namespace: ns}, Data: map[string]string{"Corefile": corefile}},
		&appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "coredns", Namespace: ns, Labels: labels},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To[int32](1),
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{
						ServiceAccountName: "coredns",
						PriorityClassName:  "system-cluster-critical",
						DNSPolicy:          corev1.DNSDefault,
						SecurityContext: &corev1.PodSecurityContext{
							RunAsUser: ptr.To[int64](65532), RunAsGroup: ptr.To[int64](65532),
							SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
						},
						Containers: []corev1.Container{{
							Name:  "coredns",
							Image: CoreDNSImage,
							Args:  []string{"-conf", "/etc/coredns/Corefile"},
							Ports: []corev1.ContainerPort{
								{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP},
								{Name: "dns-tcp", ContainerPort: 53, Protocol: corev1.ProtocolTCP},
								{Name: "metrics", ContainerPort: 9153, Protocol: corev1.ProtocolTCP},
							},
							Resources: requests("50m", "32Mi"),
							// The image's /coredns has the file capability
							// cap_net_bind_service (port 53 as non-root), as
							// upstream's: exec needs it in the bounding set.
							SecurityContext: withCapabilities(restricted(), "NET_BIND_SERVICE"),
							VolumeMounts:    []corev1.VolumeMount{{Name: "config", MountPath: "/etc/coredns", ReadOnly: true}},
							LivenessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/health", Port: intstr.FromInt32(8080)}},
								PeriodSeconds: 10, FailureThreshold: 5},
							ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt32(8181)}},
								PeriodSeconds: 2},
						}},
						Volumes: []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{
							ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "coredns"}}}}},
					},
				},
			},
		},
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "kube-dns", Namespace: ns, Labels: labels},
			Spec: corev1.ServiceSpec{
				ClusterIP: c.node.net.dnsServiceIP().String(),
				Selector:  labels,
				Ports: []corev1.ServicePort{
					{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP, TargetPort: intstr.FromString("dns")},
					{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("dns-tcp")},
					{Name: "metrics", Port: 9153, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("metrics")},
				},
			},
		},
	}
}

// localPath provisions each claim as a directory under the node's volumes
// directory, created and removed by a helper pod (busybox) on the node.
func (c *Cluster) localPath() []any {
	ns := localPathNamespace
	// The name the provisioner gives its helper pods (upstream default).
	sa := "local-path-provisioner-service-account"
	labels := map[string]string{"app": "local-path-provisioner"}
	base := filepath.Join(c.node.dir, "volumes")
	helper := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: helper-pod
spec:
  priorityClassName: system-node-critical
  tolerations:
  - {key: node.kubernetes.io/disk-pressure, operator: Exists, effect: NoSchedule}
  containers:
  - name: helper-pod
    image: %s
    imagePullPolicy: IfNotPresent
`, HelperImage)
	return []any{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: ns}},
		&rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: ns},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch", "create", "patch", "update", "delete"}}},
		},
		&rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: sa, Namespace: ns},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: sa},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: ns}},
		},
		&rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: "localcluster:" + sa},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{""}, Resources: []string{"nodes", "persistentvolumeclaims", "configmaps", "pods", "pods/log"}, Verbs: []string{"get", "list", "watch"}},
				{APIGroups: []string{""}, Resources: []string{"persistentvolumes"}, Verbs: []string{"get", "list", "watch", "create", "patch", "update", "delete"}},
				{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
				{APIGroups: []string{"storage.k8s.io"}, Resources: []string{"storageclasses"}, Verbs: []string{"get", "list", "watch"}},
			},
		},
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "localcluster:" + sa},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "localcluster:" + sa},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: ns}},
		},
		&corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "local-path-config", Namespace: ns},
			Data: map[string]string{
				"config.json":    fmt.Sprintf(`{"nodePathMap": [{"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": [%q]}]}`, base),
				"setup":          "set -eu\nmkdir -m 0777 -p \"$VOL_DIR\"\n",
				"teardown":       "set -eu\nrm -rf \"$VOL_DIR\"\n",
				"helperPod.yaml": helper,
			},
		},
		&appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "local-path-provisioner", Namespace: ns, Labels: labels},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To[int32](1),
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{
						ServiceAccountName: sa,
						Containers: []corev1.Container{{
							Name:    "local-path-provisioner",
							Image:   LocalPathImage,
							Command: []string{"local-path-provisioner", "start", "--config", "/etc/config/config.json"},
							Env: []corev1.EnvVar{
								{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
								{Name: "CONFIG_MOUNT_PATH", Value: "/etc/config/"},
							},
							Resources:    requests("10m", "32Mi"),
							VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: "/etc/config/"}},
						}},
						Volumes: []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{
							ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "local-path-config"}}}}},
					},
				},
			},
		},
		&storagev1.StorageClass{
			ObjectMeta:        metav1.ObjectMeta{Name: LocalPathStorageClass, Annotations: map[string]string{"storageclass.kubernetes.io/is-default-class": "true"}},
			Provisioner:       localPathProvisioner,
			VolumeBindingMode: ptr.To(storagev1.VolumeBindingWaitForFirstConsumer),
			ReclaimPolicy:     ptr.To(corev1.PersistentVolumeReclaimDelete),
		},
	}
}

// create creates one typed object; an existing one is left as it is.
func create(ctx context.Context, cs kubernetes.Interface, o any) error {
	var err error
	switch o := o.(type) {
	case *corev1.Namespace:
		_, err = cs.CoreV1().Namespaces().Create(ctx, o, metav1.CreateOptions{})
	case *corev1.ServiceAccount:
		_, err = cs.CoreV1().ServiceAccounts(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	case *corev1.ConfigMap:
		_, err = cs.CoreV1().ConfigMaps(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	case *corev1.Service:
		_, err = cs.CoreV1().Services(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	case *appsv1.Deployment:
		_, err = cs.AppsV1().Deployments(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	case *rbacv1.Role:
		_, err = cs.RbacV1().Roles(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	case *rbacv1.RoleBinding:
		_, err = cs.RbacV1().RoleBindings(o.Namespace).Create(ctx, o, metav1.CreateOptions{})
	case *rbacv1.ClusterRole:
		_, err = cs.RbacV1().ClusterRoles().Create(ctx, o, metav1.CreateOptions{})
	case *rbacv1.ClusterRoleBinding:
		_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, o, metav1.CreateOptions{})
	case *storagev1.StorageClass:
		_, err = cs.StorageV1().StorageClasses().Create(ctx, o, metav1.CreateOptions{})
	default:
		return fmt.Errorf("localcluster: cannot create %T", o)
	}
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("localcluster: create %T: %w", o, err)
	}
	return nil
}

// waitDeploymentsAvailable waits until the add-ons' Deployments are
// available; on timeout it names each one's waiting reason.
func (c *Cluster) waitAddons(ctx context.Context, cs kubernetes.Interface) error {
	begin := time.Now()
	want := map[string]string{"coredns": metav1.NamespaceSystem, "local-path-provisioner": localPathNamespace}
	var pending []string
	err := poll(ctx, 3*time.Minute, func(ctx context.Context) (bool, error) {
		if err := c.Check(); err != nil {
			return false, err
		}
		pending = pending[:0]
		for name, ns := range want {
			d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil || d.Status.AvailableReplicas < 1 {
				pending = append(pending, ns+"/"+name+" ("+podsWaiting(ctx, cs, ns)+")")
			}
		}
		return len(pending) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("localcluster: add-ons not available: %s: %w", strings.Join(pending, "; "), err)
	}
	c.logf("add-ons available after %s (CoreDNS, local-path-provisioner)", time.Since(begin).Round(100*time.Millisecond))
	return nil
}

// podsWaiting summarises why the pods of a namespace are not ready, in the
// kubelet's words.
func podsWaiting(ctx context.Context, cs kubernetes.Interface, ns string) string {
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	var why []string
	for _, p := range pods.Items {
		why = append(why, p.Name+": "+podreason.Of(&p))
	}
	if len(why) == 0 {
		return "no pods yet"
	}
	return strings.Join(why, ", ")
}
