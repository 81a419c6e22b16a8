// Package telemetrytest holds the end-to-end telemetry test: one checkout
// through orders, catalog and payment (real Postgres, real HTTP on
// loopback) must produce one trace and logs that carry its trace ID. It is
// its own package because the test installs the global OpenTelemetry providers.
package telemetrytest
