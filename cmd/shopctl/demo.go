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
	"github.com/shopplatform/shop-operator/internal/scheme"
)

func init() { extraCommands = append(extraCommands, newDemoCmd) }

type demoOptions struct {
	samples, crds, namespace string
	timeout                  time.Duration
	exit                     bool
}

func newDemoCmd() *cobra.Command {
	o := demoOptions{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the operator and sample Shops on a local node-less cluster",
		Long: `demo starts a local cluster from binaries built from the Go module proxy (etcd,
kube-apiserver, kube-controller-manager, kube-scheduler and kwok, whose fake nodes
"run" the pods), installs the Shop CRD, runs the operator, applies the sample
Shops, waits until each is Ready and prints what each produced. Ctrl-C stops
everything and removes the cluster.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runDemo(ctx, o, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&o.samples, "samples", "config/samples", "directory of Shop manifests to apply")
	cmd.Flags().StringVar(&o.crds, "crds", "config/crd/bases", "directory of the CRDs to install")
	cmd.Flags().StringVarP(&o.namespace, "namespace", "n", "shops", "namespace the Shops go into")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 5*time.Minute, "how long to wait for the Shops to become Ready")
	cmd.Flags().BoolVar(&o.exit, "exit", false, "stop once the Shops are Ready instead of waiting for Ctrl-C")
	return cmd
}

func runDemo(ctx context.Context, o demoOptions, out io.Writer) error {
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
	say("starting a local cluster (etcd, kube-apiserver, controller-manager, scheduler, kwok)")
	c, err := localcluster.Start(ctx, localcluster.Options{BinDir: bin})
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
