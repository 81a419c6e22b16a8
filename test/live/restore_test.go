package live

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/shopplatform/shop-operator/internal/localstack"
	"github.com/shopplatform/shop-operator/internal/podreason"
)

// The backup script's line naming the dump it wrote.
var backedUpLine = regexp.MustCompile(`backed up orders to (orders-[0-9]{8}T[0-9]{6}Z\.dump):`)

// backupRestoresIntoTheRunningShop: the orders database's backup CronJob,
// run now on the node, writes a dump to its volume; an order deleted after
// that comes back with `shopctl db restore`, run as a user runs it; the
// storefront keeps serving while orders is down for the restore, and the
// Shop is Ready again afterwards.
func backupRestoresIntoTheRunningShop(t *testing.T, ctx context.Context, s *liveShop) {
	ctx, cancel := context.WithTimeout(ctx, 6*time.Minute)
	defer cancel()
	bin := shopctlBinary(t)
	shop, ns := s.shop, s.ns
	db := shop.Name + "-orders-db"
	order := psql(t, ctx, ns, db, "orders", "select id from orders where status = 'confirmed' order by created_at desc limit 1")
	if order == "" {
		t.Fatal("no confirmed order in the orders database to lose and restore")
	}

	began := time.Now()
	cronJob := shop.Name + "-orders-db-backup"
	runCronJobNow(t, ctx, ns, cronJob)
	dump := backupDump(t, ctx, ns, cronJob+"-now")
	t.Logf("the backup Job wrote %s %s after it was created", dump, time.Since(began).Round(100*time.Millisecond))

	psql(t, ctx, ns, db, "orders", fmt.Sprintf("delete from orders where id = '%s'", order))
	if n := psql(t, ctx, ns, db, "orders", fmt.Sprintf("select count(*) from orders where id = '%s'", order)); n != "0" {
		t.Fatalf("order %s still there after delete: %s", order, n)
	}

	// The storefront (catalog behind it) keeps answering during the restore.
	served, failed := 0, 0
	var firstFailure string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if _, err := httpBody(ctx, s.frontend+"/"); err != nil {
				failed++
				if firstFailure == "" {
					firstFailure = err.Error()
				}
			} else {
				served++
			}
		}
	})
	restoring := time.Now()
	out, err := exec.CommandContext(ctx, bin, "db", "restore", shop.Name, "orders", "--from", dump,
		"-n", ns, "--kubeconfig", cluster.KubeconfigPath(), "--timeout", "4m").CombinedOutput()
	restoreTook := time.Since(restoring)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("shopctl db restore: %v\n%s", err, out)
	}
	t.Logf("shopctl db restore took %s:\n%s", restoreTook.Round(100*time.Millisecond), out)

	if got := psql(t, ctx, ns, db, "orders", fmt.Sprintf("select status from orders where id = '%s'", order)); got != "confirmed" {
		t.Errorf("order %s after the restore: status %q, want it back, confirmed", order, got)
	}
	if failed > 0 || served == 0 {
		t.Errorf("the storefront during the restore: %d answered, %d failed (first: %s)", served, failed, firstFailure)
	}
	if err := localstack.WaitShop(ctx, k8s, cs, shop, 3*time.Minute, t.Logf); err != nil {
		t.Fatalf("after the restore: %v", err)
	}
	t.Logf("the storefront answered %d of %d requests during the restore; the Shop Ready again %s after the restore began",
		served, served+failed, time.Since(restoring).Round(100*time.Millisecond))
}

// backupDump waits for the backup Job to succeed and returns the dump file
// its log names.
func backupDump(t *testing.T, ctx context.Context, ns, job string) string {
	t.Helper()
	var j *batchv1.Job
	err := wait.PollUntilContextTimeout(ctx, time.Second, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		var err error
		j, err = cs.BatchV1().Jobs(ns).Get(ctx, job, metav1.GetOptions{})
		return err == nil && (j.Status.Succeeded > 0 || j.Status.Failed > 0), nil
	})
	pods, perr := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "job-name=" + job})
	if perr != nil || len(pods.Items) == 0 {
		t.Fatalf("the backup Job %s has no pod (%v; waiting: %v)", job, perr, err)
	}
	pod := &pods.Items[len(pods.Items)-1]
	if err != nil || j.Status.Succeeded == 0 {
		t.Fatalf("the backup Job %s did not succeed (%v): %s\n%s", job, err, podreason.Of(pod), podLog(t, ctx, ns, pod.Name, ""))
	}
	log := podLog(t, ctx, ns, pod.Name, "")
	m := backedUpLine.FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("the backup Job's log names no dump:\n%s", log)
	}
	return m[1]
}
