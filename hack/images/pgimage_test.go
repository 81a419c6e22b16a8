package main

import (
	"archive/tar"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const postgresRef = "localhost/shop-platform/postgres:15-debian"

// backupTools are what the backup CronJob's script runs (besides pg_dump).
var backupTools = []string{"sh", "cut", "date", "awk", "wc", "tr", "ls", "grep", "sort", "tail", "timeout", "wget", "mv", "rm"}

// TestPostgresImage: the Postgres image fits what the operator renders for
// postgres:<v>-alpine: the user the pods run as (70), the environment, the
// directories they mount owned by postgres, the server and client
// programs, the locale and time zones, busybox's tools for the backup
// script, and every command the rendered containers and probes run.
func TestPostgresImage(t *testing.T) {
	t.Parallel()
	cf, fs := loadLocal(t, postgresRef)
	env := strings.Join(cf.Config.Env, "\n")
	for _, want := range []string{"PATH=/usr/local/bin:/usr/lib/postgresql/15/bin:/usr/bin:/bin", "PGDATA=/var/lib/postgresql/data", "LANG=C.UTF-8"} {
		if !strings.Contains(env+"\n", want+"\n") {
			t.Errorf("Env has no %s:\n%s", want, env)
		}
	}
	if _, ok := cf.Config.ExposedPorts["5432/tcp"]; !ok {
		t.Errorf("ExposedPorts %v, want 5432/tcp", cf.Config.ExposedPorts)
	}
	if !strings.Contains(string(fs["etc/passwd"].data), "postgres:x:70:70:postgres:/var/lib/postgresql:") {
		t.Errorf("/etc/passwd:\n%s", fs["etc/passwd"].data)
	}
	for _, d := range []string{"var/lib/postgresql", "var/lib/postgresql/data", "var/run/postgresql"} {
		if e := fs[d]; e.typ != tar.TypeDir || e.uid != 70 {
			t.Errorf("/%s: type %c uid %d, want a directory owned by 70", d, e.typ, e.uid)
		}
	}
	for _, f := range []string{"usr/lib/locale/C.utf8/LC_CTYPE", "usr/share/zoneinfo/UTC", "usr/share/zoneinfo/Europe/Berlin",
		"usr/share/postgresql/15/postgres.bki", "usr/share/postgresql/15/postgresql.conf.sample", "usr/share/postgresql/15/timezonesets/Default"} {
		if p := fs.resolve(f); p == "" || fs[p].typ != tar.TypeReg {
			t.Errorf("/%s is not in the image", f)
		}
	}
	for _, c := range append([]string{"docker-entrypoint", "postgres", "initdb", "pg_ctl", "psql", "pg_isready", "pg_dump", "pg_restore"}, backupTools...) {
		if p := fs.lookPath(c, cf.Config.Env); p == "" || fs[p].mode&0o111 == 0 {
			t.Errorf("%s is not an executable on the image's PATH", c)
		}
	}
	// New databases listen on the pod IP (probes, Services), as with the
	// official image; Debian's own sample says localhost.
	if sample := string(fs["usr/share/postgresql/15/postgresql.conf.sample"].data); !regexp.MustCompile(`(?m)^listen_addresses = '\*'`).MatchString(sample) {
		t.Errorf("postgresql.conf.sample does not set listen_addresses = '*'")
	}
	if p := fs.resolve("bin/sh"); p != "bin/busybox" {
		t.Errorf("/bin/sh is %q, want busybox", p)
	}

	sts, _, _ := postgresStatefulSet(t)
	if u := sts.Spec.Template.Spec.SecurityContext.RunAsUser; u == nil || *u != 70 {
		t.Errorf("%s runs as %v; the image's postgres user is 70", sts.Metadata.Name, u)
	}
	pods := postgresPods(t)
	if len(pods) == 0 {
		t.Fatal("the samples render no container from a postgres image")
	}
	var names []string
	for n := range pods {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := pods[n]
		argv := c.Command
		if len(argv) == 0 {
			argv = cf.Config.Entrypoint
		}
		if fs.lookPath(argv[0], cf.Config.Env) == "" {
			t.Errorf("%s runs %q: not in the image", n, argv[0])
		}
		if c.StartupProbe != nil && c.StartupProbe.Exec != nil {
			if p := c.StartupProbe.Exec.Command[0]; fs.lookPath(p, cf.Config.Env) == "" {
				t.Errorf("%s's startup probe runs %q: not in the image", n, p)
			}
		}
	}
}

// TestPostgresImageRuns runs the Postgres image itself: its files
// extracted into a directory, the entrypoint started in a chroot of it as
// the StatefulSet runs it (user and group 70, the rendered arguments and
// environment, the volumes where the StatefulSet mounts them, owned as the
// kubelet makes them with fsGroup 70), then the rendered backup CronJob's
// script in the same image against it, over TLS verified against the CA.
func TestPostgresImageRuns(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Fatal("TestPostgresImageRuns needs root (chroot, device nodes, switching to uid 70)")
	}
	cf, fs := loadLocal(t, postgresRef)
	root, err := os.MkdirTemp("", "pg-image-root-")
	if err != nil {
		t.Fatal(err)
	}
	mounted := false
	t.Cleanup(func() {
		if mounted {
			if err := syscall.Unmount(filepath.Join(root, "proc"), syscall.MNT_DETACH); err != nil {
				t.Errorf("unmount %s/proc: %v (left in place)", root, err)
				return
			}
		}
		os.RemoveAll(root)
	})
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	unpack(t, root, fs)
	// The runtime mounts /proc (the backup script times itself with /proc/uptime).
	mkdir(t, root, "proc", 0o555, 0, 0)
	if err := syscall.Mount("proc", filepath.Join(root, "proc"), "proc", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, ""); err != nil {
		t.Fatalf("mount proc: %v", err)
	}
	mounted = true

	// What the runtime and the kubelet provide.
	for _, d := range []struct {
		name        string
		major, mnor uint32
	}{{"null", 1, 3}, {"zero", 1, 5}, {"random", 1, 8}, {"urandom", 1, 9}} {
		mkdir(t, root, "dev", 0o755, 0, 0)
		if err := syscall.Mknod(filepath.Join(root, "dev", d.name), syscall.S_IFCHR|0o666, int((d.major<<8)|d.mnor)); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(root, "dev", d.name), 0o666); err != nil {
			t.Fatal(err)
		}
	}
	mkdir(t, root, "dev/shm", 0o1777, 0, 0)
	_, c, cm := postgresStatefulSet(t)
	// Volumes: emptyDirs are 0777; the claim, ConfigMap and Secret files get the fsGroup (70).
	mkdir(t, root, "var/lib/postgresql/data", 0o2775, 0, 70)
	mkdir(t, root, "var/run/postgresql", 0o777, 0, 0)
	mkdir(t, root, "tmp", 0o777, 0, 0)
	mkdir(t, root, "backups", 0o2775, 0, 70)
	cert, key := selfSigned(t)
	for _, f := range []struct {
		path, content string
		mode          os.FileMode
	}{
		{"etc/postgresql/tls/tls.crt", cert, 0o640},
		{"etc/postgresql/tls/tls.key", key, 0o640}, // root-owned, 0640: what Postgres accepts from a Secret volume
		{"etc/postgresql/hba/pg_hba.conf", cm.Data["pg_hba.conf"], 0o444},
		{"var/run/secrets/shop/db-tls/ca.crt", cert, 0o644},
	} {
		writeOwned(t, root, f.path, f.content, f.mode, 0, 70)
	}
	for name, content := range cm.Data {
		if strings.HasSuffix(name, ".sh") {
			writeOwned(t, root, "docker-entrypoint-initdb.d/"+name, content, 0o555, 0, 70)
		}
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	secrets := map[string]string{"POSTGRES_PASSWORD": superuserPassword, "SERVICE_PASSWORD": servicePassword}
	env := append([]string(nil), cf.Config.Env...)
	var role, db string
	for _, e := range c.Env {
		v := e.Value
		if e.ValueFrom != nil {
			v = secrets[e.Name]
		}
		switch e.Name {
		case "SERVICE_ROLE":
			role = v
		case "SERVICE_DATABASE":
			db = v
		}
		env = append(env, e.Name+"="+v)
	}
	entrypoint := fs.lookPath(cf.Config.Entrypoint[0], cf.Config.Env)
	args := append(append([]string(nil), c.Args...), "-c", "port="+strconv.Itoa(port), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off")
	server := inImage(root, "/"+entrypoint, append([]string{cf.Config.Entrypoint[0]}, args...), env)
	var out syncBuffer
	server.Stdout, server.Stderr = &out, &out
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = server.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			_ = syscall.Kill(-server.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("the image's output:\n%s", out.String())
		}
	})
	r := &pgRun{port: port}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := r.psql(ctx, "postgres", superuserPassword, "postgres", "select 1")
		cancel()
		if err == nil {
			break
		}
		select {
		case <-done:
			t.Fatalf("the image exited (%v) before Postgres accepted connections:\n%s", waitErr, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("Postgres in the image did not accept connections within 3 minutes:\n%s", out.String())
		}
		time.Sleep(250 * time.Millisecond)
	}
	if got := mustSQL(t, r, role, servicePassword, db, "select current_user, ssl from pg_stat_ssl where pid = pg_backend_pid()"); got != role+"|t" {
		t.Errorf("the service role over TCP: %q, want %s|t (TLS with the mounted key)", got, role)
	}
	if got := mustSQL(t, r, "postgres", superuserPassword, db, "select datcollate from pg_database where datname = current_database()"); got != "C.UTF-8" {
		t.Errorf("collation %q, want C.UTF-8 (the image's locale)", got)
	}

	// The backup CronJob's script, in the image, against this server.
	var job container
	for _, o := range objects(t, renderSamples(t)) {
		if o.Kind == "CronJob" {
			for _, jc := range o.Spec.JobTemplate.Spec.Template.Spec.Containers {
				if strings.HasPrefix(jc.Image, "postgres:") && len(jc.Command) > 0 {
					job = jc
				}
			}
		}
	}
	if len(job.Command) == 0 {
		t.Fatal("the samples render no backup CronJob")
	}
	pushes := make(chan string, 1)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		select {
		case pushes <- string(b):
		default:
		}
	}))
	defer collector.Close()
	jobEnv := append([]string(nil), cf.Config.Env...)
	for _, e := range job.Env {
		v := e.Value
		switch e.Name {
		case "PGHOST":
			v = "127.0.0.1" // the Service's name elsewhere; the certificate names 127.0.0.1
		case "PGPORT":
			v = strconv.Itoa(port)
		case "PGDATABASE":
			v = db
		case "PGPASSWORD":
			v = superuserPassword
		case "OTLP_METRICS_URL":
			v = collector.URL + "/v1/metrics"
		}
		jobEnv = append(jobEnv, e.Name+"="+v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	backup := inImage(root, "/"+fs.lookPath(job.Command[0], cf.Config.Env), job.Command, jobEnv)
	jobOut, err := runBounded(ctx, backup)
	if err != nil {
		t.Fatalf("the backup script in the image: %v\n%s", err, jobOut)
	}
	dumps, _ := filepath.Glob(filepath.Join(root, "backups", db+"-*.dump"))
	if len(dumps) != 1 {
		t.Errorf("backups: %v, want one %s dump\n%s", dumps, db, jobOut)
	}
	select {
	case body := <-pushes:
		if !strings.Contains(body, "shop_db_backup_size_bytes") {
			t.Errorf("the pushed metrics lack the size: %s", body)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("the backup pushed no metrics (busybox wget in the image):\n%s", jobOut)
	}

	if err := server.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
		if waitErr != nil {
			t.Errorf("after SIGTERM: %v", waitErr)
		}
	case <-time.After(time.Minute):
		t.Fatal("Postgres in the image did not stop within a minute of SIGTERM")
	}
}

// inImage is a process in a chroot of the image as its user and group 70
// (with the pod's fsGroup 70 as a supplementary group).
func inImage(root, exe string, argv, env []string) *exec.Cmd {
	cmd := &exec.Cmd{Path: exe, Args: argv, Env: env, Dir: "/"}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Chroot:     root,
		Credential: &syscall.Credential{Uid: 70, Gid: 70, Groups: []uint32{70}},
		Setpgid:    true,
	}
	return cmd
}

func runBounded(ctx context.Context, cmd *exec.Cmd) (string, error) {
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return out.String(), ctx.Err()
	}
}

// unpack writes an image's flattened files under root with their modes,
// owners and links.
func unpack(t *testing.T, root string, fs imageFS) {
	t.Helper()
	var names []string
	for p := range fs {
		names = append(names, p)
	}
	sort.Strings(names) // parents first
	for _, p := range names {
		e := fs[p]
		dst := filepath.Join(root, p)
		switch e.typ {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeSymlink:
			if err := os.Symlink(e.link, dst); err != nil {
				t.Fatal(err)
			}
			if err := os.Lchown(dst, e.uid, e.uid); err != nil {
				t.Fatal(err)
			}
			continue
		case tar.TypeReg:
			if err := os.WriteFile(dst, e.data, 0o600); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("/%s: tar type %c", p, e.typ)
		}
		if err := os.Lchown(dst, e.uid, e.uid); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Chmod(dst, uint32(e.mode)); err != nil {
			t.Fatal(err)
		}
	}
}

func mkdir(t *testing.T, root, p string, mode uint32, uid, gid int) {
	t.Helper()
	dst := filepath.Join(root, p)
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dst, uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Chmod(dst, mode); err != nil {
		t.Fatal(err)
	}
}

func writeOwned(t *testing.T, root, p, content string, mode os.FileMode, uid, gid int) {
	t.Helper()
	dst := filepath.Join(root, p)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dst, uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dst, mode); err != nil {
		t.Fatal(err)
	}
}
