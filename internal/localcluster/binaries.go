package localcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// EnvBinDir names an environment variable that, when set, is the binary
// directory to use; FindBinaries then builds nothing.
const EnvBinDir = "SHOP_KUBE_BIN"

// binaries are the files a binary directory must hold for every cluster,
// kwokBinaries and realNodeBinaries those for its kind of nodes.
var (
	binaries         = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}
	kwokBinaries     = []string{"kwok"}
	realNodeBinaries = []string{"kubelet", "kube-proxy"}
)

// EnvNodeBinDir names an environment variable that, when set, is the real
// node's binary directory; FindNodeBinaries then builds nothing.
const EnvNodeBinDir = "SHOP_NODE_BIN"

// FindNodeBinaries returns the real node's binary directory: $SHOP_NODE_BIN
// when set, else the last line printed by hack/node-binaries.sh, which builds
// runc, containerd, the CNI plugins and the add-ons' programs on first use
// (about 15 minutes on 2 cores) and reuses its cache afterwards.
func FindNodeBinaries(ctx context.Context, log io.Writer) (string, error) {
	if dir := os.Getenv(EnvNodeBinDir); dir != "" {
		return dir, nil
	}
	return runScript(ctx, log, "node-binaries.sh")
}

// FindBinaries returns the directory holding the cluster's binaries: $SHOP_KUBE_BIN
// when set, else $KUBEBUILDER_ASSETS when it holds all of them (the Makefile
// points it at the same directory), else the last line printed by
// `hack/kube-binaries.sh cluster`,
// which builds them from the Go module proxy on first use (about 20 minutes
// on 2 cores; its progress goes to log) and reuses its cache afterwards.
func FindBinaries(ctx context.Context, log io.Writer) (string, error) {
	if dir := os.Getenv(EnvBinDir); dir != "" {
		if err := checkBinDir(dir, KwokNodes); err != nil {
			return "", fmt.Errorf("%s=%s: %w", EnvBinDir, dir, err)
		}
		return dir, nil
	}
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" && checkBinDir(dir, KwokNodes) == nil &&
		(os.Geteuid() != 0 || checkBinDir(dir, RealNode) == nil) {
		return dir, nil
	}
	mode := "cluster"
	if os.Geteuid() == 0 {
		mode = "node" // kubelet and kube-proxy too
	}
	dir, err := runScript(ctx, log, "kube-binaries.sh", mode)
	if err != nil {
		return "", err
	}
	if err := checkBinDir(dir, KwokNodes); err != nil {
		return "", err
	}
	return dir, nil
}

// runScript runs hack/<name> args and returns the last line it printed.
func runScript(ctx context.Context, log io.Writer, name string, args ...string) (string, error) {
	if log == nil {
		log = io.Discard
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	script := filepath.Join(root, "hack", name)
	var stdout bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", append([]string{script}, args...)...)
	cmd.Dir = root
	cmd.Stdout = &stdout
	cmd.Stderr = log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// On cancellation kill the whole group (the script runs go build).
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %w (its progress and errors were written to the log)", script, strings.Join(args, " "), err)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	return strings.TrimSpace(lines[len(lines)-1]), nil
}

// RepoRoot finds the repository root (the directory with
// hack/kube-binaries.sh): upwards from the working directory, then upwards
// from this source file.
func RepoRoot() (string, error) {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		starts = append(starts, filepath.Dir(file))
	}
	for _, d := range starts {
		for {
			if _, err := os.Stat(filepath.Join(d, "hack", "kube-binaries.sh")); err == nil {
				return d, nil
			}
			parent := filepath.Dir(d)
			if parent == d {
				break
			}
			d = parent
		}
	}
	return "", fmt.Errorf("localcluster: cannot find hack/kube-binaries.sh above %v; set %s to the binary directory", starts, EnvBinDir)
}

// checkBinDir reports what a binary directory lacks for mode's cluster.
func checkBinDir(dir string, mode NodeMode) error {
	var missing []string
	want := append(append([]string{}, binaries...), kwokBinaries...)
	script := "hack/kube-binaries.sh cluster"
	if mode == RealNode {
		want = append(append([]string{}, binaries...), realNodeBinaries...)
		script = "hack/kube-binaries.sh node"
	}
	for _, b := range want {
		st, err := os.Stat(filepath.Join(dir, b))
		if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			missing = append(missing, b)
		}
	}
	if stages, _ := filepath.Glob(filepath.Join(dir, "kwok-stages", "*.yaml")); mode == KwokNodes && len(stages) == 0 {
		missing = append(missing, "kwok-stages/*.yaml")
	}
	if len(missing) > 0 {
		return errors.New("binary directory " + dir + " lacks " + strings.Join(missing, ", ") +
			" (build them with " + script + ")")
	}
	return nil
}
