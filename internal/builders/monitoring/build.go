// Package monitoring renders the Shop's prometheus-operator objects:
// ServiceMonitors for the services, the collector and the databases, the
// alerting and recording rules, and the alert routing. Build is pure: it
// reads only its input.
package monitoring

import (
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/shopplatform/shop-operator/internal/render"
)

// Component is the app.kubernetes.io/component of every monitoring object.
const Component = "monitoring"

// Build returns the monitoring objects the Shop wants, or nothing.
func Build(in render.Input) ([]client.Object, error) {
	prom := in.Spec.Observability.Prometheus
	var out []client.Object
	if in.APIs.PrometheusOperator && ptr.Deref(prom.ServiceMonitors, false) {
		out = append(out, serviceMonitors(in)...)
	}
	if in.APIs.PrometheusOperator && ptr.Deref(prom.Rules, false) {
		rule, err := prometheusRule(in)
		if err != nil {
			return nil, err
		}
		out = append(out, rule)
	}
	amc, err := alertmanagerConfig(in)
	if err != nil {
		return nil, err
	}
	if amc != nil {
		out = append(out, amc)
	}
	return out, nil
}

// labels of every monitoring object: the component's labels plus the
// selector labels Prometheus and Alertmanager select on.
func labels(in render.Input) map[string]string {
	return render.WithLabels(in.Labels(Component), in.Spec.Observability.Prometheus.SelectorLabels)
}
