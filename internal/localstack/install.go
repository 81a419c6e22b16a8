package localstack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/shopplatform/shop-operator/internal/localcluster"
)

// The opentelemetry-operator the platform runs with: the release whose CRDs
// are under test/crds, and the image hack/images builds from it.
const (
	OtelOperatorModule    = "github.com/open-telemetry/opentelemetry-operator"
	OtelOperatorVersion   = "0.140.0"
	OtelOperatorRepo      = "ghcr.io/open-telemetry/opentelemetry-operator/opentelemetry-operator"
	OtelOperatorImage     = OtelOperatorRepo + ":" + OtelOperatorVersion
	OtelOperatorNamespace = "opentelemetry-operator-system"
	// CollectorImage is the collector distribution built here (the
	// components the operator renders; not contrib, hence its own name).
	CollectorImage = "localhost/shop-platform/otelcol-shop:0.161.0"
	// PostgresImage is Postgres 15 from Debian's packages, run by the
	// StatefulSet exactly as the official image would be.
	PostgresImage   = "localhost/shop-platform/postgres:15-debian"
	PostgresVersion = "15"

	ShopOperatorNamespace  = "shop-system"
	ShopOperatorDeployment = "shop-operator-controller-manager"
)

// Options choose what Install adds to the two operators.
type Options struct {
	// Monitoring installs prometheus-operator with a Prometheus and an
	// Alertmanager that select every Shop's monitors, rules and routing.
	Monitoring bool
}

// Install installs the opentelemetry-operator and the shop operator (and,
// if asked, the monitoring stack) the way their users do, and waits until
// they are Available.
func Install(ctx context.Context, c *localcluster.Cluster, log io.Writer, o Options) error {
	say := func(format string, args ...any) { fmt.Fprintf(log, "localstack: "+format+"\n", args...) }
	cs, err := kubernetes.NewForConfig(c.RESTConfig())
	if err != nil {
		return err
	}
	begin := time.Now()
	if err := installOtelOperator(ctx, c); err != nil {
		return err
	}
	say("applied the opentelemetry-operator %s (its own config/crd, rbac, manager; webhooks off: no cert-manager)", OtelOperatorVersion)
	waitMonitoring := func() error { return nil }
	if o.Monitoring {
		if waitMonitoring, err = installMonitoring(ctx, c, cs); err != nil {
			return err
		}
		say("applied prometheus-operator %s (its own CRDs, RBAC, Deployment), a Prometheus %s and an Alertmanager %s in %s",
			PrometheusOperatorVersion, PrometheusVersion, AlertmanagerVersion, MonitoringNamespace)
	}
	root, err := localcluster.RepoRoot()
	if err != nil {
		return err
	}
	if _, err := kubectl(ctx, c, nil, "apply", "--server-side", "-k", filepath.Join(root, "config", "default")); err != nil {
		return fmt.Errorf("localstack: kubectl apply -k config/default: %w", err)
	}
	say("applied the shop operator (kubectl apply --server-side -k config/default)")
	for _, d := range [][2]string{{OtelOperatorNamespace, "opentelemetry-operator-controller-manager"}, {ShopOperatorNamespace, ShopOperatorDeployment}} {
		if err := WaitDeployment(ctx, cs, d[0], d[1], 3*time.Minute); err != nil {
			return err
		}
	}
	if err := waitMonitoring(); err != nil {
		return err
	}
	say("everything installed Available after %s", time.Since(begin).Round(100*time.Millisecond))
	return nil
}

// installOtelOperator applies the operator's released manifests from its Go
// module (config/crd, config/rbac, config/manager), composed by a
// kustomization written here: our image, webhooks off (they need
// cert-manager, which the local cluster does not run; the Shop sets every
// field the defaulting webhook would).
func installOtelOperator(ctx context.Context, c *localcluster.Cluster) error {
	mod, err := moduleDir(ctx, OtelOperatorModule, "v"+OtelOperatorVersion)
	if err != nil {
		return err
	}
	dir := filepath.Join(c.Dir(), "opentelemetry-operator")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// kustomize takes resources only by relative path.
	if mod, err = filepath.Rel(dir, mod); err != nil {
		return err
	}
	k := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: %[1]s
namePrefix: opentelemetry-operator-
labels:
- includeSelectors: true
  pairs:
    app.kubernetes.io/name: opentelemetry-operator
resources:
- %[2]s/config/crd
- %[2]s/config/rbac
- %[2]s/config/manager
images:
- name: controller
  newName: %[3]s
  newTag: %[4]q
patches:
- target: {kind: Deployment, name: controller-manager}
  patch: |-
    - op: add
      path: /spec/template/spec/containers/0/args/-
      value: --enable-webhooks=false
    - op: add
      path: /spec/template/spec/containers/0/args/-
      value: --collector-image=%[5]s
`, OtelOperatorNamespace, mod, OtelOperatorRepo, OtelOperatorVersion, CollectorImage)
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		return err
	}
	manifests, err := kubectl(ctx, c, nil, "kustomize", "--load-restrictor", "LoadRestrictionsNone", dir)
	if err != nil {
		return fmt.Errorf("localstack: the opentelemetry-operator's manifests: %w", err)
	}
	if _, err := kubectl(ctx, c, manifests, "apply", "--server-side", "-f", "-"); err != nil {
		return fmt.Errorf("localstack: applying the opentelemetry-operator: %w", err)
	}
	return nil
}

// moduleDir is where the Go module cache holds module@version (downloading
// it if needed: hack/node-binaries.sh has built the operator from it).
func moduleDir(ctx context.Context, module, version string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "mod", "download", "-json", module+"@"+version).Output()
	if err != nil {
		return "", fmt.Errorf("localstack: go mod download %s@%s: %w", module, version, err)
	}
	var m struct{ Dir, Error string }
	if err := json.Unmarshal(out, &m); err != nil || m.Dir == "" {
		return "", fmt.Errorf("localstack: go mod download %s@%s: %s %v", module, version, m.Error, err)
	}
	return m.Dir, nil
}

// WaitDeployment waits until the Deployment has its replicas available; on
// timeout the error names why its pods wait.
func WaitDeployment(ctx context.Context, cs kubernetes.Interface, ns, name string, bound time.Duration) error {
	var d *appsv1.Deployment
	err := wait.PollUntilContextTimeout(ctx, time.Second, bound, true, func(ctx context.Context) (bool, error) {
		var err error
		d, err = cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		return d.Status.ObservedGeneration == d.Generation && d.Status.AvailableReplicas >= want, nil
	})
	if err != nil {
		return fmt.Errorf("localstack: Deployment %s/%s not available within %s: %s", ns, name, bound, PodsNotReady(ctx, cs, ns, nil))
	}
	return nil
}
