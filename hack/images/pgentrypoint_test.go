package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const (
	debianPGBin       = "/usr/lib/postgresql/15/bin"
	superuserPassword = `super "secret" pa$$`
	servicePassword   = `it's the service's`
)

// requireFile fails the test (it does not skip: make test-images installs
// what it needs) when a tool is missing, naming its Debian package.
func requireFile(t *testing.T, p, pkg string) {
	t.Helper()
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s is missing: install the Debian package %s (make test-images installs it)", p, pkg)
	}
}

var builtPrograms sync.Map // package -> path

// buildProgram builds one of this module's commands (static, as the images
// hold them) into a directory every user may read.
func buildProgram(t *testing.T, pkg string) string {
	t.Helper()
	if p, ok := builtPrograms.Load(pkg); ok {
		return p.(string)
	}
	dir, err := os.MkdirTemp("", "images-prog-")
	if err != nil {
		t.Fatal(err)
	}
	cleanups = append(cleanups, func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, filepath.Base(pkg))
	if err := goBuild(Spec{Module: "hack/images", Package: pkg}, Options{Root: testOpts.Root, Arch: runtime.GOARCH}, out); err != nil {
		t.Fatal(err)
	}
	builtPrograms.Store(pkg, out)
	return out
}

// pgRun is one data directory for the entrypoint, laid out as the
// StatefulSet mounts it, under a temp dir the postgres user owns.
type pgRun struct {
	dir, pgdata string
	uid, gid    int // the postgres user's when the test runs as root, else -1
	port        int
	role, db    string // SERVICE_ROLE and SERVICE_DATABASE
	entrypoint  string
	args, env   []string
}

// newPGRun prepares a run of the entrypoint with the arguments and the
// environment of the StatefulSet the operator renders (paths moved under a
// temp dir), the rendered init script in the init directory, plus a free
// port, a socket directory and fsync off.
func newPGRun(t *testing.T) *pgRun {
	t.Helper()
	requireFile(t, debianPGBin+"/postgres", "postgresql-15")
	requireFile(t, debianPGBin+"/psql", "postgresql-client-15")
	r := &pgRun{uid: -1, gid: -1, entrypoint: buildProgram(t, "./cmd/pg-entrypoint")}
	var err error
	// Not t.TempDir: its parent is private to root, and Postgres runs as postgres.
	if r.dir, err = os.MkdirTemp("", "pg-entrypoint-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(r.dir) })
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root needs the postgres user (Debian package postgresql-15): %v", err)
		}
		r.uid, _ = strconv.Atoi(u.Uid)
		r.gid, _ = strconv.Atoi(u.Gid)
	}
	_, c, cm := postgresStatefulSet(t)
	move := func(s string) string {
		s = strings.ReplaceAll(s, "/etc/postgresql/", r.dir+"/etc/postgresql/")
		return strings.ReplaceAll(s, "/var/lib/postgresql/data", r.dir+"/data")
	}
	for _, a := range c.Args {
		r.args = append(r.args, move(a))
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	r.args = append(r.args, "-c", "port="+strconv.Itoa(r.port), "-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+r.dir+"/run", "-c", "fsync=off")
	secrets := map[string]string{"POSTGRES_PASSWORD": superuserPassword, "SERVICE_PASSWORD": servicePassword}
	for _, e := range c.Env {
		v := move(e.Value)
		if e.ValueFrom != nil {
			s, ok := secrets[e.Name]
			if !ok {
				t.Fatalf("the StatefulSet sets %s from %v: give the test a value for it", e.Name, e.ValueFrom)
			}
			v = s
		}
		switch e.Name {
		case "PGDATA":
			r.pgdata = v
		case "SERVICE_ROLE":
			r.role = v
		case "SERVICE_DATABASE":
			r.db = v
		}
		r.env = append(r.env, e.Name+"="+v)
	}
	if r.pgdata == "" || r.role == "" || r.db == "" {
		t.Fatalf("the StatefulSet sets no PGDATA, SERVICE_ROLE or SERVICE_DATABASE: %v", r.env)
	}
	r.env = append(r.env, "PATH="+debianPGBin+":/usr/bin:/bin", "LANG=C.UTF-8", "TMPDIR="+r.dir+"/tmp", "HOME="+r.dir,
		"PG_ENTRYPOINT_INITDB_DIR="+r.dir+"/initdb.d")

	for _, d := range []string{"initdb.d", "run", "tmp", "data", "etc/postgresql/tls", "etc/postgresql/hba"} {
		if err := os.MkdirAll(filepath.Join(r.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cert, key := selfSigned(t)
	r.write(t, "etc/postgresql/tls/tls.crt", cert, 0o644)
	r.write(t, "etc/postgresql/tls/tls.key", key, 0o600)
	r.write(t, "etc/postgresql/hba/pg_hba.conf", cm.Data["pg_hba.conf"], 0o444)
	for name, content := range cm.Data {
		if strings.HasSuffix(name, ".sh") { // mounted with mode 0555
			r.write(t, "initdb.d/"+name, content, 0o555)
		}
	}
	for _, a := range r.args { // every file the arguments name exists
		if _, p, ok := strings.Cut(a, "="); ok && strings.HasPrefix(p, r.dir+"/etc/") {
			if _, err := os.Stat(p); err != nil {
				t.Fatalf("the StatefulSet passes %s: the test does not provide it", a)
			}
		}
	}
	return r
}

func (r *pgRun) write(t *testing.T, rel, content string, mode os.FileMode) {
	t.Helper()
	p := filepath.Join(r.dir, rel)
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	r.chown(t)
}

// chown gives the whole dir to the postgres user.
func (r *pgRun) chown(t *testing.T) {
	t.Helper()
	if r.uid < 0 {
		return
	}
	err := filepath.Walk(r.dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, r.uid, r.gid)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// selfSigned is a certificate and key for the server's TLS files.
func selfSigned(t *testing.T) (certPEM, keyPEM string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
}

// syncBuffer collects a process's output safely while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type pgProc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

// start runs the entrypoint with the StatefulSet's arguments, as the
// postgres user (or, with asRoot, as root: it must switch by itself).
func (r *pgRun) start(t *testing.T, asRoot bool, extraEnv ...string) *pgProc {
	t.Helper()
	cmd := exec.Command(r.entrypoint, r.args...)
	cmd.Env = append(append([]string(nil), r.env...), extraEnv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if r.uid >= 0 && !asRoot {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(r.uid), Gid: uint32(r.gid)}
	}
	p := &pgProc{cmd: cmd, out: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
		r.killTempServer()
		if t.Failed() {
			t.Logf("entrypoint output:\n%s", p.out)
		}
	})
	return p
}

// killTempServer kills a server left behind by a failed test.
func (r *pgRun) killTempServer() {
	if pid := r.postmasterPID(); pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// postmasterPID is the first line of postmaster.pid, or 0.
func (r *pgRun) postmasterPID() int {
	b, err := os.ReadFile(filepath.Join(r.pgdata, "postmaster.pid"))
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, _ := strconv.Atoi(first)
	return pid
}

// wait waits (bounded) for the process to exit and returns its exit code.
func (p *pgProc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("the entrypoint did not exit within %v:\n%s", timeout, p.out)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
	return 0
}

// psql runs SQL over TCP with a password, as a service connects.
func (r *pgRun) psql(ctx context.Context, user, password, db, sql string) (string, error) {
	c := exec.CommandContext(ctx, debianPGBin+"/psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", strconv.Itoa(r.port),
		"-U", user, "-d", db, "-c", sql)
	c.Env = append(os.Environ(), "PGPASSWORD="+password, "PGCONNECT_TIMEOUT=5")
	out, err := c.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// waitReady waits (bounded) until the superuser logs in over TCP.
func (r *pgRun) waitReady(t *testing.T, p *pgProc) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			t.Fatalf("the entrypoint exited (%v) before Postgres accepted connections:\n%s", p.err, p.out)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := r.psql(ctx, "postgres", superuserPassword, "postgres", "select 1")
		cancel()
		if err == nil {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("Postgres did not accept connections within 3 minutes:\n%s", p.out)
}

// stop sends SIGTERM to the process the entrypoint became and expects
// Postgres to shut down with status 0.
func (r *pgRun) stop(t *testing.T, p *pgProc) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, time.Minute); code != 0 {
		t.Fatalf("after SIGTERM Postgres exited with %d:\n%s", code, p.out)
	}
	if !strings.Contains(p.out.String(), "database system is shut down") {
		t.Errorf("no clean shutdown in the log:\n%s", p.out)
	}
}

func mustSQL(t *testing.T, r *pgRun, user, password, db, sql string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := r.psql(ctx, user, password, db, sql)
	if err != nil {
		t.Fatalf("%s as %s: %v\n%s", sql, user, err, out)
	}
	return out
}

// TestPGEntrypoint runs the Postgres image's entrypoint with Debian's
// postgresql-15 and the StatefulSet the operator renders (its arguments,
// environment, TLS and pg_hba.conf files, init script): the first start
// initialises with the password and runs the init files, the service role
// logs in over TCP with its password, SIGTERM stops Postgres (the
// entrypoint became Postgres), a second start keeps the data and skips the
// initialisation (as root, when the test runs as root: the entrypoint
// switches to the postgres user by itself).
func TestPGEntrypoint(t *testing.T) {
	t.Parallel()
	r := newPGRun(t)
	marker := filepath.Join(r.dir, "sourced")
	r.write(t, "initdb.d/20-seed.sql", "CREATE TABLE seeded (n int);\nINSERT INTO seeded VALUES (42);\n", 0o444)
	r.write(t, "initdb.d/30-not-executable.sh", `echo "$POSTGRES_USER via $PGHOST" > "$MARKER_FILE"`+"\n", 0o444)
	r.write(t, "initdb.d/40-notes.txt", "not an init file\n", 0o444)

	p := r.start(t, false, "MARKER_FILE="+marker)
	r.waitReady(t, p)
	log := p.out.String()

	// The service's role, created by the operator's init script, over TCP.
	if got := mustSQL(t, r, r.role, servicePassword, r.db,
		"select current_user, rolsuper, rolcreatedb, pg_get_userbyid(d.datdba) from pg_roles, pg_database d "+
			"where rolname = current_user and d.datname = current_database()"); got != r.role+"|f|f|"+r.role {
		t.Errorf("the service role: %q, want %s|f|f|%s (no superuser, owns its database)", got, r.role, r.role)
	}
	if _, err := r.psql(context.Background(), r.role, "wrong", r.db, "select 1"); err == nil {
		t.Error("a wrong password was accepted")
	}
	if got := mustSQL(t, r, "postgres", superuserPassword, "postgres", "select n from seeded"); got != "42" {
		t.Errorf("20-seed.sql: seeded = %q", got)
	}
	if got := mustSQL(t, r, "postgres", superuserPassword, r.db,
		"select pg_encoding_to_char(encoding), datcollate from pg_database where datname = current_database()"); got != "UTF8|C.UTF-8" {
		t.Errorf("encoding|collation = %q, want UTF8|C.UTF-8", got)
	}
	if got := mustSQL(t, r, "postgres", superuserPassword, "postgres", "show ssl"); got != "on" {
		t.Errorf("ssl = %q: the StatefulSet's -c arguments did not reach the server", got)
	}
	if b, err := os.ReadFile(marker); err != nil || strings.TrimSpace(string(b)) != "postgres via "+r.dir+"/run" {
		t.Errorf("30-not-executable.sh (run with sh): %q, %v", b, err)
	}
	if !strings.Contains(log, "ignoring "+r.dir+"/initdb.d/40-notes.txt") {
		t.Errorf("no log line for the ignored 40-notes.txt:\n%s", log)
	}
	hba, err := os.ReadFile(filepath.Join(r.pgdata, "pg_hba.conf"))
	if err != nil || !strings.HasSuffix(string(hba), "\nhost all all all scram-sha-256\n") {
		t.Errorf("$PGDATA/pg_hba.conf does not end with the image's host rule:\n%s", hba)
	}
	if m, _ := filepath.Glob(filepath.Join(r.dir, "tmp", "*")); len(m) != 0 {
		t.Errorf("the password file was not removed: %v", m)
	}
	// The entrypoint became Postgres (exec): it is the postmaster.
	if pid := r.postmasterPID(); pid != p.cmd.Process.Pid {
		t.Errorf("postmaster.pid says %d, the entrypoint's pid is %d: no exec?", pid, p.cmd.Process.Pid)
	}
	r.stop(t, p)

	// Second start on the same data: no initialisation, the data is there.
	if err := os.Remove(marker); err != nil {
		t.Fatal(err)
	}
	p = r.start(t, true, "MARKER_FILE="+marker)
	r.waitReady(t, p)
	if !strings.Contains(p.out.String(), "skipping initialisation") || strings.Contains(p.out.String(), "initdb") {
		t.Errorf("the second start did not skip the initialisation:\n%s", p.out)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the second start ran the init files again")
	}
	if got := mustSQL(t, r, r.role, servicePassword, r.db, "select current_user"); got != r.role {
		t.Errorf("after a restart the service role: %q", got)
	}
	if r.uid >= 0 {
		if uid := processUID(t, p.cmd.Process.Pid); uid != r.uid {
			t.Errorf("started as root, Postgres runs as uid %d, want the postgres user's %d", uid, r.uid)
		}
	}
	r.stop(t, p)
}

// processUID is the real uid of a running process.
func processUID(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "Uid:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatalf("no Uid in /proc/%d/status", pid)
	return -1
}

// TestPGEntrypointRequiresPassword: an empty data directory without
// POSTGRES_PASSWORD fails before initdb, saying what to set.
func TestPGEntrypointRequiresPassword(t *testing.T) {
	t.Parallel()
	r := newPGRun(t)
	var env []string
	for _, e := range r.env {
		if !strings.HasPrefix(e, "POSTGRES_PASSWORD=") {
			env = append(env, e)
		}
	}
	r.env = env
	p := r.start(t, false)
	if code := p.wait(t, time.Minute); code == 0 {
		t.Fatalf("exit status 0 without POSTGRES_PASSWORD:\n%s", p.out)
	}
	out := p.out.String()
	if !strings.Contains(out, "POSTGRES_PASSWORD") || !strings.Contains(out, "checking the environment") {
		t.Errorf("the message does not name the step and POSTGRES_PASSWORD:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(r.pgdata, "PG_VERSION")); err == nil {
		t.Error("initdb ran anyway")
	}
}

// TestPGEntrypointSignalDuringInit: SIGTERM while an init script runs
// stops the script and the temporary server; the entrypoint exits 143.
func TestPGEntrypointSignalDuringInit(t *testing.T) {
	t.Parallel()
	r := newPGRun(t)
	marker := filepath.Join(r.dir, "waiting")
	r.write(t, "initdb.d/05-wait.sh", "#!/bin/sh\ntouch \"$MARKER_FILE\"\nexec sleep 120\n", 0o555)
	p := r.start(t, false, "MARKER_FILE="+marker)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if _, err := os.Stat(marker); err == nil {
			break
		}
		select {
		case <-p.done:
			t.Fatalf("the entrypoint exited before the init script ran:\n%s", p.out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the init script did not start within 3 minutes:\n%s", p.out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	temp := r.postmasterPID()
	if temp == 0 {
		t.Fatal("no temporary server while the init script runs")
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, time.Minute); code != 128+int(syscall.SIGTERM) {
		t.Errorf("exit status %d after SIGTERM, want %d:\n%s", code, 128+int(syscall.SIGTERM), p.out)
	}
	if !strings.Contains(p.out.String(), "interrupted by SIGTERM") {
		t.Errorf("the message does not say it was interrupted:\n%s", p.out)
	}
	for deadline := time.Now().Add(30 * time.Second); running(temp); {
		if time.Now().After(deadline) {
			t.Fatalf("the temporary server (pid %d) still runs after the entrypoint exited", temp)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(r.pgdata, "postmaster.pid")); err == nil {
		t.Error("postmaster.pid is left: the temporary server was not shut down cleanly")
	}
}

// running: the process exists and is not a zombie.
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, rest, ok := strings.Cut(string(b), ") ")
	return ok && !strings.HasPrefix(rest, "Z")
}
