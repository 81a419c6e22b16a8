package localcluster

import (
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The pieces that need no binaries; test/e2e starts the real cluster.

func TestCheckBinDirNamesWhatIsMissing(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "etcd"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := checkBinDir(dir, KwokNodes)
	if err == nil {
		t.Fatal("want an error for an incomplete binary directory")
	}
	for _, want := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok,", "kwok-stages/*.yaml", "hack/kube-binaries.sh cluster"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "etcd") {
		t.Errorf("error %q lists etcd, which is present", err)
	}
	// A real node needs kubelet and kube-proxy, not kwok.
	err = checkBinDir(dir, RealNode)
	for _, want := range []string{"kubelet", "kube-proxy", "hack/kube-binaries.sh node"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("real node: error %v does not mention %q", err, want)
		}
	}
	if err != nil && strings.Contains(err.Error(), "kwok") {
		t.Errorf("real node: error %q asks for kwok", err)
	}
}

func TestWriteStagesKeepsStagesAndWidensStorageClasses(t *testing.T) {
	bin := t.TempDir()
	stages := filepath.Join(bin, "kwok-stages")
	if err := os.MkdirAll(stages, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"pvc-provision.yaml": "apiVersion: kwok.x-k8s.io/v1alpha1\nkind: Stage\nmetadata:\n  name: pvc-provision\nspec:\n  selector:\n    matchExpressions:\n    - cel:\n        expression: >-\n          self.spec.storageClassName == 'kwok-volume'\n",
		"kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [a.yaml]\n",
		"two.yaml":           "kind: Stage\nmetadata:\n  name: a\n---\nkind: StorageClass\nmetadata:\n  name: x\n---\nkind: Stage\nmetadata:\n  name: b\n",
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(stages, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := &Cluster{opts: Options{BinDir: bin, Log: io.Discard, StorageClasses: []string{"standard"}}, dir: t.TempDir()}
	path, err := c.writeStages()
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := string(out)
	if n := strings.Count(got, "kind: Stage\n"); n != 3 {
		t.Errorf("want 3 Stage documents, got %d:\n%s", n, got)
	}
	for _, unwanted := range []string{"Kustomization", "StorageClass", "== 'kwok-volume'"} {
		if strings.Contains(got, unwanted) {
			t.Errorf("output contains %q:\n%s", unwanted, got)
		}
	}
	if !strings.Contains(got, "self.spec.storageClassName in ['kwok-volume', 'standard']") {
		t.Errorf("class selector not widened:\n%s", got)
	}
}

func TestTailFileKeepsTheLastLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.log")
	var b strings.Builder
	for i := range 100 {
		b.WriteString(strings.Repeat("x", i%7) + "line\n")
	}
	b.WriteString("the last one\n")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	got := tailFile(path, 3)
	if lines := strings.Split(got, "\n"); len(lines) != 3 || lines[2] != "the last one" {
		t.Errorf("tail = %q", got)
	}
}

func TestFreePortsAreDistinct(t *testing.T) {
	ports, err := freePorts(5)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for _, p := range ports {
		if p <= 0 || seen[p] {
			t.Fatalf("ports %v", ports)
		}
		seen[p] = true
	}
}

// fakeBinDir makes a binary directory whose etcd is the given shell script
// and whose other binaries must never be reached.
func fakeBinDir(t *testing.T, etcdScript string) string {
	t.Helper()
	dir := t.TempDir()
	for _, b := range append(append([]string{}, binaries...), kwokBinaries...) {
		script := "#!/bin/sh\necho unexpected >&2\nexit 99\n"
		if b == "etcd" {
			script = etcdScript
		}
		if err := os.WriteFile(filepath.Join(dir, b), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "kwok-stages"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kwok-stages", "s.yaml"), []byte("kind: Stage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestStartReportsAProcessThatExitsWithItsLog(t *testing.T) {
	bin := fakeBinDir(t, "#!/bin/sh\necho 'etcd: no space left, giving up' >&2\nexit 3\n")
	_, err := Start(t.Context(), Options{Mode: KwokNodes, BinDir: bin, Dir: t.TempDir(), Timeout: 30 * time.Second})
	if err == nil {
		t.Fatal("Start succeeded with a failing etcd")
	}
	for _, want := range []string{"etcd: exited while starting: exit status 3", "etcd: no space left, giving up", "etcd.log"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
}

func TestStartBoundsAHungProcessAndKillsIt(t *testing.T) {
	// A "process" that never becomes healthy, with a child in its group.
	dir := t.TempDir()
	bin := fakeBinDir(t, "#!/bin/sh\necho $$ > "+dir+"/sh.pid\nsleep 600 &\necho $! > "+dir+"/sleep.pid\necho 'etcd: waiting forever' >&2\nwait\n")
	_, err := Start(t.Context(), Options{Mode: KwokNodes, BinDir: bin, Dir: dir, Timeout: 2 * time.Second})
	if err == nil {
		t.Fatal("Start succeeded with a hung etcd")
	}
	for _, want := range []string{"etcd: not ready at http://127.0.0.1:", "start timeout", "etcd: waiting forever"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	// Start stopped what it started, children included.
	for _, f := range []string{"sh.pid", "sleep.pid"} {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil {
			t.Fatal(err)
		}
		// Signals are delivered asynchronously: allow the group a moment.
		deadline := time.Now().Add(5 * time.Second)
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if alive(pid) {
			t.Errorf("%s: pid %d still running 5s after Start failed", f, pid)
		}
	}
}

// alive reports whether pid runs (a zombie waiting for its reaper does not).
func alive(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) STATE ...
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
