// Package testenv starts a real kube-apiserver and etcd (built from the Go
// module proxy by hack/kube-binaries.sh, cached by version) with the Shop CRD
// and, on request, the real third-party CRDs from test/crds. Tests use it
// through TestMain so one API server serves a whole package.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/shopplatform/shop-operator/internal/localcluster"
	"github.com/shopplatform/shop-operator/internal/scheme"
)

// Env is a running test API server.
type Env struct {
	Config *rest.Config
	Client client.Client
	// AuditLog is the API server's audit log (JSON lines, one
	// k8s.io/apiserver/pkg/apis/audit/v1 Event each) when Options.Audit is set.
	AuditLog string
	env      *envtest.Environment
	tmp      string
}

// Options choose which CRDs are installed.
type Options struct {
	// ThirdPartyCRDs installs Istio, prometheus-operator and
	// opentelemetry-operator CRDs from test/crds.
	ThirdPartyCRDs bool
	// Audit makes the API server log every request at Metadata level (who,
	// verb, resource, response code; no bodies) to Env.AuditLog.
	Audit bool
}

// auditPolicy logs every request when its response is complete, and a
// watch also when it starts (it completes only when the client goes).
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
`

// RepoRoot is the repository's top directory, found upwards from the working
// directory (go test runs a test in its package's): make builds with
// -trimpath, so this file's own path is not a path on disk.
func RepoRoot() string {
	root, err := localcluster.RepoRoot()
	if err != nil {
		panic(err)
	}
	return root
}

// BinaryDir returns the directory with kube-apiserver and etcd: from
// KUBEBUILDER_ASSETS when set, else built (or found cached) by hack/kube-binaries.sh.
func BinaryDir() (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	out, err := exec.Command(filepath.Join(RepoRoot(), "hack", "kube-binaries.sh"), "envtest").Output()
	if err != nil {
		return "", fmt.Errorf("hack/kube-binaries.sh envtest: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1], nil
}

// Start starts the API server and installs the CRDs.
func Start(opts Options) (*Env, error) {
	dir, err := BinaryDir()
	if err != nil {
		return nil, err
	}
	paths := []string{filepath.Join(RepoRoot(), "config", "crd", "bases")}
	if opts.ThirdPartyCRDs {
		paths = append(paths, filepath.Join(RepoRoot(), "test", "crds"))
	}
	e := &envtest.Environment{
		BinaryAssetsDirectory: dir,
		CRDDirectoryPaths:     paths,
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme.Scheme,
		// On a loaded machine (make test runs packages side by side) the
		// API server has taken more than the default 20 s to start.
		ControlPlaneStartTimeout: 2 * time.Minute,
	}
	// Room for the Services of many Shops (the default /24 holds 25 Shops).
	args := e.ControlPlane.GetAPIServer().Configure()
	args.Set("service-cluster-ip-range", "10.0.0.0/16")
	env := &Env{env: e}
	if opts.Audit {
		if env.tmp, err = os.MkdirTemp("", "shop-audit-"); err != nil {
			return nil, err
		}
		policy := filepath.Join(env.tmp, "policy.yaml")
		if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
			return nil, err
		}
		env.AuditLog = filepath.Join(env.tmp, "audit.log")
		// No rotation: a reader sees every request of the run in one file.
		args.Set("audit-policy-file", policy).Set("audit-log-path", env.AuditLog).
			Set("audit-log-maxsize", "0")
	}
	cfg, err := e.Start()
	if err != nil {
		// What did start (etcd, an API server that was not ready in time)
		// must not outlive the test binary.
		_ = e.Stop()
		_ = env.removeTemp()
		return nil, fmt.Errorf("starting the test API server: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		_ = e.Stop()
		_ = env.removeTemp()
		return nil, err
	}
	env.Config, env.Client = cfg, c
	return env, nil
}

// Stop stops the API server and etcd and removes the audit log.
func (e *Env) Stop() error {
	err := e.env.Stop()
	if rerr := e.removeTemp(); err == nil {
		err = rerr
	}
	return err
}

func (e *Env) removeTemp() error {
	if e.tmp == "" {
		return nil
	}
	return os.RemoveAll(e.tmp)
}
