package backups_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"

	colmetricpb "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/shopplatform/shop-operator/internal/builders/backups"
	"github.com/shopplatform/shop-operator/internal/pgtest"
	"github.com/shopplatform/shop-operator/internal/render"
)

// tables are shaped like the orders service's, owned by the service's role
// as in the cluster.
const tables = `
SET ROLE orders;
CREATE TABLE orders (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id text NOT NULL,
  status text NOT NULL CHECK (status IN ('pending', 'paid', 'failed')),
  total_cents bigint NOT NULL,
  currency char(3) NOT NULL DEFAULT 'EUR',
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE order_items (
  order_id uuid NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
  sku text NOT NULL,
  quantity int NOT NULL CHECK (quantity > 0),
  price_cents bigint NOT NULL,
  PRIMARY KEY (order_id, sku)
);
CREATE INDEX orders_user ON orders (user_id, created_at);
`

// fill writes n orders with two items each.
func fill(n int) string {
	return fmt.Sprintf(`
INSERT INTO orders (user_id, status, total_cents, created_at)
SELECT 'user-' || (i %% 97), (ARRAY['pending','paid','failed'])[1 + i %% 3], 100 * i + 99,
       timestamptz '2026-01-01 00:00:00+00' + i * interval '1 minute'
FROM generate_series(1, %d) AS i;
INSERT INTO order_items (order_id, sku, quantity, price_cents)
SELECT id, sku, 1 + (total_cents %% 5), total_cents / 2 FROM orders, (VALUES ('SKU-MUG'), ('SKU-TEE')) AS s(sku);
`, n)
}

// snapshot is every row of both tables in a stable order, plus the owners.
const snapshot = `
SELECT string_agg(format('%s|%s|%s|%s|%s|%s', id, user_id, status, total_cents, currency, created_at), E'\n' ORDER BY id) FROM orders;
SELECT string_agg(format('%s|%s|%s|%s', order_id, sku, quantity, price_cents), E'\n' ORDER BY order_id, sku) FROM order_items;
SELECT string_agg(tablename || ':' || tableowner, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public';
`

// TestBackupRestore writes orders, backs them up with exactly the CronJob's
// command line, destroys the data, restores with exactly the restore Job's
// pg_restore command line, and compares row for row. The database runs as
// its StatefulSet runs it (TLS, our pg_hba.conf) and both jobs connect with
// the environment their pods are rendered with (verify-full against the
// mounted CA): the server's log must show them connected over TLS. The
// backup's metrics are pushed to a loopback OTLP/HTTP endpoint and decoded
// as the collector decodes them.
func TestBackupRestore(t *testing.T) {
	rows := 20000
	if s := os.Getenv("BACKUP_E2E_ROWS"); s != "" {
		rows, _ = strconv.Atoi(s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	pg, in := startTLSDatabase(t)
	pg.MustSQL(t, ctx, "postgres", "CREATE ROLE orders LOGIN NOSUPERUSER")
	pg.MustSQL(t, ctx, "postgres", "CREATE DATABASE orders OWNER orders")
	pg.MustSQL(t, ctx, "orders", tables+fill(rows))
	before := pg.MustSQL(t, ctx, "orders", snapshot)

	pushes := make(chan []byte, 4)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path != "/v1/metrics" || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "want JSON on /v1/metrics", http.StatusBadRequest)
			return
		}
		pushes <- b
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("{}"))
	}))
	defer collector.Close()

	dir := t.TempDir()
	// Older dumps: with retain 2 the oldest goes, the other database's and
	// foreign files stay.
	for _, f := range []string{"orders-20200101T000000Z.dump", "orders-20210101T000000Z.dump", "auth-20200101T000000Z.dump", "notes.txt"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("old"), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	objs, err := backups.Build(in)
	if err != nil {
		t.Fatal(err)
	}
	var cronJob *batchv1.CronJob
	for _, o := range objs {
		if c, ok := o.(*batchv1.CronJob); ok && c.Name == backups.CronJobName(in, render.Orders) {
			cronJob = c
		}
	}
	if cronJob == nil {
		t.Fatal("no backup CronJob for the orders database")
	}
	backupEnv := renderedEnv(t, in, cronJob.Spec.JobTemplate.Spec.Template.Spec, "pg-dump", pg)

	start := time.Now()
	out := runBackup(t, ctx, backupEnv, dir, collector.URL+"/v1/metrics", "2")
	backupTime := time.Since(start)
	t.Logf("backup: %s", out)

	dumps := listDir(t, dir)
	want := map[string]bool{"orders-20210101T000000Z.dump": true, "auth-20200101T000000Z.dump": true, "notes.txt": true}
	var dump string
	for _, f := range dumps {
		if regexp.MustCompile(`^orders-\d{8}T\d{6}Z\.dump$`).MatchString(f) && !want[f] {
			dump = f
		} else if !want[f] {
			t.Errorf("unexpected file %s in the backups volume", f)
		}
	}
	if dump == "" || len(dumps) != 4 {
		t.Fatalf("backups volume holds %v; want the new dump, orders-2021, auth-2020 and notes.txt", dumps)
	}
	info, err := os.Stat(filepath.Join(dir, dump))
	if err != nil {
		t.Fatal(err)
	}
	checkMetrics(t, pushes, info.Size())

	// Disaster: one table gone, rows deleted and changed in the other.
	pg.MustSQL(t, ctx, "orders", `DROP TABLE order_items; DELETE FROM orders WHERE status = 'failed'; UPDATE orders SET total_cents = 0`)
	if after, _ := pg.PSQL(ctx, "orders", snapshot); after == before {
		t.Fatal("the disaster changed nothing")
	}

	job, err := backups.RestoreJob(in, render.Orders, dump)
	if err != nil {
		t.Fatal(err)
	}
	restorePod := job.Spec.Template.Spec
	args := slices.Clone(container(t, restorePod, "pg-restore").Command)
	args[len(args)-1] = strings.Replace(args[len(args)-1], backups.BackupDir, dir, 1)
	start = time.Now()
	restore := exec.CommandContext(ctx, args[0], args[1:]...)
	restore.Env = renderedEnv(t, in, restorePod, "pg-restore", pg)
	if out, err := restore.CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
	restoreTime := time.Since(start)
	checkTLS(t, pg, "pg_dump")
	checkTLS(t, pg, "pg_restore")

	if after := pg.MustSQL(t, ctx, "orders", snapshot); after != before {
		t.Errorf("restored data differs from the backed-up data (%d vs %d bytes)", len(after), len(before))
	}
	t.Logf("FIGURES rows=%d items=%d dump=%d bytes backup=%s restore=%s",
		rows, 2*rows, info.Size(), backupTime.Round(time.Millisecond), restoreTime.Round(time.Millisecond))
}

// TestBackupFailure: a backup that cannot connect fails, leaves no dump (not
// even a partial one) and pushes no metrics, so ShopBackupMissing can fire.
func TestBackupFailure(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg := pgtest.Start(t, superuserPassword, nil)
	pg.Password = "wrong"
	pushed := false
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { pushed = true }))
	defer collector.Close()
	dir := t.TempDir()
	cmd := backupCmd(ctx, pg.Env("orders"), dir, collector.URL+"/v1/metrics", "3")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("the backup succeeded with a wrong password:\n%s", out)
	}
	if files := listDir(t, dir); len(files) != 0 {
		t.Errorf("a failed backup left %v", files)
	}
	if pushed {
		t.Error("a failed backup pushed metrics")
	}
}

// backupCmd runs the CronJob's command with env (a connection to the
// database) and the test's own backup directory, retention, metrics URL,
// Shop and namespace.
func backupCmd(ctx context.Context, env []string, dir, metricsURL, retain string) *exec.Cmd {
	argv := backups.Command()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(slices.Clone(env),
		backups.EnvBackupDir+"="+dir, backups.EnvRetain+"="+retain, backups.EnvMetricsURL+"="+metricsURL,
		backups.EnvShop+"=demo", backups.EnvNamespace+"=shop")
	return cmd
}

func runBackup(t *testing.T, ctx context.Context, env []string, dir, metricsURL, retain string) string {
	t.Helper()
	out, err := backupCmd(ctx, env, dir, metricsURL, retain).CombinedOutput()
	if err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	return string(out)
}

func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// checkMetrics decodes the push as OTLP/JSON and checks the three gauges.
func checkMetrics(t *testing.T, pushes chan []byte, size int64) {
	t.Helper()
	var body []byte
	select {
	case body = <-pushes:
	default:
		t.Fatal("the backup pushed no metrics")
	}
	var req colmetricpb.ExportMetricsServiceRequest
	if err := protojson.Unmarshal(body, &req); err != nil {
		t.Fatalf("not OTLP/JSON: %v\n%s", err, body)
	}
	if len(req.ResourceMetrics) != 1 || len(req.ResourceMetrics[0].ScopeMetrics) != 1 {
		t.Fatalf("want one resource and scope: %s", body)
	}
	res := map[string]string{}
	for _, a := range req.ResourceMetrics[0].Resource.Attributes {
		res[a.Key] = a.Value.GetStringValue()
	}
	if res["service.name"] != "db-backup" || res["shop.name"] != "demo" || res["k8s.namespace.name"] != "shop" {
		t.Errorf("resource attributes %v", res)
	}
	got := map[string]float64{}
	for _, m := range req.ResourceMetrics[0].ScopeMetrics[0].Metrics {
		dps := m.GetGauge().GetDataPoints()
		if len(dps) != 1 || len(dps[0].Attributes) != 1 || dps[0].Attributes[0].Key != "database" || dps[0].Attributes[0].Value.GetStringValue() != "orders" {
			t.Errorf("%s: want one gauge point with database=orders, got %v", m.Name, dps)
			continue
		}
		got[m.Name] = dps[0].GetAsDouble()
		if ts := time.Unix(0, int64(dps[0].TimeUnixNano)); time.Since(ts) > time.Minute || time.Until(ts) > time.Minute {
			t.Errorf("%s: timestamp %v is not now", m.Name, ts)
		}
	}
	if last := got[backups.MetricLastSuccess]; time.Since(time.Unix(int64(last), 0)) > time.Minute {
		t.Errorf("%s = %v, not now", backups.MetricLastSuccess, last)
	}
	if got[backups.MetricSize] != float64(size) {
		t.Errorf("%s = %v, want the dump's size %d", backups.MetricSize, got[backups.MetricSize], size)
	}
	if d, ok := got[backups.MetricDuration]; !ok || d < 0 {
		t.Errorf("%s = %v, %v", backups.MetricDuration, d, ok)
	}
}
