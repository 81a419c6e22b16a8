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

// binaries are the files a binary directory must hold.
var binaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}

// FindBinaries returns the directory holding the cluster's binaries: $SHOP_KUBE_BIN
// when set, else $KUBEBUILDER_ASSETS when it holds all of them (the Makefile
// points it at the same directory), else the last line printed by
// `hack/kube-binaries.sh cluster`,
// which builds them from the Go module proxy on first use (about 20 minutes
// on 2 cores; its progress goes to log) and reuses its cache afterwards.
func FindBinaries(ctx context.Context, log io.Writer) (string, error) {
	if dir := os.Getenv(EnvBinDir); dir != "" {
		if err := checkBinDir(dir); err != nil {
			return "", fmt.Errorf("%s=%s: %w", EnvBinDir, dir, err)
		}
		return dir, nil
	}
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" && checkBinDir(dir) == nil {
		return dir, nil
	}
	if log == nil {
		log = io.Discard
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	script := filepath.Join(root, "hack", "kube-binaries.sh")
	var stdout bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", script, "cluster")
	cmd.Dir = root
	cmd.Stdout = &stdout
	cmd.Stderr = log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// On cancellation kill the whole group (the script runs go build).
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s cluster: %w (its progress and errors were written to the log)", script, err)
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	dir := strings.TrimSpace(lines[len(lines)-1])
	if err := checkBinDir(dir); err != nil {
		return "", fmt.Errorf("%s printed %q: %w", script, dir, err)
	}
	return dir, nil
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

// checkBinDir reports what a binary directory lacks.
func checkBinDir(dir string) error {
	var missing []string
	for _, b := range binaries {
		st, err := os.Stat(filepath.Join(dir, b))
		if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			missing = append(missing, b)
		}
	}
	stages, _ := filepath.Glob(filepath.Join(dir, "kwok-stages", "*.yaml"))
	if len(stages) == 0 {
		missing = append(missing, "kwok-stages/*.yaml")
	}
	if len(missing) > 0 {
		return errors.New("binary directory " + dir + " lacks " + strings.Join(missing, ", ") +
			" (build them with hack/kube-binaries.sh cluster)")
	}
	return nil
}
