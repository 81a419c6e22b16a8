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
	"runtime"
	"strings"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/shopplatform/shop-operator/internal/scheme"
)

// Env is a running test API server.
type Env struct {
	Config *rest.Config
	Client client.Client
	env    *envtest.Environment
}

// Options choose which CRDs are installed.
type Options struct {
	// ThirdPartyCRDs installs Istio, prometheus-operator and
	// opentelemetry-operator CRDs from test/crds.
	ThirdPartyCRDs bool
}

// RepoRoot is the repository's top directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
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
	}
	// Room for the Services of many Shops (the default /24 holds 25 Shops).
	e.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", "10.0.0.0/16")
	cfg, err := e.Start()
	if err != nil {
		return nil, fmt.Errorf("starting the test API server: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		_ = e.Stop()
		return nil, err
	}
	return &Env{Config: cfg, Client: c, env: e}, nil
}

// Stop stops the API server and etcd.
func (e *Env) Stop() error { return e.env.Stop() }
