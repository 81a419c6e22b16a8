package cli_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/builders/backups"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
	"github.com/shopplatform/shop-operator/internal/status"
)

// restoreFixture creates, in a fresh namespace, a production Shop with the
// orders Deployment (2 replicas) and the orders backup CronJob, as the
// operator would have them. The test API server runs no controllers: the
// test plays the Job controller's part, and the operator's (playOperator).
func restoreFixture(t *testing.T, ns string) {
	t.Helper()
	restoreFixtureNoOperator(t, ns)
	playOperator(t, ns)
}

// playOperator records each generation of the Shop demo in its status, as
// the operator's reconcile does when it ends, until the test ends: a paused
// generation only in the Reconciling condition (reason Paused; the status's
// observedGeneration stays at the last generation applied), any other in
// both.
func playOperator(t *testing.T, ns string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	t.Cleanup(func() { cancel(); <-stopped })
	go func() {
		defer close(stopped)
		for ctx.Err() == nil {
			shop := &shopv1.Shop{}
			err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "demo"}, shop)
			if c := meta.FindStatusCondition(shop.Status.Conditions, shopv1.ConditionReconciling); err == nil && (c == nil || c.ObservedGeneration != shop.Generation) {
				reason := "Succeeded"
				if shop.Spec.Paused {
					reason = status.ReasonPaused
				} else {
					shop.Status.ObservedGeneration = shop.Generation
				}
				meta.SetStatusCondition(&shop.Status.Conditions, metav1.Condition{Type: shopv1.ConditionReconciling, Status: metav1.ConditionFalse, Reason: reason, ObservedGeneration: shop.Generation})
				_ = env.Client.Status().Update(ctx, shop)
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
}

func restoreFixtureNoOperator(t *testing.T, ns string) {
	t.Helper()
	ctx := context.Background()
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	shop := rendertest.Shop(shopv1.ShopSpec{Environment: shopv1.Production})
	shop.Namespace, shop.UID = ns, ""
	if err := env.Client.Create(ctx, shop); err != nil {
		t.Fatal(err)
	}
	in := rendertest.InputFor(shop, render.APIs{})
	labels := in.SelectorLabels(render.Orders)
	deploy := &appsv1.Deployment{
		ObjectMeta: in.ObjectMeta(in.Name(render.Orders), render.Orders),
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](2),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "orders", Image: "ghcr.io/shopplatform/shopd:test"}}},
			},
		},
	}
	if err := env.Client.Create(ctx, deploy); err != nil {
		t.Fatal(err)
	}
	objs, err := backups.Build(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		if cj, ok := o.(*batchv1.CronJob); ok && cj.Name == "demo-orders-db-backup" {
			if err := env.Client.Create(ctx, cj); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// startRestore runs shopctl db restore in the background and waits
// (bounded) for its Job to appear.
func startRestore(t *testing.T, ns string) (<-chan result, *batchv1.Job) {
	t.Helper()
	done := runRestore(t, ns)
	return done, waitRestoreJob(t, ns, done)
}

// runRestore runs shopctl db restore in the background.
func runRestore(t *testing.T, ns string) chan result {
	t.Helper()
	done := make(chan result, 1)
	kc := kubeconfig(t, env.Config, ns)
	go func() {
		done <- run(t, "shopctl", "", "db", "restore", "demo", "orders", "--from", "orders-20260101T030000Z.dump", "--kubeconfig", kc, "--timeout", "2m")
	}()
	return done
}

// waitRestoreJob waits (bounded) for the restore's Job to appear.
func waitRestoreJob(t *testing.T, ns string, done chan result) *batchv1.Job {
	t.Helper()
	job := &batchv1.Job{}
	for range 300 { // at most about 30 s
		if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "demo-orders-db-restore"}, job); err == nil {
			return job
		}
		select {
		case res := <-done:
			done <- res
			t.Fatalf("restore ended before creating its Job: %+v", res)
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatal("the restore Job never appeared")
	return nil
}

// restoreSucceeds waits (bounded) for the restore to end and fails unless
// it succeeded.
func restoreSucceeds(t *testing.T, done <-chan result) {
	t.Helper()
	select {
	case res := <-done:
		if res.code != 0 {
			t.Fatalf("restore failed: %+v", res)
		}
	case <-time.After(time.Minute):
		t.Fatal("restore did not return after its Job completed")
	}
}

// finish sets the Job's status as the Job controller would.
func finish(t *testing.T, job *batchv1.Job, success bool) {
	t.Helper()
	now := metav1.Now()
	job.Status.StartTime = &now
	if success {
		job.Status.Succeeded = 1
		job.Status.CompletionTime = &now
		job.Status.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastTransitionTime: now, LastProbeTime: now},
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: now, LastProbeTime: now},
		}
	} else {
		job.Status.Failed = 1
		job.Status.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", LastTransitionTime: now, LastProbeTime: now},
			{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: "Job has reached the specified backoff limit", LastTransitionTime: now, LastProbeTime: now},
		}
	}
	if err := env.Client.Status().Update(context.Background(), job); err != nil {
		t.Fatalf("setting the Job's status: %v", err)
	}
}

type restoreState struct {
	paused   bool
	replicas int32
	suspend  bool
}

func state(t *testing.T, ns string) restoreState {
	t.Helper()
	ctx := context.Background()
	shop, deploy, cj := &shopv1.Shop{}, &appsv1.Deployment{}, &batchv1.CronJob{}
	for name, obj := range map[string]client.Object{"demo": shop, "demo-orders": deploy, "demo-orders-db-backup": cj} {
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj); err != nil {
			t.Fatal(err)
		}
	}
	return restoreState{shop.Spec.Paused, ptr.Deref(deploy.Spec.Replicas, 1), ptr.Deref(cj.Spec.Suspend, false)}
}

// TestDBRestore: pause, scale down, suspend backups, restore Job, then all
// back as it was.
func TestDBRestore(t *testing.T) {
	restoreFixture(t, "restore-ok")
	done, job := startRestore(t, "restore-ok")
	if got := state(t, "restore-ok"); got != (restoreState{paused: true, replicas: 0, suspend: true}) {
		t.Errorf("while restoring: %+v, want paused, 0 replicas, backups suspended", got)
	}
	c := job.Spec.Template.Spec.Containers[0]
	if !slices.Contains(c.Command, "/backups/orders-20260101T030000Z.dump") || c.Command[0] != "pg_restore" || !slices.Contains(c.Command, "--clean") {
		t.Errorf("restore command %v", c.Command)
	}
	if v := job.Spec.Template.Spec.Volumes[0]; v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != "demo-orders-db-backups" {
		t.Errorf("restore volume %+v, want the backups claim", v)
	}
	if got := job.Spec.Template.Labels[render.LabelComponent]; got != "orders-db-backup" {
		t.Errorf("restore pods are %q: the database's NetworkPolicy admits orders-db-backup", got)
	}
	finish(t, job, true)
	var res result
	select {
	case res = <-done:
	case <-time.After(time.Minute):
		t.Fatal("restore did not return after its Job completed")
	}
	if res.code != 0 {
		t.Fatalf("restore failed: %+v", res)
	}
	if got := state(t, "restore-ok"); got != (restoreState{paused: false, replicas: 2, suspend: false}) {
		t.Errorf("after restoring: %+v, want resumed with 2 replicas and backups on", got)
	}
	t.Log(res.stdout)

	// The finished Job is kept (for its logs): a second restore refuses to start.
	again := run(t, "shopctl", "", "db", "restore", "demo", "orders", "--from", "orders-20260101T030000Z.dump", "--kubeconfig", kubeconfig(t, env.Config, "restore-ok"))
	if again.code == 0 || !strings.Contains(again.stderr, "Job demo-orders-db-restore exists") {
		t.Errorf("second restore: %+v", again)
	}
	if got := state(t, "restore-ok"); got.paused {
		t.Error("a refused restore paused the Shop")
	}
}

// TestDBRestoreFailure: a failed restore leaves the Shop paused and its
// service down, and says how to resume.
func TestDBRestoreFailure(t *testing.T) {
	restoreFixture(t, "restore-fail")
	done, job := startRestore(t, "restore-fail")
	finish(t, job, false)
	var res result
	select {
	case res = <-done:
	case <-time.After(time.Minute):
		t.Fatal("restore did not return after its Job failed")
	}
	if res.code == 0 || !strings.Contains(res.stderr, "failed") || !strings.Contains(res.stderr, `"paused":false`) {
		t.Errorf("failed restore: %+v", res)
	}
	if got := state(t, "restore-fail"); got != (restoreState{paused: true, replicas: 0, suspend: true}) {
		t.Errorf("after a failed restore: %+v, want everything still paused", got)
	}
}

// TestDBRestoreWaitsForTheOperator: until the operator has recorded the
// pause (a reconcile that began before it may still apply the service's
// replicas), the restore scales nothing down and creates no Job.
func TestDBRestoreWaitsForTheOperator(t *testing.T) {
	ns := "restore-observed"
	restoreFixtureNoOperator(t, ns)
	done := runRestore(t, ns)
	for range 100 { // until paused, at most about 10 s
		if state(t, ns).paused {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // room for a scale-down that should not come
	if got := state(t, ns); got.replicas != 2 {
		t.Fatalf("before the operator recorded the pause: %+v, want the service left at 2 replicas", got)
	}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "demo-orders-db-restore"}, &batchv1.Job{}); err == nil {
		t.Fatal("the restore Job was created before the operator recorded the pause")
	}
	playOperator(t, ns)
	job := waitRestoreJob(t, ns, done)
	if got := state(t, ns); got.replicas != 0 {
		t.Errorf("once the pause was recorded: %+v, want the service scaled to 0", got)
	}
	finish(t, job, true)
	restoreSucceeds(t, done)
}

func TestDBRestoreArgs(t *testing.T) {
	kc := kubeconfig(t, env.Config, "default")
	for args, want := range map[string]string{
		"demo payment --from x.dump":       `unknown database "payment"`,
		"demo orders --from ../etc/passwd": "without a directory",
		"demo orders":                      `required flag(s) "from" not set`,
		"nope orders --from x.dump":        "reading Shop default/nope",
	} {
		res := run(t, "shopctl", "", append(append([]string{"db", "restore"}, strings.Fields(args)...), "--kubeconfig", kc)...)
		if res.code == 0 || !strings.Contains(res.stderr, want) {
			t.Errorf("%s: %+v, want an error with %q", args, res, want)
		}
	}
}

// TestDBRestoreWaitsForBackup: while a backup Job runs (it holds the
// ReadWriteOnce volume), the restore suspends the CronJob and creates no Job.
func TestDBRestoreWaitsForBackup(t *testing.T) {
	ctx := context.Background()
	ns := "restore-wait"
	restoreFixture(t, ns)
	cj := &batchv1.CronJob{}
	key := client.ObjectKey{Namespace: ns, Name: "demo-orders-db-backup"}
	if err := env.Client.Get(ctx, key, cj); err != nil {
		t.Fatal(err)
	}
	cj.Status.Active = []corev1.ObjectReference{{APIVersion: "batch/v1", Kind: "Job", Namespace: ns, Name: "demo-orders-db-backup-1"}}
	if err := env.Client.Status().Update(ctx, cj); err != nil {
		t.Fatal(err)
	}
	done := runRestore(t, ns)
	suspended := false
	for range 300 { // at most about 30 s
		if err := env.Client.Get(ctx, key, cj); err != nil {
			t.Fatal(err)
		}
		if suspended = ptr.Deref(cj.Spec.Suspend, false); suspended {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !suspended {
		t.Fatal("the restore never suspended the backups")
	}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "demo-orders-db-restore"}, &batchv1.Job{}); err == nil {
		t.Fatal("the restore Job was created while a backup was running")
	}
	cj.Status.Active = nil
	if err := env.Client.Status().Update(ctx, cj); err != nil {
		t.Fatal(err)
	}
	finish(t, waitRestoreJob(t, ns, done), true)
	restoreSucceeds(t, done)
}
