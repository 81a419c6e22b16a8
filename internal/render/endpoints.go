package render

import (
	"fmt"

	"k8s.io/utils/ptr"
)

// Ports every service and database listens on.
const (
	// HTTPPort serves a service's API (HTTP_ADDR).
	HTTPPort = 8080
	// AdminPort serves /healthz, /readyz and /metrics (ADMIN_ADDR).
	AdminPort = 9090
	// PostgresPort is a managed database's port.
	PostgresPort = 5432
	// PostgresExporterPort serves the metrics of the postgres_exporter
	// sidecar next to a managed database.
	PostgresExporterPort = 9187
	// OTLPGRPCPort is the collector's OTLP gRPC receiver.
	OTLPGRPCPort = 4317

	// HTTPPortName and AdminPortName name HTTPPort and AdminPort on the
	// pods and Services that serve them: probes and ServiceMonitors use them.
	HTTPPortName  = "http"
	AdminPortName = "http-admin"
)

// ServiceURL is the in-cluster base URL of a commerce service, e.g.
// http://demo-catalog:8080.
func (in Input) ServiceURL(svc string) string {
	return fmt.Sprintf("http://%s:%d", in.Name(svc), HTTPPort)
}

// GatewayTLS tells whether shoppers reach the Shop over HTTPS: the gateway
// terminates TLS with the Shop's certificate and redirects plain HTTP. The
// mesh builder serves it; the frontend then marks its cookies Secure.
func (in Input) GatewayTLS() bool { return in.Spec.Gateway.TLSSecretName != "" }

// OTLPEndpoint is where the services send OTLP gRPC: the Service that the
// opentelemetry-operator creates for the collector CR named <shop>. It is
// empty when no collector runs (disabled, or the operator is not installed),
// so the services export nothing rather than retrying into the void.
func (in Input) OTLPEndpoint() string {
	if !in.APIs.OpenTelemetryOperator || !ptr.Deref(in.Spec.Observability.Collector.Enabled, false) {
		return ""
	}
	return fmt.Sprintf("http://%s:%d", in.Name("collector"), OTLPGRPCPort)
}
