package databases_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
)

// pgBin holds Debian's Postgres server binaries; PGTEST_BINDIR overrides it.
func pgBin() string {
	if d := os.Getenv("PGTEST_BINDIR"); d != "" {
		return d
	}
	return "/usr/lib/postgresql/15/bin"
}

// TestInitScriptOnRealPostgres runs the rendered init script the way the
// postgres image does on first start, then proves the service's role can log
// in with its password, owns its database, and is no superuser.
func TestInitScriptOnRealPostgres(t *testing.T) {
	bin := pgBin()
	if _, err := os.Stat(filepath.Join(bin, "postgres")); err != nil {
		t.Skipf("no Postgres server at %s (apt-get install postgresql-15, or set PGTEST_BINDIR)", bin)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Not t.TempDir: its parent is private to root, and Postgres runs as postgres.
	dir, err := os.MkdirTemp("", "shop-initdb-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	asPostgres := func(name string, args ...string) *exec.Cmd {
		path := filepath.Join(bin, name)
		if os.Geteuid() != 0 {
			return exec.CommandContext(ctx, path, args...)
		}
		return exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	}
	if os.Geteuid() == 0 { // Postgres refuses to run as root
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skipf("running as root needs the postgres user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	data := filepath.Join(dir, "data")
	if out, err := asPostgres("initdb", "-D", data, "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256",
		"--no-sync", "-E", "UTF8", "--locale=C").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	port := freePort(t)
	server := asPostgres("postgres", "-D", data, "-p", strconv.Itoa(port), "-h", "127.0.0.1", "-k", dir, "-c", "fsync=off")
	server.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logf, err := os.Create(filepath.Join(t.TempDir(), "postgres.log"))
	defer logf.Close()
	if err != nil {
		t.Fatal(err)
	}
	server.Stdout, server.Stderr = logf, logf
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = syscall.Kill(-server.Process.Pid, syscall.SIGTERM)
		_ = server.Wait()
	}()
	pgEnv := append(os.Environ(), "PGHOST="+dir, "PGPORT="+strconv.Itoa(port), "PGCONNECT_TIMEOUT=2")
	ready := false
	for range 150 { // at most about 30 s
		isReady := exec.CommandContext(ctx, filepath.Join(bin, "pg_isready"), "-q")
		isReady.Env = pgEnv
		if isReady.Run() == nil {
			ready = true
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !ready {
		b, _ := os.ReadFile(logf.Name())
		t.Fatalf("Postgres did not start:\n%s", b)
	}

	// The script exactly as rendered, with the env the StatefulSet gives it.
	in := rendertest.Input(shopv1.ShopSpec{})
	cm := find(build(t, in), "ConfigMap", "demo-orders-db-init")
	files, _, _ := unstructured.NestedStringMap(cm.Object, "data")
	scripts := map[string]string{}
	for name, content := range files {
		if strings.HasSuffix(name, ".sh") { // the image runs *.sh; pg_hba.conf is tested in tls_test.go
			scripts[name] = content
		}
	}
	if len(scripts) != 1 {
		t.Fatalf("init ConfigMap holds %d scripts, want 1", len(scripts))
	}
	password := `it's a "quoted" pa$$word`
	for name, script := range scripts {
		run := exec.CommandContext(ctx, "sh", "-c", script)
		run.Env = append(pgEnv, "POSTGRES_USER=postgres", "SERVICE_ROLE=orders", "SERVICE_DATABASE=orders", "SERVICE_PASSWORD="+password)
		if out, err := run.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
	}

	// Over TCP with the password, as the orders service connects.
	psql := func(pass, sql string) (string, error) {
		c := exec.CommandContext(ctx, "psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-U", "orders", "-d", "orders", "-c", sql)
		c.Env = append(pgEnv, "PGPASSWORD="+pass)
		out, err := c.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	got, err := psql(password, "select rolsuper, rolcreaterole, rolcreatedb from pg_roles where rolname = current_user")
	if err != nil {
		t.Fatalf("the service role cannot log in: %v\n%s", err, got)
	}
	if got != "f|f|f" {
		t.Errorf("role attributes superuser|createrole|createdb = %s, want f|f|f", got)
	}
	if got, err := psql(password, "select pg_get_userbyid(datdba) from pg_database where datname = current_database()"); err != nil || got != "orders" {
		t.Errorf("database owner = %q (%v), want orders", got, err)
	}
	if out, err := psql(password, "create table migrations_probe (id int primary key); drop table migrations_probe"); err != nil {
		t.Errorf("the service cannot run its migrations: %v\n%s", err, out)
	}
	if _, err := psql("wrong", "select 1"); err == nil {
		t.Error("a wrong password was accepted")
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
