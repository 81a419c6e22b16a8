package monitoring

import (
	"fmt"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/shopplatform/shop-operator/internal/render"
)

// Ports scraped, by name.
const (
	// ServiceAdminPort is the services' admin port (/metrics).
	ServiceAdminPort = render.AdminPortName
	// CollectorPrometheusPort is the collector's Prometheus exporter (pipeline
	// metrics such as span metrics), on the Service <shop>-collector.
	CollectorPrometheusPort = "prometheus"
	// CollectorMonitoringPort is the collector's own telemetry (otelcol_*), on
	// the Service <shop>-collector-monitoring that the opentelemetry-operator creates.
	CollectorMonitoringPort = "monitoring"
	// DatabaseMetricsPort is the postgres_exporter sidecar on <shop>-<svc>-db.
	DatabaseMetricsPort = "metrics"
)

// Every series scraped for a Shop carries the labels shop and service, set
// here by relabelling, so rules, routing and dashboards group on the same
// names whatever the Kubernetes labels are.
func serviceMonitors(in render.Input) []client.Object {
	var out []client.Object
	for _, svc := range render.Services {
		out = append(out, serviceMonitor(in, in.Name(svc),
			metav1.LabelSelector{MatchLabels: in.SelectorLabels(svc)},
			endpoint(in, ServiceAdminPort, "/metrics", static("service", svc))))
	}

	// The opentelemetry-operator names and labels the collector's Services
	// (instance <namespace>.<collector>): the gateway <shop> and, with tail
	// sampling, the sampler tier <shop>-sampler. Their base and monitoring
	// Services carry the ports (the headless one would scrape everything twice).
	collector := metav1.LabelSelector{
		MatchLabels: map[string]string{"app.kubernetes.io/managed-by": "opentelemetry-operator"},
		MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "app.kubernetes.io/instance", Operator: metav1.LabelSelectorOpIn, Values: []string{
				in.Shop.Namespace + "." + in.Shop.Name, in.Shop.Namespace + "." + in.Name("sampler")}},
			{Key: "operator.opentelemetry.io/collector-service-type", Operator: metav1.LabelSelectorOpIn,
				Values: []string{"base", "monitoring"}},
		},
	}
	// The pipeline's metrics keep the labels the collector gives them (their
	// own job and instance, from service.namespace and service.name).
	pipeline := endpoint(in, CollectorPrometheusPort, "/metrics", static("service", "collector"))
	pipeline.HonorLabels = true
	own := endpoint(in, CollectorMonitoringPort, "/metrics", static("service", "collector"))
	own.MetricRelabelConfigs = CollectorSignalRelabelings()
	out = append(out, serviceMonitor(in, in.Name("collector"), collector, pipeline, own))

	// One monitor for the databases: keep only the Shop's database Services and
	// name the service that owns each one, so a database alert inhibits that
	// service's alerts.
	dbNames := fmt.Sprintf("%s-(%s|%s|%s)-db", in.Shop.Name, render.Databases[0], render.Databases[1], render.Databases[2])
	db := endpoint(in, DatabaseMetricsPort, "/metrics",
		monitoringv1.RelabelConfig{Action: "keep", SourceLabels: []monitoringv1.LabelName{"__meta_kubernetes_service_name"}, Regex: dbNames},
		monitoringv1.RelabelConfig{Action: "replace", SourceLabels: []monitoringv1.LabelName{"__meta_kubernetes_service_name"},
			Regex: dbNames, TargetLabel: "service", Replacement: ptr.To("$1")})
	out = append(out, serviceMonitor(in, in.Name("databases"),
		metav1.LabelSelector{MatchLabels: map[string]string{render.LabelShop: in.Shop.Name}}, db))
	return out
}

func serviceMonitor(in render.Input, name string, sel metav1.LabelSelector, eps ...monitoringv1.Endpoint) *monitoringv1.ServiceMonitor {
	meta := in.ObjectMeta(name, Component)
	meta.Labels = labels(in)
	return &monitoringv1.ServiceMonitor{
		ObjectMeta: meta,
		Spec: monitoringv1.ServiceMonitorSpec{
			Selector:          sel,
			NamespaceSelector: monitoringv1.NamespaceSelector{MatchNames: []string{in.Shop.Namespace}},
			Endpoints:         eps,
		},
	}
}

// endpoint scrapes a named port and adds the shop label, then extra relabellings.
func endpoint(in render.Input, port, path string, extra ...monitoringv1.RelabelConfig) monitoringv1.Endpoint {
	return monitoringv1.Endpoint{
		Port:           port,
		Path:           path,
		Interval:       monitoringv1.Duration(in.Spec.Observability.Prometheus.ScrapeInterval),
		RelabelConfigs: append([]monitoringv1.RelabelConfig{static("shop", in.Shop.Name)}, extra...),
	}
}

// static sets a target label to a fixed value.
func static(label, value string) monitoringv1.RelabelConfig {
	return monitoringv1.RelabelConfig{Action: "replace", TargetLabel: label, Replacement: ptr.To(value)}
}

// CollectorSignalRelabelings rename the collector's otel.signal label (on
// otelcol_processor_* series) to otel_signal, the name rules and dashboards
// use: a Prometheus 3 with UTF-8 names stores it as otel.signal, a
// legacy-names Prometheus already receives otel_signal (then both are no-ops).
func CollectorSignalRelabelings() []monitoringv1.RelabelConfig {
	return []monitoringv1.RelabelConfig{
		{Action: "labelmap", Regex: `otel\.signal`, Replacement: ptr.To("otel_signal")},
		{Action: "labeldrop", Regex: `otel\.signal`},
	}
}
