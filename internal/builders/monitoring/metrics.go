package monitoring

// The metric names that the rules and dashboards query, as Prometheus sees
// them. This is the one list: a test compares the services' part with
// docs/metrics.md, and the rule and dashboard tests refuse any query that
// names a metric missing here.

// Source tells who emits a metric.
type Source string

const (
	// FromServices: the commerce services' /metrics (OTel Go SDK, Prometheus exporter).
	FromServices Source = "services"
	// FromCollector: the collector's own telemetry (service.telemetry, port 8888).
	FromCollector Source = "collector"
	// FromPostgresExporter: the postgres_exporter sidecar of each managed database.
	FromPostgresExporter Source = "postgres_exporter"
	// FromKubeStateMetrics: kube-state-metrics, installed with the Prometheus stack.
	FromKubeStateMetrics Source = "kube-state-metrics"
	// FromPrometheus: series Prometheus writes itself for every target.
	FromPrometheus Source = "prometheus"
	// FromOperations: the load generator and the synthetic checkout (shopd
	// loadgen, shopd synthetic), pushed over OTLP and re-exported by the
	// collector with their resource attributes as labels (service_name).
	FromOperations Source = "operations"
)

// Services' metrics. HTTP server metrics follow the OTel semantic conventions
// (otelhttp); the histogram's buckets are the semconv advice, in seconds.
const (
	HTTPServerDuration       = "http_server_request_duration_seconds"
	HTTPServerDurationBucket = HTTPServerDuration + "_bucket"
	HTTPServerDurationCount  = HTTPServerDuration + "_count"
	HTTPServerDurationSum    = HTTPServerDuration + "_sum"

	AuthLogins        = "shop_auth_logins_total"        // label outcome: success, failure, locked
	AuthRegistrations = "shop_auth_registrations_total" //
	StockConflicts    = "shop_stock_reservation_conflicts_total"
	StockReservations = "shop_stock_reservations_total" // label operation: reserve, release, commit
	OrdersPlaced      = "shop_orders_placed_total"      // label currency
	OrderValueSum     = "shop_order_value_sum"          // histogram of confirmed orders' value in minor units, label currency
	OrderValueCount   = "shop_order_value_count"
	Checkouts         = "shop_checkouts_total" // label outcome: confirmed or the failure code
	Payments          = "shop_payments_total"  // labels outcome, currency
	PaymentRefunds    = "shop_payment_refunds_total"
)

// The Go runtime's and the process' metrics of every service
// (client_golang's Go and process collectors, scrape only).
const (
	ProcessCPUSeconds     = "process_cpu_seconds_total"
	ProcessResidentMemory = "process_resident_memory_bytes"
	GoHeapAlloc           = "go_memstats_heap_alloc_bytes"
	GoGoroutines          = "go_goroutines"
	GoGCDuration          = "go_gc_duration_seconds" // summary of GC pauses
	GoGCDurationCount     = GoGCDuration + "_count"
	GoGCDurationSum       = GoGCDuration + "_sum"
)

// Load generator and synthetic checkout (docs/operations-testing.md).
const (
	LoadgenRequests               = "shop_loadgen_requests_total" // labels scenario, outcome
	LoadgenDuration               = "shop_loadgen_request_duration_seconds"
	LoadgenDurationBucket         = LoadgenDuration + "_bucket" // label scenario
	LoadgenDurationCount          = LoadgenDuration + "_count"
	LoadgenDurationSum            = LoadgenDuration + "_sum"
	SyntheticRuns                 = "shop_synthetic_runs_total"            // label result: pass, fail
	SyntheticStepDuration         = "shop_synthetic_step_duration_seconds" // gauge of the last run, label step
	SyntheticLastSuccessTimestamp = "shop_synthetic_last_success_timestamp_seconds"
)

// The tail_sampling processor's own counters (it is not built on
// processorhelper, so it reports no otelcol_processor_incoming/outgoing_items):
// traces decided, with label sampled ("true", "false"), overall and per policy
// (label policy). Names as the collector v0.161 serves them.
const (
	TailSamplingTraces       = "otelcol_processor_tail_sampling_global_count_traces_sampled"
	TailSamplingPolicyTraces = "otelcol_processor_tail_sampling_count_traces_sampled"
)

// PaymentFailedOutcomes is the regular expression of the payment outcomes
// that count as failures: the provider's, not the customer's (succeeded,
// card_declined and insufficient_funds are normal business).
const PaymentFailedOutcomes = "provider_timeout|provider_unavailable"

// Collector internal telemetry at v0.161 (receiverhelper, exporterhelper and
// processorhelper documentation). The processor "dropped" counters are gone
// since v0.110: data is lost when an exporter's queue is full (enqueue_failed)
// or a receiver refuses it (memory limiter).
var collectorSignals = []string{"spans", "metric_points", "log_records"}

func collectorMetric(kind, signal string) string { return "otelcol_" + kind + "_" + signal }

// postgres_exporter and kube-state-metrics.
const (
	PgUp                  = "pg_up"
	PgStatActivityCount   = "pg_stat_activity_count"
	PgMaxConnections      = "pg_settings_max_connections"
	PgDatabaseSize        = "pg_database_size_bytes"
	PgXactCommit          = "pg_stat_database_xact_commit"
	PgXactRollback        = "pg_stat_database_xact_rollback"
	PgDeadlocks           = "pg_stat_database_deadlocks"
	KubeContainerRestarts = "kube_pod_container_status_restarts_total"
	KubeCronJobCreated    = "kube_cronjob_created"      // labels namespace, cronjob
	KubeCronJobSuspend    = "kube_cronjob_spec_suspend" // 1 while spec.suspend is true
	Up                    = "up"
)

// Metrics lists every metric name rules and dashboards may use, with its source.
func Metrics() map[string]Source {
	m := map[string]Source{
		HTTPServerDurationBucket: FromServices, HTTPServerDurationCount: FromServices, HTTPServerDurationSum: FromServices,
		AuthLogins: FromServices, AuthRegistrations: FromServices,
		StockConflicts: FromServices, StockReservations: FromServices,
		OrdersPlaced: FromServices, OrderValueSum: FromServices, OrderValueCount: FromServices, Checkouts: FromServices, Payments: FromServices,
		PaymentRefunds:    FromServices,
		ProcessCPUSeconds: FromServices, ProcessResidentMemory: FromServices, GoHeapAlloc: FromServices, GoGoroutines: FromServices,
		GoGCDurationCount: FromServices, GoGCDurationSum: FromServices,

		PgUp: FromPostgresExporter, PgStatActivityCount: FromPostgresExporter, PgMaxConnections: FromPostgresExporter,
		PgDatabaseSize: FromPostgresExporter, PgXactCommit: FromPostgresExporter, PgXactRollback: FromPostgresExporter,
		PgDeadlocks: FromPostgresExporter,

		LoadgenRequests: FromOperations, LoadgenDurationBucket: FromOperations, LoadgenDurationCount: FromOperations,
		LoadgenDurationSum: FromOperations, SyntheticRuns: FromOperations, SyntheticStepDuration: FromOperations,
		SyntheticLastSuccessTimestamp: FromOperations,

		KubeContainerRestarts: FromKubeStateMetrics, KubeCronJobCreated: FromKubeStateMetrics, KubeCronJobSuspend: FromKubeStateMetrics,
		Up: FromPrometheus,
	}
	for _, s := range collectorSignals {
		for _, kind := range []string{"receiver_accepted", "receiver_refused", "exporter_sent", "exporter_send_failed", "exporter_enqueue_failed"} {
			m[collectorMetric(kind, s)] = FromCollector
		}
	}
	m["otelcol_processor_incoming_items"] = FromCollector
	m["otelcol_processor_outgoing_items"] = FromCollector
	m["otelcol_exporter_queue_size"] = FromCollector
	m["otelcol_exporter_queue_capacity"] = FromCollector
	m[TailSamplingTraces] = FromCollector
	m[TailSamplingPolicyTraces] = FromCollector
	return m
}
