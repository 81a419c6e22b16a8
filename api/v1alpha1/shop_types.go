package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Environment selects a profile of defaults for everything the Shop deploys.
// +kubebuilder:validation:Enum=development;testing;production
type Environment string

const (
	Development Environment = "development"
	Testing     Environment = "testing"
	Production  Environment = "production"
)

// LogLevel is the minimum level a service logs at.
// +kubebuilder:validation:Enum=debug;info;warn;error
type LogLevel string

// ShopSpec describes the shop to run. Every field is optional: the environment
// profile fills in what is not set (see docs/profiles.md).
// +kubebuilder:validation:XValidation:rule="self.environment != 'production' || !(self.?databases.?auth.?managed.?ephemeral.orValue(false) || self.?databases.?catalog.?managed.?ephemeral.orValue(false) || self.?databases.?orders.?managed.?ephemeral.orValue(false))",message="ephemeral database storage loses all data when a pod restarts and is not allowed in production: remove databases.*.managed.ephemeral"
// +kubebuilder:validation:XValidation:rule="self.?databases.?auth.?managed.?storageClassName.hasValue() == oldSelf.?databases.?auth.?managed.?storageClassName.hasValue() && self.?databases.?catalog.?managed.?storageClassName.hasValue() == oldSelf.?databases.?catalog.?managed.?storageClassName.hasValue() && self.?databases.?orders.?managed.?storageClassName.hasValue() == oldSelf.?databases.?orders.?managed.?storageClassName.hasValue()",message="storageClassName is immutable: the data lives on volumes of the old class"
// +kubebuilder:validation:XValidation:rule="self.?databases.?auth.?managed.?version.hasValue() == oldSelf.?databases.?auth.?managed.?version.hasValue() && self.?databases.?catalog.?managed.?version.hasValue() == oldSelf.?databases.?catalog.?managed.?version.hasValue() && self.?databases.?orders.?managed.?version.hasValue() == oldSelf.?databases.?orders.?managed.?version.hasValue()",message="version is immutable: a major Postgres upgrade needs a dump and restore (see docs/operations.md)"
// +kubebuilder:validation:XValidation:rule="self.?databases.?auth.?managed.?storageSize.hasValue() == oldSelf.?databases.?auth.?managed.?storageSize.hasValue() && self.?databases.?catalog.?managed.?storageSize.hasValue() == oldSelf.?databases.?catalog.?managed.?storageSize.hasValue() && self.?databases.?orders.?managed.?storageSize.hasValue() == oldSelf.?databases.?orders.?managed.?storageSize.hasValue()",message="storageSize is immutable: a StatefulSet cannot change its volume claims; grow the PersistentVolumeClaim itself (see docs/profiles.md)"
// +kubebuilder:validation:XValidation:rule="self.?databases.?auth.?managed.?ephemeral.hasValue() == oldSelf.?databases.?auth.?managed.?ephemeral.hasValue() && self.?databases.?catalog.?managed.?ephemeral.hasValue() == oldSelf.?databases.?catalog.?managed.?ephemeral.hasValue() && self.?databases.?orders.?managed.?ephemeral.hasValue() == oldSelf.?databases.?orders.?managed.?ephemeral.hasValue()",message="ephemeral is immutable: switching storage kind would lose the data"
// +kubebuilder:validation:XValidation:rule="self.?databases.?auth.?external.hasValue() == oldSelf.?databases.?auth.?external.hasValue() && self.?databases.?catalog.?external.hasValue() == oldSelf.?databases.?catalog.?external.hasValue() && self.?databases.?orders.?external.hasValue() == oldSelf.?databases.?orders.?external.hasValue()",message="switching a database between managed and external would leave its data behind: migrate the data first, then create a new Shop"
// +kubebuilder:validation:XValidation:rule="self.?environment.orValue('development') != 'production' || !self.?operations.?faultInjection.?payment.hasValue() || self.?operations.?faultInjection.?allowInProduction.orValue(false)",message="fault injection makes real charges fail and is not allowed in production: remove operations.faultInjection.payment, or set operations.faultInjection.allowInProduction to true"
// +kubebuilder:validation:XValidation:rule="self.environment == oldSelf.environment",message="environment is immutable: the profile decides storage (ephemeral or persistent, its size) and a change would replace the databases; create a new Shop and move the data"
type ShopSpec struct {
	// Environment chooses the profile of defaults: development, testing or production.
	// +kubebuilder:default=development
	// +optional
	Environment Environment `json:"environment,omitempty"`

	// Paused stops reconciling: nothing is created, changed or deleted until it is false again.
	// +optional
	Paused bool `json:"paused,omitempty"`

	// Image is the default image of the five services. The tag defaults to the
	// version the operator was built with.
	// +optional
	Image ImageSpec `json:"image,omitempty"`

	// Workloads tunes each of the five commerce services.
	// +optional
	Workloads Workloads `json:"workloads,omitempty"`

	// Databases of the services that keep state: auth, catalog and orders.
	// +optional
	Databases Databases `json:"databases,omitempty"`

	// Gateway exposes the storefront and the public APIs.
	// +optional
	Gateway GatewaySpec `json:"gateway,omitempty"`

	// Observability: collector, trace/log/metric backends, Prometheus, Grafana and alerting.
	// +optional
	Observability ObservabilitySpec `json:"observability,omitempty"`

	// Operations: load generation, synthetic checks and fault injection.
	// +optional
	Operations OperationsSpec `json:"operations,omitempty"`

	// Admin names the Shop's administrator, whom auth creates at start.
	// Without it no account can be an admin.
	// +optional
	Admin *AdminSpec `json:"admin,omitempty"`
}

// AdminSpec reads the administrator's credentials from a Secret.
type AdminSpec struct {
	// SecretName of a Secret in the Shop's namespace with the keys email and
	// password (at least 8 characters). At every start auth creates this
	// account as an admin, or makes the existing account of that email an
	// admin (an existing account keeps its password). The pods read the keys
	// from the Secret itself, and a change of either restarts auth. While the
	// Secret or a key is missing, auth starts without them and
	// ReferencesResolved names what is missing.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	SecretName string `json:"secretName"`
}

// ImageSpec names a container image.
type ImageSpec struct {
	// Repository, e.g. ghcr.io/shopplatform/shopd.
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([a-z0-9._/:-]*[a-z0-9])?$`
	// +optional
	Repository string `json:"repository,omitempty"`

	// Tag, e.g. v0.1.0.
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`
	// +optional
	Tag string `json:"tag,omitempty"`

	// PullPolicy of the image.
	// +kubebuilder:validation:Enum=Always;IfNotPresent;Never
	// +optional
	PullPolicy corev1.PullPolicy `json:"pullPolicy,omitempty"`
}

// Workloads holds the settings of each commerce service.
type Workloads struct {
	// +optional
	Frontend WorkloadSpec `json:"frontend,omitempty"`
	// +optional
	Auth WorkloadSpec `json:"auth,omitempty"`
	// +optional
	Catalog WorkloadSpec `json:"catalog,omitempty"`
	// +optional
	Orders WorkloadSpec `json:"orders,omitempty"`
	// +optional
	Payment WorkloadSpec `json:"payment,omitempty"`
}

// WorkloadSpec tunes one service.
// +kubebuilder:validation:XValidation:rule="!has(self.autoscaling) || !has(self.autoscaling.minReplicas) || !has(self.autoscaling.maxReplicas) || self.autoscaling.minReplicas <= self.autoscaling.maxReplicas",message="autoscaling.minReplicas must not exceed autoscaling.maxReplicas"
type WorkloadSpec struct {
	// Image overrides the Shop's image for this service.
	// +optional
	Image *ImageSpec `json:"image,omitempty"`

	// Replicas when autoscaling is off.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`

	// Resources of the service container.
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`

	// Env adds environment variables to the service container.
	// +kubebuilder:validation:MaxItems=64
	// +listType=map
	// +listMapKey=name
	// +optional
	Env []corev1.EnvVar `json:"env,omitempty"`

	// LogLevel of the service.
	// +optional
	LogLevel LogLevel `json:"logLevel,omitempty"`

	// Autoscaling with a HorizontalPodAutoscaler (on by default in production).
	// +optional
	Autoscaling *AutoscalingSpec `json:"autoscaling,omitempty"`
}

// AutoscalingSpec configures a HorizontalPodAutoscaler on CPU utilisation.
type AutoscalingSpec struct {
	// +optional
	Enabled *bool `json:"enabled,omitempty"`
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	MinReplicas *int32 `json:"minReplicas,omitempty"`
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	MaxReplicas *int32 `json:"maxReplicas,omitempty"`
	// TargetCPUUtilization in percent of the CPU request.
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:validation:Maximum=100
	// +optional
	TargetCPUUtilization *int32 `json:"targetCPUUtilization,omitempty"`
}

// Databases of the stateful services.
type Databases struct {
	// +optional
	Auth DatabaseSpec `json:"auth,omitempty"`
	// +optional
	Catalog DatabaseSpec `json:"catalog,omitempty"`
	// +optional
	Orders DatabaseSpec `json:"orders,omitempty"`
}

// DatabaseSpec is either a Postgres the operator runs (managed) or one that
// exists already (external). When neither is set, the database is managed.
// +kubebuilder:validation:XValidation:rule="!(has(self.managed) && has(self.external))",message="managed and external are mutually exclusive: set one of them"
type DatabaseSpec struct {
	// Managed runs Postgres as a StatefulSet in the Shop's namespace.
	// +optional
	Managed *ManagedDatabase `json:"managed,omitempty"`

	// External uses an existing Postgres; its connection is read from a Secret.
	// +optional
	External *ExternalDatabase `json:"external,omitempty"`
}

// ManagedDatabase is a Postgres the operator runs. Where its data lives cannot
// change: ShopSpec refuses adding or removing these fields, the rules here
// refuse changing their values.
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.storageClassName) || self.storageClassName == oldSelf.storageClassName",message="storageClassName is immutable: the data lives on volumes of the old class"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.version) || self.version == oldSelf.version",message="version is immutable: a major Postgres upgrade needs a dump and restore (see docs/operations.md)"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.storageSize) || quantity(self.storageSize).compareTo(quantity(oldSelf.storageSize)) == 0",message="storageSize is immutable: a StatefulSet cannot change its volume claims; grow the PersistentVolumeClaim itself (see docs/profiles.md)"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.ephemeral) || self.ephemeral == oldSelf.ephemeral",message="ephemeral is immutable: switching storage kind would lose the data"
type ManagedDatabase struct {
	// Version is the Postgres major version.
	// +kubebuilder:validation:Enum="15";"16";"17"
	// +optional
	Version string `json:"version,omitempty"`

	// Image overrides the Postgres image (default: postgres:<version>-alpine).
	// +kubebuilder:validation:MaxLength=255
	// +optional
	Image string `json:"image,omitempty"`

	// StorageSize of the data volume.
	// +optional
	StorageSize *resource.Quantity `json:"storageSize,omitempty"`

	// StorageClassName of the data volume (default: the cluster's default class).
	// +kubebuilder:validation:MaxLength=253
	// +optional
	StorageClassName *string `json:"storageClassName,omitempty"`

	// Ephemeral keeps the data in an emptyDir: fast and free, but lost on restart.
	// Only for development.
	// +optional
	Ephemeral *bool `json:"ephemeral,omitempty"`

	// Resources of the Postgres container.
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`

	// Backup schedules pg_dump runs.
	// +optional
	Backup *BackupSpec `json:"backup,omitempty"`
}

// BackupSpec configures scheduled pg_dump backups.
// +kubebuilder:validation:XValidation:rule="!has(self.s3) || self.?enabled.orValue(true)",message="backup.s3 uploads the backups: remove it or set backup.enabled to true"
type BackupSpec struct {
	// +optional
	Enabled *bool `json:"enabled,omitempty"`
	// Schedule in cron format: five fields (minute hour day-of-month month
	// day-of-week) or a descriptor such as @daily or @every 6h. A schedule of
	// that shape that never runs twice in a year (February 30th) is reported
	// in the Shop's Stalled condition.
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^(@(annually|yearly|monthly|weekly|daily|midnight|hourly)|@every \S+|\S+(\s+\S+){4})$`
	// +optional
	Schedule string `json:"schedule,omitempty"`
	// Retain this many backups.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +optional
	Retain *int32 `json:"retain,omitempty"`
	// StorageSize of the backup volume.
	// +optional
	StorageSize *resource.Quantity `json:"storageSize,omitempty"`
	// S3 also uploads every dump to an S3-compatible bucket (off-site copies
	// that survive the loss of the cluster).
	// +optional
	S3 *BackupS3Spec `json:"s3,omitempty"`
}

// BackupS3Spec names the bucket that backups are uploaded to.
type BackupS3Spec struct {
	// SecretName of a Secret in the Shop's namespace with the keys endpoint
	// (https://host[:port]), bucket, accessKeyID and secretAccessKey, and
	// optionally region. Dumps are stored under the key prefix NAMESPACE/SHOP/; old
	// ones are never deleted: expire them with the bucket's lifecycle rules.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	SecretName string `json:"secretName"`
}

// ExternalDatabase reads the connection of an existing Postgres from a Secret.
type ExternalDatabase struct {
	// SecretName of a Secret in the Shop's namespace with the keys
	// host, port, dbname, user and password. Optional: sslmode (libpq's
	// sslmode; verify-full is the sensible choice), and ca.crt, the PEM CA
	// the server's certificate is verified with (the services trust it as
	// their default root certificate; without it they verify with the
	// image's system CAs, and sslmode require does not verify at all).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	SecretName string `json:"secretName"`
}

// GatewaySpec exposes the shop.
type GatewaySpec struct {
	// Hosts the storefront answers on.
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$`
	// +listType=set
	// +optional
	Hosts []string `json:"hosts,omitempty"`

	// TLSSecretName of a kubernetes.io/tls Secret; when set, HTTP redirects to HTTPS.
	// +kubebuilder:validation:MaxLength=253
	// +optional
	TLSSecretName string `json:"tlsSecretName,omitempty"`

	// Istio routing and mesh security.
	// +optional
	Istio IstioSpec `json:"istio,omitempty"`
}

// MTLSMode of the mesh's PeerAuthentication.
// +kubebuilder:validation:Enum=STRICT;PERMISSIVE
type MTLSMode string

// IstioSpec configures Istio routing and security.
type IstioSpec struct {
	// Enabled renders Istio objects when Istio's CRDs are installed (default true).
	// +optional
	Enabled *bool `json:"enabled,omitempty"`

	// MTLSMode: STRICT in testing and production, PERMISSIVE in development by default.
	// +optional
	MTLSMode MTLSMode `json:"mtlsMode,omitempty"`

	// GatewaySelector selects the ingress gateway pods (default istio: ingressgateway).
	// +kubebuilder:validation:MaxProperties=16
	// +optional
	GatewaySelector map[string]string `json:"gatewaySelector,omitempty"`
}

// ObservabilitySpec configures telemetry for the whole shop.
type ObservabilitySpec struct {
	// +optional
	Collector CollectorSpec `json:"collector,omitempty"`
	// +optional
	Jaeger JaegerSpec `json:"jaeger,omitempty"`
	// +optional
	Loki LokiSpec `json:"loki,omitempty"`
	// +optional
	Datadog DatadogSpec `json:"datadog,omitempty"`
	// +optional
	NewRelic NewRelicSpec `json:"newRelic,omitempty"`
	// +optional
	Prometheus PrometheusSpec `json:"prometheus,omitempty"`
	// +optional
	Grafana GrafanaSpec `json:"grafana,omitempty"`
	// +optional
	Alerting AlertingSpec `json:"alerting,omitempty"`
}

// CollectorSpec configures the shop's OpenTelemetry collector.
type CollectorSpec struct {
	// +optional
	Enabled *bool `json:"enabled,omitempty"`
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=20
	// +optional
	Replicas *int32 `json:"replicas,omitempty"`
	// Image of the collector (contrib distribution).
	// +kubebuilder:validation:MaxLength=255
	// +optional
	Image string `json:"image,omitempty"`
	// SamplingPercentage of traces kept: head sampling in the services, or the
	// share of ordinary traces kept by tail sampling (errors and slow traces are
	// always kept).
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	SamplingPercentage *int32 `json:"samplingPercentage,omitempty"`
	// TailSampling decides on whole traces in the collector (production default).
	// +optional
	TailSampling *bool `json:"tailSampling,omitempty"`
	// SlowTraceThreshold: traces slower than this are always kept by tail sampling.
	// +optional
	SlowTraceThreshold *metav1.Duration `json:"slowTraceThreshold,omitempty"`
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`
}

// BackendMode tells how a telemetry backend is reached.
// +kubebuilder:validation:Enum=Deploy;External
type BackendMode string

const (
	// BackendDeploy runs the backend in the Shop's namespace.
	BackendDeploy BackendMode = "Deploy"
	// BackendExternal sends to an existing endpoint.
	BackendExternal BackendMode = "External"
)

// JaegerSpec sends traces to Jaeger over OTLP gRPC.
// +kubebuilder:validation:XValidation:rule="!self.?enabled.orValue(false) || self.?mode.orValue('Deploy') != 'External' || has(self.endpoint)",message="jaeger.endpoint is required when jaeger.mode is External"
type JaegerSpec struct {
	// +optional
	Enabled *bool `json:"enabled,omitempty"`
	// Mode: Deploy runs Jaeger v2 in the namespace; External uses endpoint.
	// +optional
	Mode BackendMode `json:"mode,omitempty"`
	// Endpoint of an existing Jaeger's OTLP gRPC receiver, host:port.
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Endpoint string `json:"endpoint,omitempty"`
	// Storage of a deployed Jaeger.
	// +kubebuilder:validation:Enum=memory;badger
	// +optional
	Storage string `json:"storage,omitempty"`
	// +kubebuilder:validation:MaxLength=255
	// +optional
	Image string `json:"image,omitempty"`
}

// LokiSpec sends logs to Grafana Loki over OTLP HTTP.
// +kubebuilder:validation:XValidation:rule="!self.?enabled.orValue(false) || self.?mode.orValue('Deploy') != 'External' || has(self.endpoint)",message="loki.endpoint is required when loki.mode is External"
type LokiSpec struct {
	// +optional
	Enabled *bool `json:"enabled,omitempty"`
	// +optional
	Mode BackendMode `json:"mode,omitempty"`
	// Endpoint of an existing Loki's OTLP endpoint, e.g. http://loki:3100/otlp.
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern=`^https?://`
	// +optional
	Endpoint string `json:"endpoint,omitempty"`
	// Retention of a deployed Loki.
	// +optional
	Retention *metav1.Duration `json:"retention,omitempty"`
	// +kubebuilder:validation:MaxLength=255
	// +optional
	Image string `json:"image,omitempty"`
}

// SecretKeyRef names a key of a Secret in the Shop's namespace.
type SecretKeyRef struct {
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`
}

// DatadogSpec exports all signals to Datadog.
// +kubebuilder:validation:XValidation:rule="!self.?enabled.orValue(false) || has(self.apiKeySecretRef)",message="datadog.apiKeySecretRef is required when datadog is enabled"
type DatadogSpec struct {
	// +optional
	Enabled *bool `json:"enabled,omitempty"`
	// Site, e.g. datadoghq.com or datadoghq.eu.
	// +kubebuilder:validation:Enum=datadoghq.com;us3.datadoghq.com;us5.datadoghq.com;datadoghq.eu;ap1.datadoghq.com;ddog-gov.com
	// +optional
	Site string `json:"site,omitempty"`
	// +optional
	APIKeySecretRef *SecretKeyRef `json:"apiKeySecretRef,omitempty"`
}

// NewRelicSpec exports all signals to New Relic over OTLP.
// +kubebuilder:validation:XValidation:rule="!self.?enabled.orValue(false) || has(self.licenseKeySecretRef)",message="newRelic.licenseKeySecretRef is required when newRelic is enabled"
type NewRelicSpec struct {
	// +optional
	Enabled *bool `json:"enabled,omitempty"`
	// Region selects the OTLP endpoint.
	// +kubebuilder:validation:Enum=US;EU
	// +optional
	Region string `json:"region,omitempty"`
	// +optional
	LicenseKeySecretRef *SecretKeyRef `json:"licenseKeySecretRef,omitempty"`
}

// PrometheusSpec configures prometheus-operator objects.
type PrometheusSpec struct {
	// ServiceMonitors for the services, the collector and the databases.
	// +optional
	ServiceMonitors *bool `json:"serviceMonitors,omitempty"`
	// Rules renders the alerting rules.
	// +optional
	Rules *bool `json:"rules,omitempty"`
	// ScrapeInterval, e.g. 30s.
	// +kubebuilder:validation:Pattern=`^[0-9]+(ms|s|m|h)$`
	// +optional
	ScrapeInterval string `json:"scrapeInterval,omitempty"`
	// SelectorLabels added to every monitoring object so Prometheus selects them,
	// e.g. release: kube-prometheus-stack.
	// +kubebuilder:validation:MaxProperties=16
	// +optional
	SelectorLabels map[string]string `json:"selectorLabels,omitempty"`
}

// GrafanaSpec configures dashboards delivered as ConfigMaps for Grafana's sidecar.
type GrafanaSpec struct {
	// +optional
	Dashboards *bool `json:"dashboards,omitempty"`
	// Folder the sidecar puts the dashboards in.
	// +kubebuilder:validation:MaxLength=128
	// +optional
	Folder string `json:"folder,omitempty"`
	// Labels the sidecar selects (default grafana_dashboard: "1").
	// +kubebuilder:validation:MaxProperties=16
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
}

// AlertingSpec configures SLOs and alert routing.
type AlertingSpec struct {
	// Routing renders an AlertmanagerConfig from the receivers.
	// +optional
	Routing *bool `json:"routing,omitempty"`
	// +kubebuilder:validation:MaxItems=16
	// +listType=map
	// +listMapKey=name
	// +optional
	Receivers []Receiver `json:"receivers,omitempty"`
	// +optional
	SLO SLOSpec `json:"slo,omitempty"`
}

// SLOSpec holds the shop's service level objectives. The latency threshold
// must be a bucket boundary of http.server.request.duration, where it is
// measured exactly.
// +kubebuilder:validation:XValidation:rule="!has(self.latencyThreshold) || duration(self.latencyThreshold) in [duration('5ms'), duration('10ms'), duration('25ms'), duration('50ms'), duration('75ms'), duration('100ms'), duration('250ms'), duration('500ms'), duration('750ms'), duration('1s'), duration('2500ms'), duration('5s'), duration('7500ms'), duration('10s')]",message="alerting.slo.latencyThreshold is not a bucket boundary of http.server.request.duration; use one of 5ms, 10ms, 25ms, 50ms, 75ms, 100ms, 250ms, 500ms, 750ms, 1s, 2.5s, 5s, 7.5s, 10s"
type SLOSpec struct {
	// Availability target in percent, e.g. "99.9".
	// +kubebuilder:validation:Pattern=`^(9[0-9](\.[0-9]{1,3})?)$`
	// +optional
	Availability string `json:"availability,omitempty"`
	// LatencyThreshold: requests faster than this count as good.
	// +optional
	LatencyThreshold *metav1.Duration `json:"latencyThreshold,omitempty"`
	// LatencyTarget in percent of requests under the threshold, e.g. "99".
	// +kubebuilder:validation:Pattern=`^(9[0-9](\.[0-9]{1,3})?)$`
	// +optional
	LatencyTarget string `json:"latencyTarget,omitempty"`
}

// Severity of alerts a receiver gets.
// +kubebuilder:validation:Enum=critical;warning;all
type Severity string

// Receiver is one alert channel.
// +kubebuilder:validation:XValidation:rule="[has(self.slack), has(self.pagerDuty), has(self.email), has(self.webhook)].filter(x, x).size() == 1",message="a receiver needs exactly one of slack, pagerDuty, email or webhook"
// +kubebuilder:validation:XValidation:rule="self.name != 'none'",message="alerting.receivers: the name 'none' is reserved for alerts no receiver takes; rename that receiver"
type Receiver struct {
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`
	Name string `json:"name"`
	// Severity this receiver gets (default all).
	// +optional
	Severity Severity `json:"severity,omitempty"`
	// +optional
	Slack *SlackReceiver `json:"slack,omitempty"`
	// +optional
	PagerDuty *PagerDutyReceiver `json:"pagerDuty,omitempty"`
	// +optional
	Email *EmailReceiver `json:"email,omitempty"`
	// +optional
	Webhook *WebhookReceiver `json:"webhook,omitempty"`
}

// SlackReceiver posts to a Slack channel.
type SlackReceiver struct {
	// +kubebuilder:validation:MaxLength=80
	// +optional
	Channel string `json:"channel,omitempty"`
	// APIURLSecretRef holds the incoming-webhook URL.
	APIURLSecretRef SecretKeyRef `json:"apiURLSecretRef"`
}

// PagerDutyReceiver pages through PagerDuty Events v2.
type PagerDutyReceiver struct {
	RoutingKeySecretRef SecretKeyRef `json:"routingKeySecretRef"`
}

// EmailReceiver sends mail.
type EmailReceiver struct {
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=254
	To string `json:"to"`
	// +kubebuilder:validation:MaxLength=254
	// +optional
	From string `json:"from,omitempty"`
	// Smarthost, host:port.
	// +kubebuilder:validation:MaxLength=253
	Smarthost string `json:"smarthost"`
	// +optional
	AuthPasswordSecretRef *SecretKeyRef `json:"authPasswordSecretRef,omitempty"`
}

// WebhookReceiver posts to a generic webhook; its URL is a secret.
type WebhookReceiver struct {
	URLSecretRef SecretKeyRef `json:"urlSecretRef"`
}

// OperationsSpec holds the testing extras.
type OperationsSpec struct {
	// LoadGenerator drives a weighted mix of shopper traffic.
	// +optional
	LoadGenerator LoadGeneratorSpec `json:"loadGenerator,omitempty"`
	// SyntheticCheck runs an end-to-end checkout on a schedule.
	// +optional
	SyntheticCheck SyntheticCheckSpec `json:"syntheticCheck,omitempty"`
	// FaultInjection makes the services fail on purpose, to test alerts,
	// dashboards and runbooks. Off in every profile; while it is on the
	// Shop's FaultInjection condition is True and says what is injected.
	// +optional
	FaultInjection FaultInjectionSpec `json:"faultInjection,omitempty"`
}

// FaultInjectionSpec switches on deliberate failures.
type FaultInjectionSpec struct {
	// Payment injects failures into the payment service's simulated
	// provider, on every charge whatever the card, as PAYMENT_FAULT_ERROR_RATIO
	// and PAYMENT_FAULT_LATENCY on the payment pods (a change rolls them; a
	// variable of the same name in workloads.payment.env wins). Refused in
	// production unless allowInProduction is true.
	// +optional
	Payment *PaymentFaultSpec `json:"payment,omitempty"`
	// AllowInProduction lets a production Shop set payment: real shoppers'
	// charges then fail. Only for a game day.
	// +optional
	AllowInProduction bool `json:"allowInProduction,omitempty"`
}

// PaymentFaultSpec is what the payment service's provider does wrong.
// +kubebuilder:validation:XValidation:rule="!has(self.latency) || (duration(self.latency) >= duration('0s') && duration(self.latency) <= duration('1m'))",message="operations.faultInjection.payment.latency must be between 0s and 1m"
type PaymentFaultSpec struct {
	// ErrorPercent of charges answered 503 provider_unavailable (0-100).
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	ErrorPercent *int32 `json:"errorPercent,omitempty"`
	// Latency added to every charge, e.g. 500ms (at most 1m). At or above
	// the provider timeout (3s) every charge fails with provider_timeout.
	// +optional
	Latency *metav1.Duration `json:"latency,omitempty"`
}

// LoadGeneratorSpec configures the load generator.
type LoadGeneratorSpec struct {
	// +optional
	Enabled *bool `json:"enabled,omitempty"`
	// RequestsPerSecond across all shoppers.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	// +optional
	RequestsPerSecond *int32 `json:"requestsPerSecond,omitempty"`
	// Duration of a run; empty runs until disabled.
	// +optional
	Duration *metav1.Duration `json:"duration,omitempty"`
}

// SyntheticCheckSpec configures the synthetic checkout.
type SyntheticCheckSpec struct {
	// +optional
	Enabled *bool `json:"enabled,omitempty"`
	// Schedule in cron format, as for backups (five fields or a descriptor).
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^(@(annually|yearly|monthly|weekly|daily|midnight|hourly)|@every \S+|\S+(\s+\S+){4})$`
	// +optional
	Schedule string `json:"schedule,omitempty"`
}

// ComponentStatus is the readiness of one child workload.
type ComponentStatus struct {
	// Name of the component, e.g. frontend or db-orders.
	Name string `json:"name"`
	// Kind of the object, e.g. Deployment.
	Kind string `json:"kind"`
	// Ready replicas over desired, e.g. 2/3.
	Ready string `json:"ready"`
}

// ShopStatus is the observed state of a Shop.
type ShopStatus struct {
	// ObservedGeneration is the generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, Reconciling and Stalled (kstatus), plus one per area.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Environment in effect.
	// +optional
	Environment Environment `json:"environment,omitempty"`

	// URL of the storefront.
	// +optional
	URL string `json:"url,omitempty"`

	// Components lists the readiness of each workload.
	// +listType=map
	// +listMapKey=name
	// +optional
	Components []ComponentStatus `json:"components,omitempty"`

	// ReadyComponents summarises Components, e.g. 8/8.
	// +optional
	ReadyComponents string `json:"readyComponents,omitempty"`
}

// Shop is a complete, observable online shop.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=shop
// +kubebuilder:printcolumn:name="Environment",type=string,JSONPath=`.status.environment`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Components",type=string,JSONPath=`.status.readyComponents`
// +kubebuilder:printcolumn:name="URL",type=string,JSONPath=`.status.url`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 40",message="metadata.name must be at most 40 characters: child names such as <name>-db-catalog must stay within Kubernetes limits"
type Shop struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec ShopSpec `json:"spec,omitempty"`
	// +optional
	Status ShopStatus `json:"status,omitempty"`
}

// ShopList is a list of Shops.
// +kubebuilder:object:root=true
type ShopList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Shop `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Shop{}, &ShopList{})
}

// Condition types of a Shop. Ready, Reconciling and Stalled follow kstatus;
// the others report one area each.
const (
	ConditionReady                 = "Ready"
	ConditionReconciling           = "Reconciling"
	ConditionStalled               = "Stalled"
	ConditionWorkloadsReady        = "WorkloadsReady"
	ConditionDatabasesReady        = "DatabasesReady"
	ConditionReferencesResolved    = "ReferencesResolved"
	ConditionDependenciesAvailable = "DependenciesAvailable"
	ConditionMeshReady             = "MeshReady"
	ConditionMonitoringReady       = "MonitoringReady"
	// FaultInjection is True while spec.operations.faultInjection (or a
	// PAYMENT_FAULT_* variable in workloads.payment.env) makes the
	// services fail on purpose; absent otherwise. It never affects Ready.
	ConditionFaultInjection = "FaultInjection"
	// One per switchable exporter the Shop turns on (removed when off).
	ConditionJaegerReady   = "JaegerReady"
	ConditionLokiReady     = "LokiReady"
	ConditionDatadogReady  = "DatadogReady"
	ConditionNewRelicReady = "NewRelicReady"
)
