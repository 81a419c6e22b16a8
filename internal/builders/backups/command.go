package backups

// The backup runs as a shell script in the database's own Postgres image, so
// pg_dump always matches the server's major version and no extra image is
// needed. The script reads the connection from the standard PG* variables and
// these:
const (
	// EnvBackupDir is the directory on the backups volume that holds the dumps.
	EnvBackupDir = "BACKUP_DIR"
	// EnvRetain is how many dumps of the database to keep (newest first).
	EnvRetain = "BACKUP_RETAIN"
	// EnvMetricsURL is the collector's OTLP/HTTP metrics endpoint; empty: no metrics.
	EnvMetricsURL = "OTLP_METRICS_URL"
	// EnvShop and EnvNamespace become the metrics' resource attributes.
	EnvShop      = "SHOP_NAME"
	EnvNamespace = "K8S_NAMESPACE_NAME"
)

// Metric names the backup pushes after every successful run, with the data
// point attribute database (auth, catalog, orders). Through the collector's
// Prometheus exporter they keep these names (the unit suffix is already there)
// and gain the labels namespace and shop from the scrape.
const (
	MetricLastSuccess = "shop_db_backup_last_success_timestamp_seconds"
	MetricSize        = "shop_db_backup_size_bytes"
	MetricDuration    = "shop_db_backup_duration_seconds"
)

// BackupDir is where the backups volume is mounted.
const BackupDir = "/backups"

// Command is the backup container's argv. The end-to-end test runs exactly
// this against a real Postgres.
func Command() []string { return []string{"/bin/sh", "-c", backupScript, "db-backup"} }

// backupScript dumps $PGDATABASE in custom format (compressed, restorable
// table by table with pg_restore), renames the dump into place only when
// pg_dump succeeded, keeps the newest $BACKUP_RETAIN dumps, and pushes the
// outcome as OTLP/JSON gauges with wget (busybox's in the alpine image;
// bounded by timeout, as busybox wget's own -T crashes in some builds). A
// failed push is reported but does not fail the backup: the missing metric
// raises ShopBackupMissing in time anyway.
const backupScript = `set -eu
umask 077
# /proc/uptime times the run to the hundredth of a second (busybox date has no %N).
seconds() { cut -d' ' -f1 /proc/uptime; }
start=$(seconds)
name="$PGDATABASE-$(date -u +%Y%m%dT%H%M%SZ).dump"
partial="$BACKUP_DIR/.$name.partial"
trap 'rm -f "$partial"' EXIT
pg_dump --format=custom --no-password --file="$partial"
mv "$partial" "$BACKUP_DIR/$name"
end=$(date +%s)
duration=$(awk -v a="$start" -v b="$(seconds)" 'BEGIN { printf "%.2f", b - a }')
size=$(wc -c <"$BACKUP_DIR/$name" | tr -d ' ')
echo "backed up $PGDATABASE to $name: $size bytes in $duration s"

# Keep the newest $BACKUP_RETAIN dumps of this database: names sort by time.
ls -1 "$BACKUP_DIR" | grep -E "^$PGDATABASE-[0-9]{8}T[0-9]{6}Z[.]dump\$" | sort -r |
  tail -n "+$((BACKUP_RETAIN + 1))" | while read -r old; do
    rm -f "$BACKUP_DIR/$old"
    echo "removed $old"
  done

[ -n "${OTLP_METRICS_URL:-}" ] || exit 0
gauge() {
  printf '{"name":"%s","unit":"%s","gauge":{"dataPoints":[{"timeUnixNano":"%s000000000","asDouble":%s,"attributes":[{"key":"database","value":{"stringValue":"%s"}}]}]}}' \
    "$1" "$2" "$end" "$3" "$PGDATABASE"
}
attr() { printf '{"key":"%s","value":{"stringValue":"%s"}}' "$1" "$2"; }
body=$(printf '{"resourceMetrics":[{"resource":{"attributes":[%s,%s,%s]},"scopeMetrics":[{"scope":{"name":"shop-db-backup"},"metrics":[%s,%s,%s]}]}]}' \
  "$(attr service.name db-backup)" "$(attr shop.name "$SHOP_NAME")" "$(attr k8s.namespace.name "$K8S_NAMESPACE_NAME")" \
  "$(gauge ` + MetricLastSuccess + ` s "$end")" \
  "$(gauge ` + MetricSize + ` By "$size")" \
  "$(gauge ` + MetricDuration + ` s "$duration")")
timeout 15 wget -q -O /dev/null --header 'Content-Type: application/json' --post-data "$body" "$OTLP_METRICS_URL" ||
  echo "could not push the backup's metrics to $OTLP_METRICS_URL" >&2
`

// RestoreArgs is the pg_restore command line that replaces the database's
// contents with a dump: objects are dropped first (--clean --if-exists), one
// transaction, so a failed restore leaves the database as it was.
func RestoreArgs(database, file string) []string {
	return []string{"pg_restore", "--clean", "--if-exists", "--single-transaction", "--exit-on-error", "--no-password", "--dbname", database, file}
}
