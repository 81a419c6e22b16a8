package backups_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/shopplatform/shop-operator/internal/builders/backups"
	"github.com/shopplatform/shop-operator/internal/pgtest"
)

// busyboxApplets are the tools the backup script calls besides pg_dump.
var busyboxApplets = []string{"sh", "date", "cut", "awk", "mv", "rm", "wc", "tr", "ls", "grep", "sort", "tail", "timeout", "wget"}

// TestBackupWithBusybox runs the CronJob's script with busybox's shell and
// tools only, as in the postgres alpine image (GNU tools are kept off PATH),
// so options only GNU wget, date or tail know would fail here.
func TestBackupWithBusybox(t *testing.T) {
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Skip("busybox not found (apt-get install busybox)")
	}
	applets := t.TempDir()
	for _, a := range busyboxApplets {
		if err := os.Symlink(busybox, filepath.Join(applets, a)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg := pgtest.Start(t, superuserPassword, nil)
	pg.MustSQL(t, ctx, "postgres", "CREATE DATABASE orders")
	pg.MustSQL(t, ctx, "orders", "CREATE TABLE orders (id int PRIMARY KEY); INSERT INTO orders SELECT generate_series(1, 1000)")

	pushes := make(chan []byte, 1)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		pushes <- b
	}))
	defer collector.Close()

	dir := t.TempDir()
	for _, f := range []string{"orders-20200101T000000Z.dump", "orders-20210101T000000Z.dump"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("old"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	argv := backups.Command()
	if argv[0] != "/bin/sh" {
		t.Fatalf("the CronJob runs %s, not /bin/sh", argv[0])
	}
	cmd := exec.CommandContext(ctx, busybox, append([]string{"sh"}, argv[1:]...)...)
	cmd.Env = append(pg.Env("orders"), "PATH="+applets+":"+pg.Bin,
		backups.EnvBackupDir+"="+dir, backups.EnvRetain+"=2", backups.EnvMetricsURL+"="+collector.URL+"/v1/metrics",
		backups.EnvShop+"=demo", backups.EnvNamespace+"=shop")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("backup under busybox: %v\n%s", err, out)
	}
	t.Logf("%s", out)
	files := listDir(t, dir)
	if len(files) != 2 || files[0] != "orders-20210101T000000Z.dump" {
		t.Errorf("after the backup with retain 2: %v, want orders-2021 and the new dump", files)
	}
	info, err := os.Stat(filepath.Join(dir, files[len(files)-1]))
	if err != nil {
		t.Fatal(err)
	}
	checkMetrics(t, pushes, info.Size())
}
