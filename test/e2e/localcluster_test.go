package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/shopplatform/shop-operator/internal/localcluster"
)

// TestLocalCluster checks what the Shop end-to-end tests rely on: workloads
// become Available on kwok's fake nodes (a StatefulSet with a claim too), and
// the garbage collector deletes a Deployment's ReplicaSet and Pods.
func TestLocalCluster(t *testing.T) {
	c := localcluster.StartForTest(t, func(o *localcluster.Options) {
		o.Mode = localcluster.KwokNodes
		// A class a Shop might name, besides the default one.
		o.StorageClasses = []string{"standard"}
	})
	t.Logf("cluster started in %s", c.StartupDuration().Round(100*time.Millisecond))
	var total int64
	for _, p := range c.Processes() {
		t.Logf("  %-24s pid %-7d RSS %4d MiB", p.Name, p.PID, p.RSS>>20)
		total += p.RSS
	}
	t.Logf("  %-24s             RSS %4d MiB", "total", total>>20)

	cs, err := kubernetes.NewForConfig(c.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	// waitFor polls cond every half second for at most two minutes: a bound
	// on a hang, not a speed requirement. On failure it reports any dead
	// process of the cluster. (Closures, so that other files of this package
	// may name their helpers freely.)
	waitFor := func(what string, cond func(context.Context) (bool, error)) {
		t.Helper()
		var last error
		err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
			ok, err := cond(ctx)
			if err != nil {
				last = err // API errors may be transient; keep polling
			}
			return ok, nil
		})
		if err != nil {
			msg := fmt.Sprintf("waiting for %s: %v", what, err)
			if last != nil {
				msg += fmt.Sprintf(" (last error: %v)", last)
			}
			if perr := c.Check(); perr != nil {
				msg += "\n" + perr.Error()
			}
			t.Fatal(msg)
		}
	}
	ignoreNotFound := func(err error) error {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	}
	ns := "e2e-localcluster"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The namespace's default ServiceAccount comes from the controller-manager.
	waitFor("ServiceAccount "+ns+"/default", func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, ignoreNotFound(err)
	})

	labels := map[string]string{"app": "web"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](3),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{Name: "web", Image: "example.invalid/web:1"}},
					// Spread over the fake nodes' zones, as production Shops do.
					TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{
						MaxSkew:           1,
						TopologyKey:       "topology.kubernetes.io/zone",
						WhenUnsatisfiable: corev1.DoNotSchedule,
						LabelSelector:     &metav1.LabelSelector{MatchLabels: labels},
					}},
				},
			},
		},
	}
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	dbLabels := map[string]string{"app": "db"}
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: ns},
		Spec: appsv1.StatefulSetSpec{
			Replicas:    ptr.To[int32](1),
			ServiceName: "db",
			Selector:    &metav1.LabelSelector{MatchLabels: dbLabels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: dbLabels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "db", Image: "example.invalid/postgres:17",
					VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/var/lib/postgresql/data"}},
				}}},
			},
			// No storage class: the cluster's default class, which kwok binds.
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{
						corev1.ResourceStorage: resource.MustParse("1Gi"),
					}},
				},
			}},
		},
	}
	if _, err := cs.AppsV1().StatefulSets(ns).Create(ctx, sts, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// A claim naming an extra class is bound too.
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "standard-claim", Namespace: ns},
		Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: ptr.To("standard"),
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceStorage: resource.MustParse("2Gi"),
			}},
		},
	}
	if _, err := cs.CoreV1().PersistentVolumeClaims(ns).Create(ctx, pvc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	waitFor("Deployment web Available with 3 replicas", func(ctx context.Context) (bool, error) {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return d.Status.ObservedGeneration == d.Generation && d.Status.AvailableReplicas == 3 &&
			d.Status.UpdatedReplicas == 3 && slices.ContainsFunc(d.Status.Conditions, func(c appsv1.DeploymentCondition) bool {
			return c.Type == appsv1.DeploymentAvailable && c.Status == corev1.ConditionTrue
		}), nil
	})
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
	if err != nil {
		t.Fatal(err)
	}
	zones := map[string]int{}
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodRunning || p.Spec.NodeName == "" {
			t.Errorf("pod %s: phase %s on node %q, want Running on a node", p.Name, p.Status.Phase, p.Spec.NodeName)
		}
		n, err := cs.CoreV1().Nodes().Get(ctx, p.Spec.NodeName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		zones[n.Labels["topology.kubernetes.io/zone"]]++
	}
	if len(zones) < 2 {
		t.Errorf("web pods by zone %v: want them spread over both zones", zones)
	}

	waitFor("StatefulSet db ready with a bound claim", func(ctx context.Context) (bool, error) {
		s, err := cs.AppsV1().StatefulSets(ns).Get(ctx, "db", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if s.Status.ObservedGeneration != s.Generation || s.Status.ReadyReplicas != 1 || s.Status.AvailableReplicas != 1 {
			return false, nil
		}
		pvc, err := cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "data-db-0", metav1.GetOptions{})
		if err != nil {
			return false, ignoreNotFound(err)
		}
		return pvc.Status.Phase == corev1.ClaimBound, nil
	})

	waitFor("claim standard-claim Bound", func(ctx context.Context) (bool, error) {
		p, err := cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "standard-claim", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return p.Status.Phase == corev1.ClaimBound, nil
	})

	// Delete the Deployment alone; the garbage collector must remove the rest.
	if err := cs.AppsV1().Deployments(ns).Delete(ctx, "web", metav1.DeleteOptions{
		PropagationPolicy: ptr.To(metav1.DeletePropagationBackground),
	}); err != nil {
		t.Fatal(err)
	}
	waitFor("ReplicaSets and Pods of Deployment web garbage-collected", func(ctx context.Context) (bool, error) {
		rs, err := cs.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return false, err
		}
		ps, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return false, err
		}
		return len(rs.Items) == 0 && len(ps.Items) == 0, nil
	})
}
