// Package contract runs the real shopd with exactly what the operator
// renders, to catch what no builder test can: a variable, path or port that
// the operator and the services name differently.
package contract

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/internal/builders/workloads"
	"github.com/shopplatform/shop-operator/internal/engine"
	"github.com/shopplatform/shop-operator/internal/pgtest"
	"github.com/shopplatform/shop-operator/internal/profile"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/render/rendertest"
	"github.com/shopplatform/shop-operator/internal/secrets"
	"github.com/shopplatform/shop-operator/internal/testenv"
)

// The user's admin Secret the rendered Shop names (spec.admin.secretName).
const (
	adminSecret   = "shop-admin"
	adminEmail    = "ops@shop.example"
	adminPassword = "contract-test-password"
)

// TestShopdRunsAsRendered renders a development Shop as the controller does
// (engine.Desired, real generated Secrets, the user's admin Secret) and runs
// each of the five services as its Deployment says: the command from the
// image's ENTRYPOINT and the container's args, the environment resolved as
// the kubelet does (envFrom, ConfigMap and Secret references, the Downward
// API) and nothing else, the Secret and ConfigMap volumes projected under
// the container's root with the kubelet's modes and owners, run as the
// pod's user. The databases are real Postgres servers started from the
// rendered StatefulSets' certificate, pg_hba.conf and init script, so the
// services log in with the rendered role, database and password over
// verify-full TLS. What differs from a cluster, and only that, is where
// things are on this machine (kubelet_test.go: cluster.place).
//
// Every service must pass its rendered startup, liveness and readiness
// probes (readiness checks the database and the peers the rendered URLs
// name), and must have read every variable rendered for it (its "serving"
// line names them; PG* and HOME are pgx's, proven by the database check).
// The auth service must have made the admin of the Secret. Then the test
// proves it would catch a mismatch: a misspelt variable of shopd's own and a
// moved file keep the service from starting, and a renamed variable that
// shopd ignores is reported.
func TestShopdRunsAsRendered(t *testing.T) {
	requireTools(t)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	// Not t.TempDir: its parent is private to root, and the pods run as
	// their own users (shopd as 65532, Postgres as postgres).
	base, err := os.MkdirTemp("", "shop-contract-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	shopd := make(chan string, 1)
	go func() { shopd <- buildShopd(t, ctx, base) }()

	in := renderInput(t)
	objs, err := engine.Desired(in)
	if err != nil {
		t.Fatal(err)
	}
	admin := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: in.Shop.Namespace, Name: adminSecret},
		Data: map[string][]byte{secrets.AdminEmailKey: []byte(adminEmail), secrets.PasswordKey: []byte(adminPassword)}}
	c := newCluster(t, in.Shop.Namespace, objs, admin)
	began := time.Now()
	for _, svc := range render.Databases {
		startDatabase(t, ctx, c, in.DatabaseName(svc))
	}
	t.Logf("databases started in %s", time.Since(began).Round(time.Millisecond))
	t.Cleanup(c.stopAll) // before the databases stop
	bin := <-shopd
	t.Logf("shopd built after %s", time.Since(began).Round(time.Millisecond))
	if bin == "" {
		t.FailNow()
	}
	entrypoint := imageEntrypoint(t)

	// Every pod is placed before any starts: the URLs lead to all of them.
	pods := map[string]*pod{}
	for _, svc := range render.Services {
		pods[svc] = c.schedule(t, c.workload(t, "Deployment", in.Name(svc)), nil)
	}
	procs := map[string]*process{}
	for _, svc := range render.Services {
		procs[svc] = c.start(t, base, bin, entrypoint, pods[svc])
	}
	for _, svc := range render.Services {
		if err := procs[svc].waitProbes(ctx, 2*time.Minute); err != nil {
			t.Fatalf("%s: %v\n%s", svc, err, procs[svc].logs.String())
		}
	}
	t.Logf("the five services ready after %s", time.Since(began).Round(time.Millisecond))
	for _, svc := range render.Services {
		if problems := procs[svc].contractProblems(); len(problems) > 0 {
			t.Errorf("%s: %s\n%s", svc, strings.Join(problems, "; "), procs[svc].logs.String())
		}
	}
	t.Run("auth made the admin of the Secret", func(t *testing.T) {
		if role := loginRole(t, ctx, procs[render.Auth], adminEmail, adminPassword); role != "admin" {
			t.Errorf("the Secret's account has role %q, want admin", role)
		}
	})
	t.Run("the storefront answers", func(t *testing.T) {
		fe := procs[render.Frontend]
		resp, err := get(ctx, fmt.Sprintf("http://127.0.0.1:%d/", fe.hostPort(t, intstr.FromString("http"))))
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("GET / = %v, %v\n%s", resp, err, fe.logs.String())
		}
	})

	t.Run("payment reads the rendered fault injection", func(t *testing.T) {
		// The payment container of the same Shop with spec.operations.faultInjection on.
		spec := *in.Shop.Spec.DeepCopy()
		spec.Operations.FaultInjection.Payment = &shopv1.PaymentFaultSpec{
			ErrorPercent: ptr.To[int32](35), Latency: &metav1.Duration{Duration: 1500 * time.Millisecond},
		}
		faulty := in
		faulty.Spec = profile.Resolve(spec)
		fobjs, err := workloads.Build(faulty)
		if err != nil {
			t.Fatal(err)
		}
		var env []corev1.EnvVar
		for _, o := range fobjs {
			if d, ok := o.(*appsv1.Deployment); ok && d.Name == in.Name(render.Payment) {
				env = d.Spec.Template.Spec.Containers[0].Env
			}
		}
		w := c.variant(t, in.Name(render.Payment), func(ctr *corev1.Container, _ *corev1.PodSpec) { ctr.Env = env })
		p := c.start(t, base, bin, entrypoint, c.schedule(t, w, nil))
		if err := p.waitProbes(ctx, time.Minute); err != nil {
			t.Fatalf("%v\n%s", err, p.logs.String())
		}
		if problems := p.contractProblems(); len(problems) > 0 {
			t.Errorf("%s\n%s", strings.Join(problems, "; "), p.logs.String())
		}
		if !slices.ContainsFunc(p.rendered, func(n string) bool { return n == workloads.EnvPaymentFaultErrorRatio }) {
			t.Errorf("rendered env %v lacks %s", p.rendered, workloads.EnvPaymentFaultErrorRatio)
		}
		injecting := false
		for _, l := range strings.Split(p.logs.String(), "\n") {
			var line struct {
				Msg        string  `json:"msg"`
				Latency    string  `json:"latency"`
				ErrorRatio float64 `json:"error_ratio"`
			}
			if json.Unmarshal([]byte(l), &line) == nil && line.Msg == "payment fault injection is on" {
				injecting = line.Latency == "1.5s" && line.ErrorRatio == 0.35
			}
		}
		if !injecting {
			t.Errorf("payment does not say it injects 1.5s and 0.35:\n%s", p.logs.String())
		}
	})

	// The test would catch a mismatch.
	t.Run("a misspelt variable of shopd's is refused", func(t *testing.T) {
		w := c.variant(t, in.Name(render.Frontend), func(ctr *corev1.Container, _ *corev1.PodSpec) {
			renameEnv(t, ctr, "FRONTEND_SECURE_COOKIES", "FRONTEND_SECURE_COOKIE")
		})
		p := c.start(t, base, bin, entrypoint, c.schedule(t, w, nil))
		if err := p.waitExit(ctx, time.Minute); err == nil || !strings.Contains(p.logs.String(), "FRONTEND_SECURE_COOKIE set, but shopd frontend does not read it") {
			t.Errorf("shopd frontend with FRONTEND_SECURE_COOKIE: exit %v, want a refusal naming it\n%s", err, p.logs.String())
		}
	})
	t.Run("a moved file is refused", func(t *testing.T) {
		w := c.variant(t, in.Name(render.Auth), func(ctr *corev1.Container, _ *corev1.PodSpec) {
			for i, m := range ctr.VolumeMounts {
				if m.Name == "signing-key" {
					ctr.VolumeMounts[i].MountPath += "-moved"
				}
			}
		})
		p := c.start(t, base, bin, entrypoint, c.schedule(t, w, nil))
		if err := p.waitExit(ctx, time.Minute); err == nil || !strings.Contains(p.logs.String(), "signing-key.pem") {
			t.Errorf("shopd auth with its signing key elsewhere: exit %v, want a failure naming the file\n%s", err, p.logs.String())
		}
	})
	t.Run("a renamed variable shopd ignores is reported", func(t *testing.T) {
		w := c.variant(t, in.Name(render.Payment), func(ctr *corev1.Container, _ *corev1.PodSpec) {
			renameEnv(t, ctr, "LOG_LEVEL", "LOGLEVEL")
		})
		p := c.start(t, base, bin, entrypoint, c.schedule(t, w, nil))
		if err := p.waitProbes(ctx, time.Minute); err != nil {
			t.Fatalf("%v\n%s", err, p.logs.String())
		}
		if problems := p.contractProblems(); !slices.ContainsFunc(problems, func(s string) bool { return strings.Contains(s, "LOGLEVEL") }) {
			t.Errorf("problems %v: want LOGLEVEL reported as not read", problems)
		}
	})
}

// requireTools fails (never skips) naming what is missing.
func requireTools(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Fatalf("the contract test runs pods as Linux processes (uid, gid, process groups); GOOS is %s", runtime.GOOS)
	}
	if _, err := goTool(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(pgtest.Bin(), "postgres")); err != nil {
		t.Fatalf("no Postgres server at %s: apt-get install postgresql-15 (or set PGTEST_BINDIR)", pgtest.Bin())
	}
	if _, err := exec.LookPath("sh"); err != nil {
		t.Fatal("no sh: the databases' init scripts need it")
	}
	if os.Geteuid() == 0 {
		if _, err := user.Lookup("postgres"); err != nil {
			t.Fatalf("running as root needs the postgres user (Postgres refuses root): %v", err)
		}
		if _, err := exec.LookPath("runuser"); err != nil {
			t.Fatal("running as root needs runuser (util-linux) to start Postgres as postgres")
		}
	}
}

// goTool is the go command that builds shopd.
func goTool() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p, nil
	}
	return "", errors.New("no go command on PATH or in GOROOT: it builds shopd")
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// buildShopd builds shopd as services/Makefile does (static), into dir;
// "" after failing the test.
func buildShopd(t *testing.T, ctx context.Context, dir string) string {
	goCmd, _ := goTool()
	out := filepath.Join(dir, "shopd")
	cmd := exec.CommandContext(ctx, goCmd, "build", "-trimpath", "-o", out, "./cmd/shopd")
	cmd.Dir = filepath.Join(testenv.RepoRoot(), "services")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("building shopd: %v\n%s", err, b)
		return ""
	}
	return out
}

// imageEntrypoint is the shopd image's ENTRYPOINT (services/Dockerfile):
// what runs when a container sets no command.
func imageEntrypoint(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "services", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^ENTRYPOINT\s+(\[.*\])\s*$`).FindSubmatch(b)
	var entry []string
	if m == nil || json.Unmarshal(m[1], &entry) != nil || len(entry) == 0 {
		t.Fatal("services/Dockerfile has no ENTRYPOINT in exec form")
	}
	return entry
}

// renderInput is what the controller renders a development Shop with: the
// profile, every optional API, real generated Secrets and the values of the
// user's admin Secret. The databases' certificates also name localhost,
// which is what their Service names become on this machine.
func renderInput(t *testing.T) render.Input {
	t.Helper()
	spec := shopv1.ShopSpec{Environment: shopv1.Development, Admin: &shopv1.AdminSpec{SecretName: adminSecret}}
	shop := rendertest.Shop(spec)
	in := render.Input{Shop: shop, Spec: profile.Resolve(spec), APIs: render.AllAPIs}
	existing := map[string]map[string][]byte{}
	for _, svc := range render.Databases {
		ca, cert, key, err := secrets.ServerCertificate(append(secrets.DatabaseHosts(in, svc), "localhost"), time.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		existing[secrets.DatabaseTLSSecretName(in, svc)] = map[string][]byte{
			secrets.CACertKey: ca, secrets.TLSCertKey: cert, secrets.TLSKeyKey: key,
		}
	}
	var err error
	if in.Generated, err = secrets.Fill(secrets.For(in), existing); err != nil {
		t.Fatal(err)
	}
	in.Referenced = map[string]map[string][]byte{adminSecret: {
		secrets.AdminEmailKey: []byte(adminEmail), secrets.PasswordKey: []byte(adminPassword),
	}}
	return in
}

// startDatabase runs a rendered database StatefulSet's Postgres: its
// superuser password, its certificate, key and pg_hba.conf projected as
// files and named by its args, then its init scripts as the postgres image
// runs them on an empty data directory. The files belong to the postgres
// user, owner-only: how the kubelet's modes suit Postgres is
// TestTLSOnRealPostgres's (internal/builders/databases).
func startDatabase(t *testing.T, ctx context.Context, c *cluster, name string) {
	t.Helper()
	w := c.workload(t, "StatefulSet", name)
	ctr := w.template.Spec.Containers[slices.IndexFunc(w.template.Spec.Containers, func(c corev1.Container) bool { return c.Name == "postgres" })]
	vars, err := c.env(&pod{name: name + "-0", w: w}, ctr)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	value := func(k string) string {
		i := slices.IndexFunc(vars, func(v envVar) bool { return v.name == k })
		if i < 0 {
			t.Fatalf("%s: no %s", name, k)
		}
		return vars[i].value
	}
	var mountErr error
	pg := pgtest.Start(t, value("POSTGRES_PASSWORD"), func(dir string, uid, gid int) []string {
		mountErr = c.mount(dir, w.template.Spec, ctr, owner{uid: uid, gid: gid, mode: func(m os.FileMode) os.FileMode { return m & 0o700 }})
		// The image runs "postgres" with the rest of the args; paths are in the container.
		var args []string
		for i := 0; i < len(ctr.Args); i++ {
			if ctr.Args[i] != "-c" || i+1 == len(ctr.Args) {
				continue
			}
			k, v, _ := strings.Cut(ctr.Args[i+1], "=")
			if strings.HasPrefix(v, "/") {
				v = filepath.Join(dir, v)
			}
			args = append(args, "-c", k+"="+v)
			i++
		}
		return args
	})
	if mountErr != nil {
		t.Fatalf("%s: %v", name, mountErr)
	}
	var initDir string
	for _, m := range ctr.VolumeMounts {
		if m.MountPath == "/docker-entrypoint-initdb.d" {
			initDir = filepath.Join(pg.Dir, m.MountPath)
		}
	}
	scripts, _ := filepath.Glob(filepath.Join(initDir, "*.sh"))
	if len(scripts) == 0 {
		t.Fatalf("%s: no init script in /docker-entrypoint-initdb.d", name)
	}
	sort.Strings(scripts)
	for _, s := range scripts {
		b, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		// Over the socket as the superuser, as the image does.
		run := exec.CommandContext(ctx, "sh", "-c", string(b))
		run.Env = []string{"PATH=" + pg.Bin + ":" + os.Getenv("PATH"), "PGHOST=" + pg.Dir, "PGPORT=" + strconv.Itoa(pg.Port)}
		for _, v := range vars {
			run.Env = append(run.Env, v.name+"="+v.value)
		}
		if out, err := run.CombinedOutput(); err != nil {
			t.Fatalf("%s: init script %s: %v\n%s", name, filepath.Base(s), err, out)
		}
	}
	c.schedule(t, w, map[int32]int{render.PostgresPort: pg.Port})
}

// variant is a copy of a rendered Deployment changed by mutate, under a
// name of its own (its pods still carry the labels: the Services keep
// picking the rendered pod, scheduled first).
func (c *cluster) variant(t *testing.T, deployment string, mutate func(*corev1.Container, *corev1.PodSpec)) *workload {
	t.Helper()
	w := c.workload(t, "Deployment", deployment)
	v := &workload{kind: w.kind, name: w.name + "-variant", template: *w.template.DeepCopy()}
	mutate(&v.template.Spec.Containers[0], &v.template.Spec)
	return v
}

func renameEnv(t *testing.T, ctr *corev1.Container, from, to string) {
	t.Helper()
	for i := range ctr.Env {
		if ctr.Env[i].Name == from {
			ctr.Env[i].Name = to
			return
		}
	}
	t.Fatalf("container %s has no env %s", ctr.Name, from)
}

// process is a container of a pod running as a process.
type process struct {
	cmd      *exec.Cmd
	pod      *pod
	ctr      corev1.Container
	rendered []string // the names of its environment
	logs     *lockedBuffer
	done     chan struct{}
	err      error
}

// start runs the one container of a workload's pod as the kubelet would:
// its volumes under a root of its own, its environment placed on this
// machine, the image's entrypoint unless it sets a command, as the pod's
// user when the test runs as root.
func (c *cluster) start(t *testing.T, base, shopd string, entrypoint []string, p *pod) *process {
	t.Helper()
	w := p.w
	spec := w.template.Spec
	if len(spec.Containers) != 1 || len(spec.InitContainers) != 0 {
		t.Fatalf("%s: %d containers and %d init containers; only one container is implemented here", w.name, len(spec.Containers), len(spec.InitContainers))
	}
	ctr := spec.Containers[0]
	root, err := os.MkdirTemp(base, p.name+"-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	uid, gid, fsGroup := runAs(spec, ctr)
	own := owner{uid: -1, gid: -1}
	if os.Geteuid() == 0 {
		// The kubelet: files owned by root, group the pod's fsGroup, the
		// volume's mode exactly (a mode the pod's user cannot read fails here).
		own = owner{uid: 0, gid: int(fsGroup)}
	}
	if err := c.mount(root, spec, ctr, own); err != nil {
		t.Fatalf("%s: %v", w.name, err)
	}
	vars, err := c.env(p, ctr)
	if err != nil {
		t.Fatalf("%s: %v", w.name, err)
	}
	env, err := c.place(p, vars, root)
	if err != nil {
		t.Fatalf("%s: %v", w.name, err)
	}
	command := ctr.Command
	if len(command) == 0 {
		command = entrypoint
	}
	args := []string{}
	for _, a := range append(command[1:], ctr.Args...) {
		args = append(args, expand(a, vars))
	}
	if command[0] != entrypoint[0] {
		t.Fatalf("%s runs %s, which the shopd image does not have (its entrypoint is %s)", w.name, command[0], entrypoint[0])
	}
	cmd := exec.Command(shopd, args...)
	cmd.Env, cmd.Dir = env, root
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if os.Geteuid() == 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{uint32(fsGroup)}}
	}
	pr := &process{pod: p, ctr: ctr, logs: &lockedBuffer{}, done: make(chan struct{})}
	for _, v := range vars {
		pr.rendered = append(pr.rendered, v.name)
	}
	cmd.Stdout, cmd.Stderr = pr.logs, pr.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { pr.err = cmd.Wait(); close(pr.done) }()
	pr.cmd = cmd
	c.procs = append(c.procs, pr)
	return pr
}

// stopAll stops every process at once, as a node drains: SIGTERM, then
// SIGKILL after 30 s (the services drain requests and flush telemetry).
func (c *cluster) stopAll() {
	for _, p := range c.procs {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	}
	for _, p := range c.procs {
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	}
}

// runAs is the container's user, group and the pod's fsGroup.
func runAs(spec corev1.PodSpec, ctr corev1.Container) (uid, gid, fsGroup int64) {
	uid, gid, fsGroup = 65532, 65532, 65532 // the image's USER
	if sc := spec.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			uid = *sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			gid = *sc.RunAsGroup
		}
		if sc.FSGroup != nil {
			fsGroup = *sc.FSGroup
		}
	}
	if sc := ctr.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			uid = *sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			gid = *sc.RunAsGroup
		}
	}
	return uid, gid, fsGroup
}

// hostPort is where a container port (by name or number) is on this machine.
func (p *process) hostPort(t *testing.T, port intstr.IntOrString) int {
	t.Helper()
	cp, err := containerPort(p.ctr, port)
	if err != nil {
		t.Fatal(err)
	}
	return p.pod.ports[cp]
}

// probe runs one attempt of an HTTP probe as the kubelet does: success is
// a status from 200 to 399 within the probe's timeout.
func (p *process) probe(ctx context.Context, pr *corev1.Probe) error {
	if pr == nil || pr.HTTPGet == nil {
		return errors.New("only httpGet probes are implemented here")
	}
	cp, err := containerPort(p.ctr, pr.HTTPGet.Port)
	if err != nil {
		return err
	}
	if pr.HTTPGet.Scheme != "" && pr.HTTPGet.Scheme != corev1.URISchemeHTTP {
		return fmt.Errorf("probe scheme %s: not implemented here", pr.HTTPGet.Scheme)
	}
	timeout := time.Duration(max(pr.TimeoutSeconds, 1)) * time.Second
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := get(ctx, fmt.Sprintf("http://127.0.0.1:%d%s", p.pod.ports[cp], pr.HTTPGet.Path))
	if err != nil {
		return err
	}
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("%s answered %s", pr.HTTPGet.Path, resp.Status)
	}
	return nil
}

// waitProbes waits, within bound, for the startup probe, then the liveness
// and readiness probes to pass; an exit of the process ends the wait.
func (p *process) waitProbes(ctx context.Context, bound time.Duration) error {
	deadline := time.Now().Add(bound)
	for _, pr := range []struct {
		name  string
		probe *corev1.Probe
	}{{"startup", p.ctr.StartupProbe}, {"liveness", p.ctr.LivenessProbe}, {"readiness", p.ctr.ReadinessProbe}} {
		if pr.probe == nil {
			return fmt.Errorf("no %s probe rendered", pr.name)
		}
		for {
			err := p.probe(ctx, pr.probe)
			if err == nil {
				break
			}
			select {
			case <-p.done:
				return fmt.Errorf("exited before its %s probe passed: %v", pr.name, p.err)
			default:
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s probe %s on port %s still failing after %s: %v", pr.name, pr.probe.HTTPGet.Path, pr.probe.HTTPGet.Port.String(), bound, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return nil
}

// waitExit waits, within bound, for the process to end and returns how.
func (p *process) waitExit(ctx context.Context, bound time.Duration) error {
	select {
	case <-p.done:
		if p.err == nil {
			return nil
		}
		return p.err
	case <-time.After(bound):
		return nil
	case <-ctx.Done():
		return nil
	}
}

// pgxVariables are read by pgx (the services' Postgres driver), not by
// shopd's own code: that they work is what the readiness probe's database
// check proves.
var pgxVariables = regexp.MustCompile(`^(PG[A-Z]+|HOME)$`)

// contractProblems lists every variable rendered for the container that
// shopd did not read, according to its "serving" line.
func (p *process) contractProblems() []string {
	read, ok := servingEnv(p.logs.String())
	if !ok {
		return []string{"no \"serving\" line with the variables read"}
	}
	var out []string
	for _, name := range p.rendered {
		if !slices.Contains(read, name) && !pgxVariables.MatchString(name) {
			out = append(out, name+" is rendered, but shopd did not read it")
		}
	}
	return out
}

// servingEnv returns the env of shopd's "serving" log line.
func servingEnv(logs string) ([]string, bool) {
	s := bufio.NewScanner(strings.NewReader(logs))
	s.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for s.Scan() {
		var line struct {
			Msg string   `json:"msg"`
			Env []string `json:"env"`
		}
		if json.Unmarshal(s.Bytes(), &line) == nil && line.Msg == "serving" && line.Env != nil {
			return line.Env, true
		}
	}
	return nil, false
}

// loginRole logs in at auth's API port and returns the account's role.
func loginRole(t *testing.T, ctx context.Context, auth *process, email, password string) string {
	t.Helper()
	base := fmt.Sprintf("http://127.0.0.1:%d", auth.hostPort(t, intstr.FromString("http")))
	body, _ := json.Marshal(map[string]string{"email": email, "password": password})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/auth/login", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	var tokens struct {
		AccessToken string `json:"access_token"`
	}
	if err := do(req, &tokens); err != nil {
		t.Fatalf("login as %s: %v\n%s", email, err, auth.logs.String())
	}
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/auth/me", nil)
	req.Header.Set("Authorization", "Bearer "+tokens.AccessToken)
	var me struct {
		Role string `json:"role"`
	}
	if err := do(req, &me); err != nil {
		t.Fatalf("me: %v", err)
	}
	return me.Role
}

var client = &http.Client{Timeout: 10 * time.Second}

func get(ctx context.Context, url string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, nil
}

func do(req *http.Request, into any) error {
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s %s", req.Method, req.URL.Path, resp.Status, b)
	}
	return json.Unmarshal(b, into)
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
