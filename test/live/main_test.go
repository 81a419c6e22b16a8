// Package live runs the platform for real: a local cluster with a real node
// (containerd, runc, kubelet, kube-proxy, CoreDNS, kube-network-policies,
// local-path-provisioner), the images built here, both operators installed
// as their users install them, and Shops whose pods run. One cluster serves
// every test of the package; after the last test it is stopped and the host
// is checked for anything it left behind.
//
// It needs root, as kind needs Docker. `make test` runs it (SHOP_E2E=1).
package live

import (
	"context"
	"fmt"
	"os"
	"strings"
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
	parts, err := localstack.Build(ctx, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "live: FAIL: build:", err)
		return 1
	}
	cluster, err = localcluster.Start(ctx, parts.ClusterOptions(os.Stderr))
	if err != nil {
		fmt.Fprintln(os.Stderr, "live: FAIL: start:", err)
		return 1
	}
	id := cluster.ID()
	fmt.Fprintf(os.Stderr, "live: cluster started in %s\n", cluster.StartupDuration().Round(100*time.Millisecond))
	var total int64
	for _, p := range cluster.Processes() {
		fmt.Fprintf(os.Stderr, "live:   %-24s RSS %4d MiB\n", p.Name, p.RSS>>20)
		total += p.RSS
	}
	fmt.Fprintf(os.Stderr, "live:   %-24s RSS %4d MiB\n", "total", total>>20)
	code := func() int {
		if err := localstack.Install(ctx, cluster, os.Stderr, localstack.Options{Monitoring: true}); err != nil {
			fmt.Fprintln(os.Stderr, "live: FAIL: install:", err)
			return 1
		}
		if k8s, err = client.New(cluster.RESTConfig(), client.Options{Scheme: scheme.Scheme}); err != nil {
			fmt.Fprintln(os.Stderr, "live: FAIL:", err)
			return 1
		}
		if cs, err = kubernetes.NewForConfig(cluster.RESTConfig()); err != nil {
			fmt.Fprintln(os.Stderr, "live: FAIL:", err)
			return 1
		}
		return m.Run()
	}()
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
