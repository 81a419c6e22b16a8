package controllers

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/argocd"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/secrets"
	"github.com/shopplatform/shop-operator/internal/status"
)

var ctx = context.Background()

func get(t *testing.T, obj client.Object, ns, name string) error {
	t.Helper()
	return suite().get(t, obj, ns, name)
}

func mustGet(t *testing.T, obj client.Object, ns, name string) {
	t.Helper()
	suite().mustGet(t, obj, ns, name)
}

func (c cluster) get(t *testing.T, obj client.Object, ns, name string) error {
	t.Helper()
	return c.k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj)
}

func (c cluster) mustGet(t *testing.T, obj client.Object, ns, name string) {
	t.Helper()
	eventually(t, fmt.Sprintf("%T %s/%s", obj, ns, name), func() (bool, string) {
		err := c.get(t, obj, ns, name)
		return err == nil, fmt.Sprint(err)
	})
}

// update changes a Shop, again on a conflict (the operator patches its status).
func update(t *testing.T, ns, name string, mutate func(*shopv1.Shop)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		s := getShop(t, ns, name)
		mutate(s)
		return k8s.Update(ctx, s)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestShopLifecycle creates a Shop, waits for its children, marks them ready,
// changes the spec, and checks that status follows the generation.
func TestShopLifecycle(t *testing.T) {
	ns := namespace(t)
	if err := k8s.Create(ctx, newShop(ns, "web", shopv1.ShopSpec{})); err != nil {
		t.Fatal(err)
	}
	for _, svc := range render.Services {
		mustGet(t, &appsv1.Deployment{}, ns, "web-"+svc)
		mustGet(t, &corev1.Service{}, ns, "web-"+svc)
		mustGet(t, &corev1.ServiceAccount{}, ns, "web-"+svc)
	}
	for _, db := range render.Databases {
		mustGet(t, &appsv1.StatefulSet{}, ns, "web-"+db+"-db")
	}

	s := waitCondition(t, ns, "web", shopv1.ConditionReconciling, metav1.ConditionTrue)
	if st, _, _ := condition(s, shopv1.ConditionReady); st != metav1.ConditionFalse {
		t.Errorf("Ready = %s before the workloads are ready, want False", st)
	}
	if s.Status.Environment != shopv1.Development {
		t.Errorf("status.environment = %q, want development", s.Status.Environment)
	}

	markWorkloadsReady(t, ns, "web")
	s = waitCondition(t, ns, "web", shopv1.ConditionReady, metav1.ConditionTrue)
	if n := len(s.Status.Components); n < 8 || s.Status.ReadyComponents != fmt.Sprintf("%d/%d", n, n) {
		t.Errorf("readyComponents = %q, want all of at least 8", s.Status.ReadyComponents)
	}
	if st, _, _ := condition(s, shopv1.ConditionStalled); st != metav1.ConditionFalse {
		t.Errorf("Stalled = %s, want False", st)
	}
	if !strings.Contains(s.Status.URL, "web-frontend") {
		t.Errorf("url = %q, want the frontend Service", s.Status.URL)
	}

	// A spec change moves the generation; status follows and the child changes.
	update(t, ns, "web", func(s *shopv1.Shop) { s.Spec.Workloads.Frontend.Replicas = ptr.To[int32](2) })
	waitCondition(t, ns, "web", shopv1.ConditionReconciling, metav1.ConditionTrue)
	eventually(t, "frontend scaled to 2", func() (bool, string) {
		d := &appsv1.Deployment{}
		_ = get(t, d, ns, "web-frontend")
		return d.Spec.Replicas != nil && *d.Spec.Replicas == 2, fmt.Sprint(d.Spec.Replicas)
	})
	markWorkloadsReady(t, ns, "web")
	s = waitCondition(t, ns, "web", shopv1.ConditionReady, metav1.ConditionTrue)
	if s.Status.ObservedGeneration != 2 {
		t.Errorf("observedGeneration = %d, want 2", s.Status.ObservedGeneration)
	}
}

// TestDriftIsRepaired edits and deletes children behind the operator's back.
func TestDriftIsRepaired(t *testing.T) {
	ns := namespace(t)
	if err := k8s.Create(ctx, newShop(ns, "drift", shopv1.ShopSpec{})); err != nil {
		t.Fatal(err)
	}
	d := &appsv1.Deployment{}
	mustGet(t, d, ns, "drift-catalog")
	want := d.Spec.Template.Spec.Containers[0].Image

	d.Spec.Template.Spec.Containers[0].Image = "example.com/tampered:1"
	if err := k8s.Update(ctx, d); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the image restored", func() (bool, string) {
		_ = get(t, d, ns, "drift-catalog")
		return d.Spec.Template.Spec.Containers[0].Image == want, d.Spec.Template.Spec.Containers[0].Image
	})

	svc := &corev1.Service{}
	mustGet(t, svc, ns, "drift-orders")
	uid := svc.UID
	if err := k8s.Delete(ctx, svc); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the Service recreated", func() (bool, string) {
		err := get(t, svc, ns, "drift-orders")
		return err == nil && svc.UID != uid, fmt.Sprint(err)
	})
}

// TestUnwantedChildIsPruned turns autoscaling on, then off again: the
// HorizontalPodAutoscaler must go.
func TestUnwantedChildIsPruned(t *testing.T) {
	ns := namespace(t)
	spec := shopv1.ShopSpec{Workloads: shopv1.Workloads{Catalog: shopv1.WorkloadSpec{
		Autoscaling: &shopv1.AutoscalingSpec{Enabled: ptr.To(true), MinReplicas: ptr.To[int32](1), MaxReplicas: ptr.To[int32](3)},
	}}}
	if err := k8s.Create(ctx, newShop(ns, "prune", spec)); err != nil {
		t.Fatal(err)
	}
	mustGet(t, &autoscalingv2.HorizontalPodAutoscaler{}, ns, "prune-catalog")
	mustGet(t, &appsv1.Deployment{}, ns, "prune-orders")

	update(t, ns, "prune", func(s *shopv1.Shop) { s.Spec.Workloads.Catalog.Autoscaling.Enabled = ptr.To(false) })
	eventually(t, "the HPA pruned", func() (bool, string) {
		err := get(t, &autoscalingv2.HorizontalPodAutoscaler{}, ns, "prune-catalog")
		return apierrors.IsNotFound(err), fmt.Sprint(err)
	})
	if err := get(t, &appsv1.Deployment{}, ns, "prune-orders"); err != nil {
		t.Errorf("a wanted child went too: %v", err)
	}
}

// TestPausedShopIsLeftAlone pauses a Shop, changes it, and sees nothing happen.
func TestPausedShopIsLeftAlone(t *testing.T) {
	ns := namespace(t)
	if err := k8s.Create(ctx, newShop(ns, "paused", shopv1.ShopSpec{})); err != nil {
		t.Fatal(err)
	}
	mustGet(t, &appsv1.Deployment{}, ns, "paused-auth")
	update(t, ns, "paused", func(s *shopv1.Shop) {
		s.Spec.Paused = true
		s.Spec.Workloads.Auth.Replicas = ptr.To[int32](3)
	})
	// For the paused generation: shopctl db restore waits on exactly this
	// before it scales a service down.
	eventually(t, "Reconciling=False/Paused for the paused generation", func() (bool, string) {
		shop := getShop(t, ns, "paused")
		c := meta.FindStatusCondition(shop.Status.Conditions, shopv1.ConditionReconciling)
		if c == nil {
			return false, "no Reconciling condition"
		}
		return c.Status == metav1.ConditionFalse && c.Reason == "Paused" && c.ObservedGeneration == shop.Generation,
			fmt.Sprintf("%s %s (generation %d of %d): %s", c.Status, c.Reason, c.ObservedGeneration, shop.Generation, c.Message)
	})
	// Deleting a child of a paused Shop is not repaired either.
	svc := &corev1.Service{}
	mustGet(t, svc, ns, "paused-auth")
	if err := k8s.Delete(ctx, svc); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // give a (wrong) reconcile the chance to act
	d := &appsv1.Deployment{}
	_ = get(t, d, ns, "paused-auth")
	if d.Spec.Replicas != nil && *d.Spec.Replicas == 3 {
		t.Error("a paused Shop's change was applied")
	}
	if err := get(t, svc, ns, "paused-auth"); !apierrors.IsNotFound(err) {
		t.Errorf("a paused Shop's deleted child came back: %v", err)
	}

	update(t, ns, "paused", func(s *shopv1.Shop) { s.Spec.Paused = false })
	eventually(t, "resumed: replicas 3", func() (bool, string) {
		_ = get(t, d, ns, "paused-auth")
		return d.Spec.Replicas != nil && *d.Spec.Replicas == 3, fmt.Sprint(d.Spec.Replicas)
	})
	mustGet(t, svc, ns, "paused-auth")
}

// TestMissingExternalSecret references a Secret that does not exist yet.
func TestMissingExternalSecret(t *testing.T) {
	ns := namespace(t)
	spec := shopv1.ShopSpec{Databases: shopv1.Databases{Orders: shopv1.DatabaseSpec{
		External: &shopv1.ExternalDatabase{SecretName: "orders-pg"},
	}}}
	if err := k8s.Create(ctx, newShop(ns, "ext", spec)); err != nil {
		t.Fatal(err)
	}
	s := waitCondition(t, ns, "ext", shopv1.ConditionStalled, metav1.ConditionTrue)
	_, reason, msg := condition(s, shopv1.ConditionDatabasesReady)
	if reason != "SecretMissing" || !strings.Contains(msg, `Secret "orders-pg" not found`) {
		t.Errorf("DatabasesReady = %s: %s, want SecretMissing naming the Secret", reason, msg)
	}
	// The rest of the Shop is still rendered; no StatefulSet for the external database.
	mustGet(t, &appsv1.Deployment{}, ns, "ext-orders")
	mustGet(t, &appsv1.StatefulSet{}, ns, "ext-auth-db")
	if err := get(t, &appsv1.StatefulSet{}, ns, "ext-orders-db"); !apierrors.IsNotFound(err) {
		t.Errorf("external database got a StatefulSet: %v", err)
	}

	// A Secret without the password: still stalled, with a message naming the key.
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "orders-pg"},
		StringData: map[string]string{"host": "pg.example", "port": "5432", "dbname": "orders", "user": "orders"}}
	if err := k8s.Create(ctx, sec); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a message about the missing key", func() (bool, string) {
		_, _, msg := condition(getShop(t, ns, "ext"), shopv1.ConditionReferencesResolved)
		return strings.Contains(msg, `no key "password"`), msg
	})

	sec.StringData = map[string]string{"password": "s3cret"}
	if err := k8s.Update(ctx, sec); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, ns, "ext", shopv1.ConditionReferencesResolved, metav1.ConditionTrue)
	markWorkloadsReady(t, ns, "ext")
	waitCondition(t, ns, "ext", shopv1.ConditionReady, metav1.ConditionTrue)
}

// TestShopsDoNotInterfere runs two Shops in one namespace and deletes one.
func TestShopsDoNotInterfere(t *testing.T) {
	ns := namespace(t)
	for _, name := range []string{"one", "two"} {
		if err := k8s.Create(ctx, newShop(ns, name, shopv1.ShopSpec{})); err != nil {
			t.Fatal(err)
		}
	}
	mustGet(t, &appsv1.Deployment{}, ns, "one-frontend")
	mustGet(t, &appsv1.Deployment{}, ns, "two-frontend")
	markWorkloadsReady(t, ns, "one")
	markWorkloadsReady(t, ns, "two")
	waitCondition(t, ns, "one", shopv1.ConditionReady, metav1.ConditionTrue)
	waitCondition(t, ns, "two", shopv1.ConditionReady, metav1.ConditionTrue)

	// Each Shop's children belong to it alone.
	for _, name := range []string{"one", "two"} {
		deps := &appsv1.DeploymentList{}
		if err := k8s.List(ctx, deps, client.InNamespace(ns), client.MatchingLabels{render.LabelShop: name}); err != nil {
			t.Fatal(err)
		}
		shop := getShop(t, ns, name)
		for _, d := range deps.Items {
			if !metav1.IsControlledBy(&d, shop) {
				t.Errorf("%s is labelled for %s but not controlled by it", d.Name, name)
			}
		}
	}
	// Changing one leaves the other's children alone.
	update(t, ns, "one", func(s *shopv1.Shop) { s.Spec.Workloads.Payment.Replicas = ptr.To[int32](0) })
	eventually(t, "one-payment scaled to 0", func() (bool, string) {
		d := &appsv1.Deployment{}
		_ = get(t, d, ns, "one-payment")
		return d.Spec.Replicas != nil && *d.Spec.Replicas == 0, fmt.Sprint(d.Spec.Replicas)
	})
	d := &appsv1.Deployment{}
	mustGet(t, d, ns, "two-payment")
	if *d.Spec.Replicas != 1 {
		t.Errorf("two-payment changed to %d replicas", *d.Spec.Replicas)
	}
}

// TestGeneratedSecretsAreKept deletes nothing and regenerates nothing: the
// database password survives spec changes and operator restarts.
func TestGeneratedSecretsAreKept(t *testing.T) {
	ns := namespace(t)
	if err := k8s.Create(ctx, newShop(ns, "keep", shopv1.ShopSpec{})); err != nil {
		t.Fatal(err)
	}
	name := "keep-catalog-db-credentials"
	sec := &corev1.Secret{}
	mustGet(t, sec, ns, name)
	before := string(sec.Data[secrets.PasswordKey])
	if len(before) < 32 {
		t.Fatalf("password %d bytes, want at least 32", len(before))
	}
	update(t, ns, "keep", func(s *shopv1.Shop) { s.Spec.Workloads.Catalog.LogLevel = "warn" })
	waitCondition(t, ns, "keep", shopv1.ConditionReconciling, metav1.ConditionTrue)
	mustGet(t, sec, ns, name)
	if after := string(sec.Data[secrets.PasswordKey]); after != before {
		t.Error("the database password was regenerated")
	}
}

// TestSteadyStateMakesNoWrites lets a Shop settle, pokes it, and counts the
// operator's writes: there must be none.
func TestSteadyStateMakesNoWrites(t *testing.T) {
	ns := namespace(t)
	if err := k8s.Create(ctx, newShop(ns, "calm", shopv1.ShopSpec{Environment: shopv1.Production})); err != nil {
		t.Fatal(err)
	}
	mustGet(t, &appsv1.Deployment{}, ns, "calm-frontend")
	markWorkloadsReady(t, ns, "calm")
	waitCondition(t, ns, "calm", shopv1.ConditionReady, metav1.ConditionTrue)
	// Let the reconciles still in flight finish (one that read the Shop
	// before it turned Ready writes that status again): the operator has
	// sent nothing in the namespace, not even a read or a dry run, for two
	// seconds.
	settled(t, ns, 2*time.Second)

	before, byKeyBefore := writes.snapshot()
	// An annotation change triggers a reconcile without changing the spec.
	update(t, ns, "calm", func(s *shopv1.Shop) {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations["test/poke"] = "1"
	})
	time.Sleep(3 * time.Second)
	after, byKeyAfter := writes.snapshot()
	for k, v := range byKeyAfter {
		if v != byKeyBefore[k] && strings.Contains(k, "/namespaces/"+ns+"/") {
			t.Errorf("steady state wrote: %s (%d times), the last: %s", k, v-byKeyBefore[k], writes.lastBody(k))
		}
	}
	t.Logf("operator writes during steady state: %d (all namespaces)", after-before)
}

// TestRefusedSpecIsStalled changes a Ready Shop to a spec the API server
// accepts but a builder refuses (a backup schedule that never runs twice):
// the status must say so for the new generation, Stalled=True and
// Ready=False with the builder's message, so that kstatus reports Failed and
// Argo CD Degraded, and keep the components it last observed. Fixing the
// spec makes the Shop Ready again.
func TestRefusedSpecIsStalled(t *testing.T) {
	ns := namespace(t)
	if err := k8s.Create(ctx, newShop(ns, "refused", shopv1.ShopSpec{})); err != nil {
		t.Fatal(err)
	}
	mustGet(t, &appsv1.Deployment{}, ns, "refused-frontend")
	markWorkloadsReady(t, ns, "refused")
	before := waitCondition(t, ns, "refused", shopv1.ConditionReady, metav1.ConditionTrue)

	const never = "0 0 30 2 *" // February 30th
	update(t, ns, "refused", func(s *shopv1.Shop) {
		s.Spec.Databases.Orders.Managed = &shopv1.ManagedDatabase{Backup: &shopv1.BackupSpec{Enabled: ptr.To(true), Schedule: never}}
	})
	s := waitCondition(t, ns, "refused", shopv1.ConditionStalled, metav1.ConditionTrue)
	want := `databases.orders.managed.backup.schedule: schedule "` + never + `" never runs twice`
	for _, c := range []string{shopv1.ConditionStalled, shopv1.ConditionReady, shopv1.ConditionReconciling} {
		st, reason, msg := condition(s, c)
		wantStatus := metav1.ConditionFalse
		if c == shopv1.ConditionStalled {
			wantStatus = metav1.ConditionTrue
		}
		if st != wantStatus || reason != status.ReasonRenderFailed || !strings.Contains(msg, want) {
			t.Errorf("%s = %s %s: %q, want %s %s with %q", c, st, reason, msg, wantStatus, status.ReasonRenderFailed, want)
		}
		if cc := meta.FindStatusCondition(s.Status.Conditions, c); cc.ObservedGeneration != s.Generation {
			t.Errorf("%s is for generation %d, want %d", c, cc.ObservedGeneration, s.Generation)
		}
	}
	if len(s.Status.Components) != len(before.Status.Components) || s.Status.ReadyComponents != before.Status.ReadyComponents {
		t.Errorf("components %v (%s), want the last observed %v (%s)", s.Status.Components, s.Status.ReadyComponents,
			before.Status.Components, before.Status.ReadyComponents)
	}
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(s)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := kstatus.Compute(&unstructured.Unstructured{Object: u}); err != nil || res.Status != kstatus.FailedStatus {
		t.Errorf("kstatus = %+v, %v; want Failed", res, err)
	}
	if h, err := argocd.ShopHealth(u); err != nil || h.Status != argocd.Degraded || !strings.Contains(h.Message, want) {
		t.Errorf("Argo CD health = %+v, %v; want Degraded with %q", h, err, want)
	}

	update(t, ns, "refused", func(s *shopv1.Shop) { s.Spec.Databases.Orders.Managed.Backup.Schedule = "0 3 * * *" })
	markWorkloadsReady(t, ns, "refused")
	s = waitCondition(t, ns, "refused", shopv1.ConditionReady, metav1.ConditionTrue)
	if st, _, _ := condition(s, shopv1.ConditionStalled); st != metav1.ConditionFalse {
		t.Errorf("Stalled = %s once the spec is fixed, want False", st)
	}
}

// settled waits (up to a minute) until the operator has sent no request
// in namespace ns for quiet.
func settled(t *testing.T, ns string, quiet time.Duration) {
	t.Helper()
	// Reads and dry runs count: a reconcile that read the Shop before its
	// last status write is still applying (dry runs) and would write that
	// status again from its stale copy.
	inNamespace := func() int { return writes.requestsUnder("/namespaces/" + ns + "/") }
	last, since := inNamespace(), time.Now()
	for deadline := time.Now().Add(time.Minute); time.Since(since) < quiet; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the operator kept working in %s for a minute", ns)
		}
		if n := inNamespace(); n != last {
			last, since = n, time.Now()
		}
	}
}

// TestStatusNamesWhyAPodWaits: when a workload's pod cannot start, the
// Shop's WorkloadsReady and DatabasesReady messages name the pod and the
// reason the kubelet gives, and follow it as it changes (the operator
// watches the Shop's pods). The pods are written here as the kubelet would
// report them; the real node's test sees real ones.
func TestStatusNamesWhyAPodWaits(t *testing.T) {
	ns := namespace(t)
	if err := k8s.Create(ctx, newShop(ns, "why", shopv1.ShopSpec{})); err != nil {
		t.Fatal(err)
	}
	waitCondition(t, ns, "why", shopv1.ConditionWorkloadsReady, metav1.ConditionFalse)
	pod := func(name, component string, status corev1.PodStatus) {
		t.Helper()
		labels := render.WithLabels(map[string]string{render.LabelShop: "why", render.LabelComponent: component},
			map[string]string{render.LabelManagedBy: render.ManagedBy})
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: component, Image: "shopd"}}}}
		if err := k8s.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
		p.Status = status
		if err := k8s.Status().Update(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	crashing := corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: []corev1.ContainerStatus{{Name: "orders",
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 40s restarting failed container=orders"}}}}}
	pod("why-orders-5d8f-abcde", render.Orders, crashing)
	pod("why-orders-db-0", render.Orders+"-db", corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{
		Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable",
		Message: "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims."}}})

	eventually(t, "the pods and the kubelet's reasons in the status", func() (bool, string) {
		s := getShop(t, ns, "why")
		_, _, w := condition(s, shopv1.ConditionWorkloadsReady)
		_, _, d := condition(s, shopv1.ConditionDatabasesReady)
		return strings.Contains(w, "orders 0/1 (pod why-orders-5d8f-abcde: container orders CrashLoopBackOff: back-off 40s") &&
			strings.Contains(d, "orders-db 0/1 (pod why-orders-db-0: unschedulable: 0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims.)"), w + " | " + d
	})

	// The pod's next state reaches the status through the watch.
	p := &corev1.Pod{}
	mustGet(t, p, ns, "why-orders-5d8f-abcde")
	p.Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CreateContainerConfigError",
		Message: `secret "why-orders-db-credentials" not found`}}
	if err := k8s.Status().Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new reason in WorkloadsReady", func() (bool, string) {
		_, _, w := condition(getShop(t, ns, "why"), shopv1.ConditionWorkloadsReady)
		return strings.Contains(w, `container orders CreateContainerConfigError: secret "why-orders-db-credentials" not found`), w
	})
}
