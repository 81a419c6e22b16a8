#!/usr/bin/env bash
# Copies the third-party CRDs that the tests install into the test API server
# from their Go modules (pinned versions below) into test/crds/. Run it after
# changing a version and commit the result; tests never reach the network.
set -euo pipefail
cd "$(dirname "$0")/.."
PROM_OPERATOR=v0.85.0
ISTIO_API=v1.32.0
OTEL_OPERATOR=v0.140.0

dir() { go mod download -json "$1" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p'; }
out=test/crds
rm -rf "$out" && mkdir -p "$out"
prom=$(dir github.com/prometheus-operator/prometheus-operator@$PROM_OPERATOR)
for k in servicemonitors podmonitors prometheusrules alertmanagerconfigs; do
  cp "$prom/example/prometheus-operator-crd/monitoring.coreos.com_$k.yaml" "$out/"
done
cp "$(dir istio.io/api@$ISTIO_API)/kubernetes/customresourcedefinitions.gen.yaml" "$out/istio.yaml"
cp "$(dir github.com/open-telemetry/opentelemetry-operator@$OTEL_OPERATOR)/config/crd/bases/opentelemetry.io_opentelemetrycollectors.yaml" "$out/"
chmod -R u+w "$out"
{
  echo "# Third-party CRDs for tests"
  echo
  echo "Copied by hack/update-third-party-crds.sh from prometheus-operator $PROM_OPERATOR,"
  echo "istio.io/api $ISTIO_API and opentelemetry-operator $OTEL_OPERATOR. Do not edit."
} >"$out/README.md"
