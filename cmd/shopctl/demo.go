package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	shopv1 "github.com/shopplatform/shop-operator/api/v1alpha1"
	"github.com/shopplatform/shop-operator/controllers"
	"github.com/shopplatform/shop-operator/internal/cli"
	"github.com/shopplatform/shop-operator/internal/localcluster"
	"github.com/shopplatform/shop-operator/internal/localstack"
	"github.com/shopplatform/shop-operator/internal/render"
	"github.com/shopplatform/shop-operator/internal/scheme"
)

func init() { extraCommands = append(extraCommands, newDemoCmd) }

type demoOptions struct {
	sample, samples, crds, namespace, nodes string
	timeout                                 time.Duration
	exit, monitoring                        bool
}

func newDemoCmd() *cobra.Command {
	o := demoOptions{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the platform and a Shop on a local cluster with a real node, and serve its storefront",
		Long: `demo starts a local Kubernetes cluster on this machine with one real node
(containerd, runc, kubelet, kube-proxy, CoreDNS, a NetworkPolicy enforcer and a
volume provisioner, all built from the Go module proxy and Debian), imports the
images built here, installs the opentelemetry-operator and the shop operator
(kubectl apply -k config/default), applies a sample Shop (development by
default) in namespace shops, waits until every pod is Ready and serves the
storefront and Jaeger on 127.0.0.1. With --monitoring it also installs
prometheus-operator, a Prometheus and an Alertmanager that pick up the Shop's
ServiceMonitors, rules and alert routing, and serves both (Prometheus without
its web UI, whose assets its Go module lacks: the HTTP API). Ctrl-C stops
everything and leaves nothing behind. It needs root (as kind needs Docker).

With --nodes=kwok it runs instead a node-less cluster whose fake nodes "run"
the pods (kwok), the operator in this process and every sample Shop, and
prints their status: no container runs.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if o.nodes == string(localcluster.KwokNodes) {
				return runKwokDemo(ctx, o, cmd.OutOrStdout())
			}
			if o.nodes != string(localcluster.RealNode) {
				return fmt.Errorf("--nodes must be real or kwok, not %q", o.nodes)
			}
			return runDemo(ctx, o, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&o.sample, "sample", "development", "the Shop to run: development, testing, production or a manifest's path")
	cmd.Flags().StringVar(&o.nodes, "nodes", string(localcluster.RealNode), "real (one real node; needs root) or kwok (fake nodes: nothing runs)")
	cmd.Flags().StringVar(&o.samples, "samples", "config/samples", "with --nodes=kwok: directory of Shop manifests to apply")
	cmd.Flags().StringVar(&o.crds, "crds", "config/crd/bases", "with --nodes=kwok: directory of the CRDs to install")
	cmd.Flags().StringVarP(&o.namespace, "namespace", "n", localstack.Namespace, "namespace the Shops go into")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 10*time.Minute, "how long to wait for the Shop to become Ready")
	cmd.Flags().BoolVar(&o.exit, "exit", false, "stop once the Shop is Ready instead of waiting for Ctrl-C")
	cmd.Flags().BoolVar(&o.monitoring, "monitoring", false, "also run prometheus-operator, Prometheus and Alertmanager, and serve them")
	return cmd
}

// runDemo runs a Shop on a real node and serves its storefront.
func runDemo(ctx context.Context, o demoOptions, out io.Writer) error {
	say := func(format string, args ...any) { fmt.Fprintf(out, "==> "+format+"\n", args...) }
	// The operator logs in its pod; this process's clients have nothing to say.
	ctrl.SetLogger(logr.Discard())
	if os.Geteuid() != 0 {
		return errors.New("the real node needs root (containerd, network namespaces, cgroups), as kind needs Docker: run `sudo make demo`, or `make demo DEMO_FLAGS=--nodes=kwok` for fake nodes on which nothing runs")
	}
	shop, err := localstack.ReadShop(o.sample)
	if err != nil {
		return err
	}
	shop.Namespace = o.namespace

	say("building or finding the cluster's binaries and images (cold: about 40 minutes once, then cached)")
	parts, err := localstack.Build(ctx, os.Stderr)
	if err != nil {
		return err
	}
	say("starting a local cluster with a real node (etcd, kube-apiserver, controller-manager, scheduler; containerd, kubelet, kube-proxy, CoreDNS, kube-network-policies, local-path-provisioner)")
	progress := &lineWriter{say: say, prefix: ""}
	c, err := localcluster.Start(ctx, parts.ClusterOptions(progress))
	if err != nil {
		return err
	}
	defer func() {
		say("stopping the cluster and cleaning up")
		if err := c.Stop(); err != nil {
			say("stop: %v", err)
		}
	}()
	if err := localstack.Install(ctx, c, progress, localstack.Options{Monitoring: o.monitoring}); err != nil {
		return err
	}
	k8s, err := client.New(c.RESTConfig(), client.Options{Scheme: scheme.Scheme})
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(c.RESTConfig())
	if err != nil {
		return err
	}
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: o.namespace}}); err != nil {
		return err
	}
	for _, line := range localstack.LocalOverrides(shop, o.namespace) {
		say("local image or backend: %s", line)
	}
	for _, obj := range localstack.StandIns(o.namespace) {
		if err := k8s.Create(ctx, obj); err != nil {
			return err
		}
	}
	applied := time.Now()
	if err := k8s.Create(ctx, shop); err != nil {
		return fmt.Errorf("creating Shop %s: %w", shop.Name, err)
	}
	say("applied Shop %s/%s (%s)", shop.Namespace, shop.Name, shop.Spec.Environment)
	if err := localstack.WaitShop(ctx, k8s, cs, shop, o.timeout, say); err != nil {
		return err
	}
	say("Shop %s Ready with every pod Ready %s after it was applied", shop.Name, time.Since(applied).Round(time.Second))
	if pods, err := localstack.ShopPods(ctx, cs, shop); err == nil {
		if mem, err := localstack.MeasureMemory(c, pods); err == nil {
			var ws, req int64
			for _, m := range mem {
				ws, req = ws+m.WorkingSet, req+m.Requests
			}
			say("Shop %s memory: %d MiB in use (working set of its %d pods, backends included), %d MiB requested", shop.Name, ws>>20, len(pods), req>>20)
		}
	}

	storefront, err := localstack.Forward(ctx, cs, shop.Namespace, shop.Name+"-"+render.Frontend, 8080)
	if err != nil {
		return err
	}
	lines := []string{"export KUBECONFIG=" + c.KubeconfigPath(), "storefront: http://" + storefront + "/"}
	if jaeger, err := localstack.Forward(ctx, cs, shop.Namespace, shop.Name+"-jaeger", 16686); err == nil {
		lines = append(lines, "jaeger: http://"+jaeger+"/")
	} else {
		say("no Jaeger to serve: %v", err)
	}
	if o.monitoring {
		for _, f := range []struct {
			name, service string
			port          int32
			path          string
		}{
			{"prometheus", localstack.PrometheusService, 9090, "/api/v1/targets"},
			{"alertmanager", localstack.AlertmanagerService, 9093, "/"},
		} {
			addr, err := localstack.Forward(ctx, cs, localstack.MonitoringNamespace, f.service, f.port)
			if err != nil {
				return fmt.Errorf("serving %s: %w", f.name, err)
			}
			lines = append(lines, f.name+": http://"+addr+f.path)
		}
	}
	fmt.Fprintf(out, "\n%s\n\n", strings.Join(lines, "\n"))
	if o.exit {
		return nil
	}
	say("serving until Ctrl-C (then everything stops and is removed)")
	<-ctx.Done()
	return nil
}

// lineWriter turns the cluster's progress lines into demo output.
type lineWriter struct {
	say    func(string, ...any)
	prefix string
	buf    []byte
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			return len(p), nil
		}
		w.say("%s%s", w.prefix, string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
}

// runKwokDemo runs the operator in this process and every sample Shop on a
// node-less cluster, and prints their status.
func runKwokDemo(ctx context.Context, o demoOptions, out io.Writer) error {
	say := func(format string, args ...any) { fmt.Fprintf(out, "==> "+format+"\n", args...) }
	shops, err := readShops(o.samples)
	if err != nil {
		return err
	}

	say("building or finding the Kubernetes binaries (cold: ~20 minutes once, then cached)")
	bin, err := localcluster.FindBinaries(ctx, os.Stderr)
	if err != nil {
		return err
	}
	say("starting a local node-less cluster (etcd, kube-apiserver, controller-manager, scheduler, kwok)")
	c, err := localcluster.Start(ctx, localcluster.Options{Mode: localcluster.KwokNodes, BinDir: bin})
	if err != nil {
		return err
	}
	defer func() {
		say("stopping the cluster")
		_ = c.Stop()
	}()
	cfg := c.RESTConfig()
	if _, err := envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{Paths: []string{o.crds}, ErrorIfPathMissing: true}); err != nil {
		return fmt.Errorf("installing the CRDs: %w", err)
	}

	// The operator logs to a file in the cluster's directory, next to the
	// control plane's logs, so the terminal shows only progress.
	logFile, err := os.Create(filepath.Join(c.Dir(), "shop-operator.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	ctrl.SetLogger(zap.New(zap.WriteTo(logFile)))
	mgr, err := controllers.NewManager(cfg, ctrl.Options{
		Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
	})
	if err != nil {
		return err
	}
	mgrCtx, stopMgr := context.WithCancel(ctx)
	mgrDone := make(chan error, 1)
	go func() { mgrDone <- mgr.Start(logr.NewContext(mgrCtx, ctrl.Log)) }()
	defer func() { stopMgr(); <-mgrDone }()
	say("operator running (log: %s)", logFile.Name())

	k8s, err := client.New(cfg, client.Options{Scheme: scheme.Scheme})
	if err != nil {
		return err
	}
	if err := k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: o.namespace}}); err != nil {
		return err
	}
	for _, s := range shops {
		s.Namespace = o.namespace
		if err := k8s.Create(ctx, s); err != nil {
			return fmt.Errorf("creating Shop %s: %w", s.Name, err)
		}
		say("applied Shop %s/%s (%s)", s.Namespace, s.Name, s.Spec.Environment)
	}

	if err := waitReady(ctx, k8s, shops, o.timeout, say); err != nil {
		return err
	}
	for _, s := range shops {
		fmt.Fprintf(out, "\n--- Shop %s (%s) ---\n", s.Name, s.Spec.Environment)
		root := cli.NewRoot("shopctl")
		root.SetOut(out)
		root.SetArgs([]string{"status", s.Name, "-n", o.namespace, "--kubeconfig", c.KubeconfigPath()})
		if err := root.ExecuteContext(ctx); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, `
The cluster is yours while this runs. In another terminal:

  export KUBECONFIG=%s
  kubectl get shops -n %s
  go run ./cmd/shopctl status %s -n %s

`, c.KubeconfigPath(), o.namespace, shops[0].Name, o.namespace)
	if o.exit {
		return nil
	}
	say("press Ctrl-C to stop and clean up")
	<-ctx.Done()
	return nil
}

// readShops reads every Shop manifest in dir (kustomization.yaml aside).
func readShops(dir string) ([]*shopv1.Shop, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var shops []*shopv1.Shop
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		s := &shopv1.Shop{}
		if err := yaml.UnmarshalStrict(data, s); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		if s.Kind == "Shop" {
			shops = append(shops, s)
		}
	}
	if len(shops) == 0 {
		return nil, fmt.Errorf("no Shop manifests in %s", dir)
	}
	return shops, nil
}

// waitReady polls until every Shop reports Ready at its generation, printing
// each Shop's progress when it changes.
func waitReady(ctx context.Context, k8s client.Client, shops []*shopv1.Shop, timeout time.Duration, say func(string, ...any)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := map[string]string{}
	for {
		ready := 0
		for _, s := range shops {
			cur := &shopv1.Shop{}
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(s), cur); err != nil {
				return err
			}
			msg := "waiting for the operator"
			if c := meta.FindStatusCondition(cur.Status.Conditions, shopv1.ConditionReady); c != nil {
				msg = fmt.Sprintf("Ready=%s %s", c.Status, strings.TrimSpace(c.Message))
				if c.Status == metav1.ConditionTrue && c.ObservedGeneration == cur.Generation {
					ready++
				}
			}
			if last[s.Name] != msg {
				say("%s: %s", s.Name, msg)
				last[s.Name] = msg
			}
		}
		if ready == len(shops) {
			return nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("the Shops were not Ready within %s", timeout)
			}
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}
