// Package live runs the platform for real: a local cluster with a real node
// (containerd, runc, kubelet, kube-proxy, CoreDNS, kube-network-policies,
// local-path-provisioner), the images built here, both operators installed
// as their users install them, and Shops whose pods run. One cluster serves
// every test of the package but TestDemo (which starts its own, as a user
// does, at the same time); after the last test it is stopped and the host
// is checked for anything it left behind.
//
// It needs root, as kind needs Docker. `make test` runs it (SHOP_E2E=1).
package live

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/shopplatform/shop-operator/internal/localcluster"
	"github.com/shopplatform/shop-operator/internal/localstack"
	"github.com/shopplatform/shop-operator/internal/scheme"
)

var (
	cluster *localcluster.Cluster
	k8s     client.Client
	cs      kubernetes.Interface
)

// suite starts the one cluster the tests share when the first of them asks
// (useCluster), not before m.Run: TestDemo, which needs none of it, starts
// its own cluster at the same time instead of after this one is installed.
var suite struct {
	once  sync.Once
	ctx   context.Context
	parts localstack.Parts
	err   error
}

// useCluster starts the shared cluster and installs both operators and the
// monitoring stack, once; every test but TestDemo calls it first.
func useCluster(t *testing.T) {
	t.Helper()
	suite.once.Do(func() { suite.err = startCluster(suite.ctx, suite.parts) })
	if suite.err != nil {
		t.Fatalf("the shared cluster: %v", suite.err)
	}
}

func startCluster(ctx context.Context, parts localstack.Parts) error {
	var err error
	if cluster, err = localcluster.Start(ctx, parts.ClusterOptions(os.Stderr)); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	fmt.Fprintf(os.Stderr, "live: cluster started in %s\n", cluster.StartupDuration().Round(100*time.Millisecond))
	var total int64
	for _, p := range cluster.Processes() {
		fmt.Fprintf(os.Stderr, "live:   %-24s RSS %4d MiB\n", p.Name, p.RSS>>20)
		total += p.RSS
	}
	fmt.Fprintf(os.Stderr, "live:   %-24s RSS %4d MiB\n", "total", total>>20)
	if err := localstack.Install(ctx, cluster, os.Stderr, localstack.Options{Monitoring: true}); err != nil {
		return fmt.Errorf("install: %w", err)
	}
	if k8s, err = client.New(cluster.RESTConfig(), client.Options{Scheme: scheme.Scheme}); err != nil {
		return err
	}
	cs, err = kubernetes.NewForConfig(cluster.RESTConfig())
	return err
}

func TestMain(m *testing.M) {
	if os.Getenv(localcluster.EnvE2E) == "" {
		fmt.Fprintf(os.Stderr, "live: skipped: set %s=1 to run (make test does); it builds and starts a real node\n", localcluster.EnvE2E)
		os.Exit(0)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "live: FAIL: the real node needs root (containerd, network namespaces, cgroups), as kind needs Docker")
		os.Exit(1)
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	ctrllog.SetLogger(logr.Discard())
	before := localcluster.SnapshotHost()
	ctx, cancel := context.WithTimeout(context.Background(), 70*time.Minute) // the cluster lives as long as this: room for make chaos
	defer cancel()
	// The images first, once: TestDemo's own build then finds them cached.
	parts, err := localstack.Build(ctx, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "live: FAIL: build:", err)
		return 1
	}
	suite.ctx, suite.parts = ctx, parts
	code := m.Run()
	if cluster == nil {
		return code
	}
	id := cluster.ID()
	if code != 0 {
		cluster.KeepDir()
		fmt.Fprintf(os.Stderr, "live: a test failed; the cluster's logs stay in %s\n", cluster.Dir())
	}
	if err := cluster.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "live: FAIL: stop:", err)
		code = 1
	}
	// Nothing of the cluster's may stay on the host (its directory aside,
	// when kept for a failure's logs).
	var left []string
	for _, l := range before.Leftovers(localcluster.SnapshotHost(), id) {
		if code != 0 && strings.Contains(l, cluster.Dir()) {
			continue
		}
		left = append(left, l)
	}
	if len(left) > 0 {
		fmt.Fprintf(os.Stderr, "live: FAIL: the cluster left behind on the host:\n  %s\n", strings.Join(left, "\n  "))
		code = 1
	}
	return code
}
