package localstack

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/localcluster"
	"github.com/shopplatform/shop-operator/internal/podreason"
	"github.com/shopplatform/shop-operator/internal/render"
)

// Namespace is where the local platform's Shop goes.
const Namespace = "shops"

// LokiStandIn names the Deployment and Service that receive the Shop's logs
// in place of Grafana Loki (AGPL: it cannot be a dependency of this project,
// so no Loki image is built here). It is the collector distribution built
// here with an OTLP/HTTP receiver on Loki's own path (/otlp/v1/logs on
// :3100) that prints every log record (debug exporter, detailed): `kubectl
// logs deploy/loki-standin -n shops` shows what Loki would store.
const (
	LokiStandIn     = "loki-standin"
	lokiStandInPort = 3100
)

// LokiStandInEndpoint is the endpoint a Shop in namespace ns sends logs to.
func LokiStandInEndpoint(ns string) string {
	return fmt.Sprintf("http://%s.%s.svc:%d/otlp", LokiStandIn, ns, lokiStandInPort)
}

// ReadShop reads a sample Shop: "development", "testing", "production" (the
// files config/samples/commerce_v1alpha1_shop_<name>.yaml) or a path.
func ReadShop(sample string) (*shopv1.Shop, error) {
	path := sample
	if !strings.ContainsAny(sample, "/.") {
		root, err := localcluster.RepoRoot()
		if err != nil {
			return nil, err
		}
		path = filepath.Join(root, "config", "samples", "commerce_v1alpha1_shop_"+sample+".yaml")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s := &shopv1.Shop{}
	if err := yaml.UnmarshalStrict(data, s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if s.Kind != "Shop" {
		return nil, fmt.Errorf("%s: not a Shop (kind %q)", path, s.Kind)
	}
	return s, nil
}

// LocalOverrides changes what a Shop needs that cannot run here into what
// can, and says what it changed, one line each. Everything else the profile
// renders runs as rendered.
//   - Postgres: Debian's postgresql-15 in an image of its own (the profile's
//     postgres:<v>-alpine is not built here); version 15 to match.
//   - The collector: the distribution built here (contrib is not).
//   - Loki, when the profile deploys it: the stand-in (see LokiStandIn).
func LocalOverrides(s *shopv1.Shop, ns string) []string {
	var said []string
	for _, db := range []*shopv1.DatabaseSpec{&s.Spec.Databases.Auth, &s.Spec.Databases.Catalog, &s.Spec.Databases.Orders} {
		if db.External != nil {
			continue
		}
		if db.Managed == nil {
			db.Managed = &shopv1.ManagedDatabase{}
		}
		if db.Managed.Image == "" {
			db.Managed.Image, db.Managed.Version = PostgresImage, PostgresVersion
		}
	}
	said = append(said, "databases: "+PostgresImage+" (Debian's postgresql-15; the profile's postgres:16-alpine is not built here)")
	if s.Spec.Observability.Collector.Image == "" {
		s.Spec.Observability.Collector.Image = CollectorImage
		said = append(said, "collector: "+CollectorImage+" (built here with the components the operator renders)")
	}
	l := &s.Spec.Observability.Loki
	if l.Mode != shopv1.BackendExternal {
		l.Mode, l.Endpoint = shopv1.BackendExternal, LokiStandInEndpoint(ns)
		said = append(said, "loki: "+l.Endpoint+" (a stand-in that prints the log records: Loki is AGPL, no image of it is built here; the Shop reports it as External)")
	}
	return said
}

// StandIns are the objects that stand in for backends not built here.
func StandIns(ns string) []client.Object {
	labels := map[string]string{"app.kubernetes.io/name": LokiStandIn}
	config := fmt.Sprintf(`receivers:
  otlp:
    protocols:
      http:
        endpoint: 0.0.0.0:%d
        logs_url_path: /otlp/v1/logs
exporters:
  debug:
    verbosity: detailed
service:
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [debug]
  telemetry:
    metrics:
      level: none
`, lokiStandInPort)
	return []client.Object{
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: LokiStandIn, Namespace: ns, Labels: labels}, Data: map[string]string{"config.yaml": config}},
		&appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: LokiStandIn, Namespace: ns, Labels: labels},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To[int32](1),
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{
						AutomountServiceAccountToken: ptr.To(false),
						SecurityContext: &corev1.PodSecurityContext{
							RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](10001),
							SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
						},
						Containers: []corev1.Container{{
							Name:  "loki-standin",
							Image: CollectorImage,
							Args:  []string{"--config=/etc/standin/config.yaml"},
							Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: lokiStandInPort}},
							ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{
								TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("http")}}, PeriodSeconds: 2},
							Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
								corev1.ResourceCPU: resource.MustParse("20m"), corev1.ResourceMemory: resource.MustParse("48Mi")}},
							SecurityContext: &corev1.SecurityContext{
								AllowPrivilegeEscalation: ptr.To(false), ReadOnlyRootFilesystem: ptr.To(true),
								Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
							},
							VolumeMounts: []corev1.VolumeMount{{Name: "config", MountPath: "/etc/standin", ReadOnly: true}},
						}},
						Volumes: []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{
							ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: LokiStandIn}}}}},
					},
				},
			},
		},
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: LokiStandIn, Namespace: ns, Labels: labels},
			Spec: corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{
				{Name: "http", Port: lokiStandInPort, TargetPort: intstr.FromString("http")}}},
		},
	}
}

// Progress reports what a wait is waiting for; it is called when that
// changes.
type Progress func(format string, args ...any)

// WaitShop waits until the Shop is Ready at its generation and every pod of
// the namespace is Ready with its readiness probe passing. It reports what
// changes: the Shop's Ready message, and each pod that is not ready and
// why, in the kubelet's words (image missing, crash loop, probe failing).
func WaitShop(ctx context.Context, k8s client.Client, cs kubernetes.Interface, shop *shopv1.Shop, bound time.Duration, say Progress) error {
	ctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	lastShop, lastPod := "", map[string]string{}
	for {
		cur := &shopv1.Shop{}
		if err := k8s.Get(ctx, client.ObjectKeyFromObject(shop), cur); err != nil {
			return err
		}
		shopReady, msg := false, "waiting for the operator"
		if c := meta.FindStatusCondition(cur.Status.Conditions, shopv1.ConditionReady); c != nil {
			msg = fmt.Sprintf("Ready=%s %s", c.Status, strings.TrimSpace(c.Message))
			shopReady = c.Status == metav1.ConditionTrue && c.ObservedGeneration == cur.Generation
		}
		if msg != lastShop {
			say("Shop %s: %s", shop.Name, msg)
			lastShop = msg
		}
		waiting, err := podReasons(ctx, cs, shop.Namespace)
		if err != nil {
			return err
		}
		for pod, why := range waiting {
			if lastPod[pod] != why {
				say("  pod %s: %s", pod, why)
			}
		}
		lastPod = waiting
		ready := true
		for _, why := range waiting {
			ready = ready && why == podreason.Ready
		}
		if shopReady && ready && len(waiting) > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("localstack: Shop %s/%s not ready within %s: %s; pods: %s", shop.Namespace, shop.Name, bound, msg,
				PodsNotReady(context.Background(), cs, shop.Namespace, nil))
		case <-time.After(2 * time.Second):
		}
	}
}

// podReasons maps every unfinished pod of ns to why it is not ready, or
// "ready".
func podReasons(ctx context.Context, cs kubernetes.Interface, ns string) (map[string]string, error) {
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodSucceeded || (p.Status.Phase == corev1.PodFailed && p.OwnerReferences != nil && p.OwnerReferences[0].Kind == "Job") {
			continue // a finished Job's pods are not what is waited for
		}
		out[p.Name] = podreason.Of(&p)
	}
	return out, nil
}

// PodsNotReady names the pods of ns (matching sel, when given) that are not
// Ready and why, in the kubelet's words, or says "all ready".
func PodsNotReady(ctx context.Context, cs kubernetes.Interface, ns string, sel map[string]string) string {
	opts := metav1.ListOptions{}
	if sel != nil {
		opts.LabelSelector = metav1.FormatLabelSelector(&metav1.LabelSelector{MatchLabels: sel})
	}
	pods, err := cs.CoreV1().Pods(ns).List(ctx, opts)
	if err != nil {
		return err.Error()
	}
	var waiting []string
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodSucceeded {
			continue
		}
		if why := podreason.Of(&p); why != podreason.Ready {
			waiting = append(waiting, p.Name+" ("+why+")")
		}
	}
	if len(pods.Items) == 0 {
		return "none yet"
	}
	if len(waiting) == 0 {
		return "all ready"
	}
	sort.Strings(waiting)
	return fmt.Sprintf("%d of %d not ready: %s", len(waiting), len(pods.Items), strings.Join(waiting, ", "))
}

// ShopPods lists the pods of a Shop (its label on every child's pods).
func ShopPods(ctx context.Context, cs kubernetes.Interface, shop *shopv1.Shop) ([]corev1.Pod, error) {
	pods, err := cs.CoreV1().Pods(shop.Namespace).List(ctx, metav1.ListOptions{LabelSelector: render.LabelShop + "=" + shop.Name})
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(pods.Items, func(p corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded }), nil
}
