package databases_test

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/pgtest"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
)

// TestInitScriptOnRealPostgres runs the rendered init script the way the
// postgres image does on first start, then proves the service's role can log
// in with its password, owns its database, and is no superuser.
func TestInitScriptOnRealPostgres(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg := pgtest.Start(t, "superuser-password", nil)
	// The image runs the script over the socket, as the superuser (trusted).
	pgEnv := append(os.Environ(), "PGHOST="+pg.Dir, "PGPORT="+strconv.Itoa(pg.Port), "PGCONNECT_TIMEOUT=2")

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
