package databases_test

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/builders/databases"
	"github.com/shopplatform/shop-operator/internal/pgtest"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
	"github.com/shopplatform/shop-operator/internal/secrets"
)

// TestTLSOnRealPostgres starts a real Postgres the way the StatefulSet does:
// the operator's own generated certificate, the rendered args and
// pg_hba.conf, and the key file as the kubelet writes it (owned by root,
// group = the pod's fsGroup, mode = the volume's defaultMode). Postgres must
// accept that key and refuse a world-readable one; a client with
// sslmode=verify-full and the Secret's ca.crt must get an encrypted session
// for every name of the Service (and be refused for a name that is not the
// database's); a plain connection from outside the pod must be refused,
// one from inside the pod (the exporter) admitted.
func TestTLSOnRealPostgres(t *testing.T) {
	bin := pgtest.Bin()
	if _, err := os.Stat(filepath.Join(bin, "postgres")); err != nil {
		t.Skipf("no Postgres server at %s (apt-get install postgresql-15, or set PGTEST_BINDIR)", bin)
	}
	if os.Geteuid() != 0 {
		t.Skip("writing the key as the kubelet does (owned by root) needs root")
	}
	pgUser, err := user.Lookup("postgres")
	if err != nil {
		t.Skipf("needs the postgres user: %v", err)
	}
	uid, _ := strconv.Atoi(pgUser.Uid)
	gid, _ := strconv.Atoi(pgUser.Gid)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Render with real generated values, as the controller does.
	in := rendertest.Input(shopv1.ShopSpec{Environment: shopv1.Production})
	generated, err := secrets.Fill(secrets.For(in), nil)
	if err != nil {
		t.Fatal(err)
	}
	in.Generated = generated
	objs := build(t, in)
	secret := find(objs, "Secret", "demo-orders-db-tls")
	sts := find(objs, "StatefulSet", "demo-orders-db")
	cm := find(objs, "ConfigMap", "demo-orders-db-init")
	if secret == nil || sts == nil || cm == nil {
		t.Fatal("no TLS Secret, StatefulSet or init ConfigMap for the orders database")
	}
	if secret.Object["type"] != "kubernetes.io/tls" {
		t.Errorf("Secret type %v, want kubernetes.io/tls", secret.Object["type"])
	}
	data, _, _ := unstructured.NestedStringMap(secret.Object, "data")
	args, volume := postgresArgsAndTLSVolume(t, sts)

	// Not t.TempDir: its parent is private to root, and Postgres runs as postgres.
	dir, err := os.MkdirTemp("", "shop-pgtls-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	// The Secret volume, written as the kubelet does with fsGroup.
	tlsDir := filepath.Join(dir, "tls")
	if err := os.Mkdir(tlsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	mode, _, _ := unstructured.NestedInt64(volume, "secret", "defaultMode")
	items, _, _ := unstructured.NestedSlice(volume, "secret", "items")
	for _, it := range items {
		key := it.(map[string]any)["key"].(string)
		f := filepath.Join(tlsDir, it.(map[string]any)["path"].(string))
		if err := os.WriteFile(f, []byte(decode(t, data[key])), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(f, 0, gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(f, os.FileMode(mode)); err != nil {
			t.Fatal(err)
		}
	}
	if len(items) != 2 || mode != 0o640 {
		t.Errorf("TLS volume items %v mode %o: want the certificate and key only, mode 0640", items, mode)
	}
	caFile := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(caFile, []byte(decode(t, data[secrets.CACertKey])), 0o644); err != nil {
		t.Fatal(err)
	}
	files, _, _ := unstructured.NestedStringMap(cm.Object, "data")
	hba := filepath.Join(dir, "pg_hba.conf")
	if err := os.WriteFile(hba, []byte(files["pg_hba.conf"]), 0o644); err != nil {
		t.Fatal(err)
	}
	for i, a := range args {
		a = strings.ReplaceAll(a, databases.TLSDir, tlsDir)
		args[i] = strings.ReplaceAll(a, databases.HBADir+"/pg_hba.conf", hba)
	}
	if !slices.Contains(args, "hba_file="+hba) {
		t.Fatalf("args %v do not use the rendered pg_hba.conf", args)
	}

	asPostgres := func(name string, args ...string) *exec.Cmd {
		return exec.CommandContext(ctx, "runuser", append([]string{"-u", "postgres", "--", filepath.Join(bin, name)}, args...)...)
	}
	pgData := filepath.Join(dir, "data")
	const password = "superuser-secret"
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(password+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := asPostgres("initdb", "-D", pgData, "-U", "postgres", "--pwfile", pwfile, "--no-sync", "-E", "UTF8", "--locale=C").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	port := freePort(t)
	start := func() (*exec.Cmd, string) {
		t.Helper()
		if args[0] != "postgres" {
			t.Fatalf("args %v do not start postgres", args)
		}
		server := asPostgres("postgres", append([]string{"-D", pgData, "-p", strconv.Itoa(port), "-h", "127.0.0.1", "-k", dir, "-c", "fsync=off"}, args[1:]...)...)
		server.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		log := filepath.Join(dir, "postgres.log")
		logf, err := os.Create(log)
		if err != nil {
			t.Fatal(err)
		}
		defer logf.Close()
		server.Stdout, server.Stderr = logf, logf
		if err := server.Start(); err != nil {
			t.Fatal(err)
		}
		return server, log
	}

	// A key others may read: Postgres refuses to start.
	key := filepath.Join(tlsDir, secrets.TLSKeyKey)
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	server, log := start()
	if err := server.Wait(); err == nil {
		t.Error("Postgres started with a world-readable key")
	}
	if b, _ := os.ReadFile(log); !strings.Contains(string(b), "group or world access") {
		t.Errorf("Postgres did not refuse the key for its mode:\n%s", b)
	}

	// The key as the kubelet writes it.
	if err := os.Chmod(key, os.FileMode(mode)); err != nil {
		t.Fatal(err)
	}
	server, log = start()
	defer func() {
		_ = syscall.Kill(-server.Process.Pid, syscall.SIGTERM)
		_ = server.Wait()
	}()
	psql := func(host, sql string) (string, error) {
		conn := "host=" + host + " hostaddr=127.0.0.1 port=" + strconv.Itoa(port) +
			" user=postgres dbname=postgres connect_timeout=2 sslmode=verify-full sslrootcert=" + caFile
		cmd := exec.CommandContext(ctx, "psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-d", conn, "-c", sql)
		cmd.Env = append(os.Environ(), "PGPASSWORD="+password)
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	const sslInUse = "select ssl from pg_stat_ssl where pid = pg_backend_pid()"
	ready := false
	for range 150 { // at most about 30 s
		if _, err := psql(in.DatabaseName(render.Orders), "select 1"); err == nil {
			ready = true
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !ready {
		b, _ := os.ReadFile(log)
		t.Fatalf("Postgres did not accept a verify-full connection:\n%s", b)
	}
	for _, host := range secrets.DatabaseHosts(in, render.Orders) {
		if got, err := psql(host, sslInUse); err != nil || got != "t" {
			t.Errorf("%s: ssl = %q (%v), want t", host, got, err)
		}
	}
	if out, err := psql(in.DatabaseName(render.Catalog), "select 1"); err == nil || !strings.Contains(out, "does not match host name") {
		t.Errorf("verify-full accepted the orders certificate for the catalog database: %v\n%s", err, out)
	}

	// Without TLS: refused from another address (127.0.0.2 stands for a pod
	// elsewhere), admitted from 127.0.0.1 as the exporter in the pod is.
	if kind, msg := plainStartup(t, "127.0.0.2", port); kind != 'E' || !strings.Contains(msg, "no encryption") {
		t.Errorf("a plain connection from the network got %q %q, want an error: no pg_hba.conf entry ..., no encryption", kind, msg)
	}
	if kind, msg := plainStartup(t, "127.0.0.1", port); kind != 'R' {
		t.Errorf("a plain connection from inside the pod got %q %q, want an authentication request", kind, msg)
	}
	// The readiness probe exactly as rendered (it sends no password).
	probe := readinessProbe(t, sts)
	for i, a := range probe {
		if a == "5432" {
			probe[i] = strconv.Itoa(port)
		}
	}
	if out, err := exec.CommandContext(ctx, filepath.Join(bin, probe[0]), probe[1:]...).CombinedOutput(); err != nil {
		t.Errorf("readiness probe %v fails under pg_hba.conf: %v\n%s", probe, err, out)
	}
}

func readinessProbe(t *testing.T, sts *unstructured.Unstructured) []string {
	t.Helper()
	cs, _, _ := unstructured.NestedSlice(sts.Object, "spec", "template", "spec", "containers")
	for _, c := range cs {
		if c.(map[string]any)["name"] == "postgres" {
			cmd, _, _ := unstructured.NestedStringSlice(c.(map[string]any), "readinessProbe", "exec", "command")
			return cmd
		}
	}
	t.Fatal("no postgres readiness probe")
	return nil
}

// plainStartup opens a connection from local without asking for TLS, sends
// a protocol 3.0 startup message for user and database postgres, and returns
// the first reply's type ('R' authentication, 'E' error) and text.
func plainStartup(t *testing.T, local string, port int) (byte, string) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	body := append([]byte{0, 3, 0, 0}, "user\x00postgres\x00database\x00postgres\x00\x00"...)
	msg := binary.BigEndian.AppendUint32(nil, uint32(4+len(body)))
	if _, err := c.Write(append(msg, body...)); err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 5)
	if _, err := io.ReadFull(c, head); err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, min(binary.BigEndian.Uint32(head[1:])-4, 4096))
	if _, err := io.ReadFull(c, payload); err != nil {
		t.Fatal(err)
	}
	return head[0], strings.ReplaceAll(string(payload), "\x00", " ")
}

// postgresArgsAndTLSVolume returns the postgres container's args and the pod's TLS volume.
func postgresArgsAndTLSVolume(t *testing.T, sts *unstructured.Unstructured) ([]string, map[string]any) {
	t.Helper()
	var args []string
	cs, _, _ := unstructured.NestedSlice(sts.Object, "spec", "template", "spec", "containers")
	for _, c := range cs {
		if c.(map[string]any)["name"] == "postgres" {
			args, _, _ = unstructured.NestedStringSlice(c.(map[string]any), "args")
		}
	}
	vols, _, _ := unstructured.NestedSlice(sts.Object, "spec", "template", "spec", "volumes")
	for _, v := range vols {
		if v.(map[string]any)["name"] == "tls" {
			return args, v.(map[string]any)
		}
	}
	t.Fatal("no tls volume")
	return nil, nil
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
