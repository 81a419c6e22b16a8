package localstack

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/shopplatform/shop-operator/internal/localcluster"
)

// The monitoring stack of the local platform: prometheus-operator from its
// released module (the release whose CRDs are under test/crds), one
// Prometheus that selects every ServiceMonitor, PodMonitor and PrometheusRule
// of the cluster, and one Alertmanager that selects every AlertmanagerConfig,
// so a Shop's are scraped, evaluated and routed as a user's stack would.
const (
	PrometheusOperatorModule  = "github.com/prometheus-operator/prometheus-operator"
	PrometheusOperatorVersion = "0.85.0"
	// PrometheusVersion is that operator's default, which
	// hack/node-binaries.sh builds from the module (v0.305.0).
	PrometheusVersion   = "3.5.0"
	PrometheusImage     = "quay.io/prometheus/prometheus:v" + PrometheusVersion
	MonitoringNamespace = "monitoring" // mesh.MonitoringNamespaces: the Shop's NetworkPolicies admit it
	// PrometheusName is the Prometheus object; PrometheusService (port
	// "web") reaches it by a cluster IP (the operator's own Service,
	// prometheus-operated, is headless).
	PrometheusName    = "shop"
	PrometheusService = "prometheus"
	// PrometheusScrapeInterval is the Prometheus default; the Shop's
	// monitors set their own (spec.observability.prometheus.scrapeInterval).
	PrometheusScrapeInterval = "10s"
	// AlertmanagerVersion is that operator's default, built from its module.
	AlertmanagerVersion = "0.28.1"
	AlertmanagerImage   = "quay.io/prometheus/alertmanager:v" + AlertmanagerVersion
	// AlertmanagerName is the Alertmanager object; AlertmanagerService (port
	// "web") reaches it by a cluster IP.
	AlertmanagerName    = "shop"
	AlertmanagerService = "alertmanager"
	// kube-state-metrics, from its module's examples/standard, gives the
	// Shop's restart panels and crash-loop alert their series.
	KubeStateMetricsModule  = "k8s.io/kube-state-metrics/v2"
	KubeStateMetricsVersion = "2.20.0"
)

// installMonitoring applies prometheus-operator (its own CRDs, RBAC and
// Deployment from the module's example/, in the monitoring namespace) and,
// once the CRDs are established, the Prometheus and the Alertmanager. It
// returns a wait for all three to be Available, so the shop operator
// installs meanwhile.
func installMonitoring(ctx context.Context, c *localcluster.Cluster, cs kubernetes.Interface) (wait func() error, err error) {
	dir := filepath.Join(c.Dir(), "prometheus-operator")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	mod, err := relModuleDir(ctx, dir, PrometheusOperatorModule, "v"+PrometheusOperatorVersion)
	if err != nil {
		return nil, err
	}
	ksm, err := relModuleDir(ctx, dir, KubeStateMetricsModule, "v"+KubeStateMetricsVersion)
	if err != nil {
		return nil, err
	}
	// The CRDs, the operator's RBAC and Deployment (not its ServiceMonitor:
	// its CRD is applied in the same request), and Prometheus' RBAC.
	resources := ""
	for _, f := range []string{
		"prometheus-operator-crd/monitoring.coreos.com_alertmanagerconfigs.yaml",
		"prometheus-operator-crd/monitoring.coreos.com_alertmanagers.yaml",
		"prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml",
		"prometheus-operator-crd/monitoring.coreos.com_probes.yaml",
		"prometheus-operator-crd/monitoring.coreos.com_prometheusagents.yaml",
		"prometheus-operator-crd/monitoring.coreos.com_prometheuses.yaml",
		"prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml",
		"prometheus-operator-crd/monitoring.coreos.com_scrapeconfigs.yaml",
		"prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml",
		"prometheus-operator-crd/monitoring.coreos.com_thanosrulers.yaml",
		"rbac/prometheus-operator/prometheus-operator-cluster-role-binding.yaml",
		"rbac/prometheus-operator/prometheus-operator-cluster-role.yaml",
		"rbac/prometheus-operator/prometheus-operator-deployment.yaml",
		"rbac/prometheus-operator/prometheus-operator-service-account.yaml",
		"rbac/prometheus-operator/prometheus-operator-service.yaml",
		"rbac/prometheus/prometheus-cluster-role-binding.yaml",
		"rbac/prometheus/prometheus-cluster-role.yaml",
		"rbac/prometheus/prometheus-service-account.yaml",
	} {
		resources += "- " + filepath.Join(mod, "example", f) + "\n"
	}
	k := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: %s
resources:
- namespace.yaml
%s- %s
`, MonitoringNamespace, resources, filepath.Join(ksm, "examples", "standard"))
	ns := fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n", MonitoringNamespace)
	for name, data := range map[string]string{"kustomization.yaml": k, "namespace.yaml": ns} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			return nil, err
		}
	}
	manifests, err := kubectl(ctx, c, nil, "kustomize", "--load-restrictor", "LoadRestrictionsNone", dir)
	if err != nil {
		return nil, fmt.Errorf("localstack: prometheus-operator's manifests: %w", err)
	}
	if _, err := kubectl(ctx, c, manifests, "apply", "--server-side", "-f", "-"); err != nil {
		return nil, fmt.Errorf("localstack: applying prometheus-operator: %w", err)
	}
	if _, err := kubectl(ctx, c, nil, "wait", "--for=condition=Established", "--timeout=2m",
		"crd/prometheuses.monitoring.coreos.com", "crd/servicemonitors.monitoring.coreos.com",
		"crd/podmonitors.monitoring.coreos.com", "crd/prometheusrules.monitoring.coreos.com",
		"crd/alertmanagers.monitoring.coreos.com", "crd/alertmanagerconfigs.monitoring.coreos.com"); err != nil {
		return nil, fmt.Errorf("localstack: prometheus-operator's CRDs: %w", err)
	}
	if _, err := kubectl(ctx, c, []byte(prometheusManifest()), "apply", "--server-side", "-f", "-"); err != nil {
		return nil, fmt.Errorf("localstack: applying the Prometheus and the Alertmanager: %w", err)
	}
	return func() error {
		for _, d := range []string{"prometheus-operator", "kube-state-metrics"} {
			if err := WaitDeployment(ctx, cs, MonitoringNamespace, d, 3*time.Minute); err != nil {
				return err
			}
		}
		for _, o := range []string{"prometheus/" + PrometheusName, "alertmanager/" + AlertmanagerName} {
			if _, err := kubectl(ctx, c, nil, "-n", MonitoringNamespace, "wait", "--for=condition=Available", "--timeout=3m", o); err != nil {
				return fmt.Errorf("localstack: %s/%s not Available: %w: %s", MonitoringNamespace, o, err,
					PodsNotReady(ctx, cs, MonitoringNamespace, nil))
			}
		}
		return nil
	}, nil
}

// relModuleDir downloads a module and returns its directory relative to dir
// (kustomize loads resources by relative path).
func relModuleDir(ctx context.Context, dir, module, version string) (string, error) {
	mod, err := moduleDir(ctx, module, version)
	if err != nil {
		return "", err
	}
	return filepath.Rel(dir, mod)
}

// prometheusManifest is the Prometheus (small: one replica, emptyDir,
// two hours of data) sending to the Alertmanager (one replica, selecting
// every AlertmanagerConfig; the operator adds a namespace matcher to each),
// a Service with a cluster IP in front of each, and kube-state-metrics'
// ServiceMonitor (its labels namespace and pod are the objects', so honored).
func prometheusManifest() string {
	return fmt.Sprintf(`apiVersion: monitoring.coreos.com/v1
kind: Prometheus
metadata:
  name: %[2]s
  namespace: %[1]s
spec:
  version: v%[3]s
  image: %[4]s
  replicas: 1
  serviceAccountName: prometheus
  serviceDiscoveryRole: EndpointSlice
  scrapeInterval: %[6]s
  evaluationInterval: %[6]s
  retention: 2h
  # Exemplars (trace ids on histogram buckets), which latency panels link to traces by.
  enableFeatures: [exemplar-storage]
  serviceMonitorSelector: {}
  serviceMonitorNamespaceSelector: {}
  podMonitorSelector: {}
  podMonitorNamespaceSelector: {}
  ruleSelector: {}
  ruleNamespaceSelector: {}
  alerting:
    alertmanagers:
    - namespace: %[1]s
      name: alertmanager-operated
      port: web
  resources:
    requests: {cpu: 50m, memory: 200Mi}
    limits: {memory: 1Gi}
---
apiVersion: monitoring.coreos.com/v1
kind: Alertmanager
metadata:
  name: %[7]s
  namespace: %[1]s
spec:
  version: v%[8]s
  image: %[9]s
  replicas: 1
  alertmanagerConfigSelector: {}
  alertmanagerConfigNamespaceSelector: {}
  resources:
    requests: {cpu: 10m, memory: 50Mi}
    limits: {memory: 256Mi}
---
apiVersion: v1
kind: Service
metadata:
  name: %[10]s
  namespace: %[1]s
spec:
  selector:
    app.kubernetes.io/name: alertmanager
    alertmanager: %[7]s
  ports:
  - name: web
    port: 9093
    targetPort: web
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: kube-state-metrics
  namespace: %[1]s
spec:
  selector:
    matchLabels:
      app.kubernetes.io/name: kube-state-metrics
  endpoints:
  - port: http-metrics
    honorLabels: true
---
apiVersion: v1
kind: Service
metadata:
  name: %[5]s
  namespace: %[1]s
spec:
  selector:
    app.kubernetes.io/name: prometheus
    prometheus: %[2]s
  ports:
  - name: web
    port: 9090
    targetPort: web
`, MonitoringNamespace, PrometheusName, PrometheusVersion, PrometheusImage, PrometheusService, PrometheusScrapeInterval,
		AlertmanagerName, AlertmanagerVersion, AlertmanagerImage, AlertmanagerService)
}
