#!/usr/bin/env bash
# Builds the collector distribution described by builder-config.yaml (the
# components the operator renders, at the Shop's default collector release)
# with the collector builder pinned in this folder's go.mod, and caches the
# binary outside the repo, keyed by the manifest's content, so a fresh clone on
# the same machine reuses it.
#
#   hack/otelcol/build.sh     # prints the otelcol binary's path on its last line
#
# The builder's own `go mod tidy` step fails on test-only imports of some
# dependencies that the proxy does not serve (k8sattributes' tests need
# pkg/semconvtest@v0.161.0): the builder writes the sources and go.mod before
# that step, so a failed tidy is tolerated and `go build` resolves the modules
# itself with GOFLAGS=-mod=mod. Cold: several minutes and ~70 MB.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${SHOP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shop-operator}
KEY=$(cat "$HERE/builder-config.yaml" "$HERE/go.mod" | sha256sum | cut -c1-12)
SRC="$CACHE/src/otelcol-$KEY"
BIN="$CACHE/bin/otelcol-$KEY/otelcol-shop"

log() { echo "otelcol: $*" >&2; }

mkdir -p "$CACHE"
if [[ -x "$BIN" ]]; then echo "$BIN"; exit 0; fi

# One build at a time per cache (parallel test packages may call this).
if command -v flock >/dev/null; then
  exec 9>"$CACHE/.otelcol.lock"
  flock -n 9 || { log "another build holds $CACHE/.otelcol.lock; waiting"; flock 9; }
  if [[ -x "$BIN" ]]; then echo "$BIN"; exit 0; fi
fi

log "generating the distribution in $SRC"
rm -rf "$SRC" && mkdir -p "$SRC"
sed "s|^\(  output_path:\).*|\1 $SRC|" "$HERE/builder-config.yaml" >"$SRC.yaml"
if ! (cd "$HERE" && go tool builder --config "$SRC.yaml" --skip-compilation) >"$SRC.log" 2>&1; then
  if [[ ! -f "$SRC/go.mod" || ! -f "$SRC/components.go" ]]; then
    log "the builder failed; log:"; tail -40 "$SRC.log" >&2; exit 1
  fi
  log "the builder's go mod tidy failed (test-only imports the proxy does not serve); building anyway"
fi

log "building (cold: several minutes; cached afterwards in $(dirname "$BIN"))"
start=$SECONDS
mkdir -p "$(dirname "$BIN")"
(cd "$SRC" && GOFLAGS=-mod=mod go build -trimpath -ldflags=-s -o "$BIN.tmp" .) >>"$SRC.log" 2>&1 &
pid=$!
while kill -0 "$pid" 2>/dev/null; do
  sleep 30
  kill -0 "$pid" 2>/dev/null && log "  still building ($((SECONDS - start))s)"
done
if ! wait "$pid"; then
  log "building failed; log:"; tail -40 "$SRC.log" >&2; exit 1
fi
mv "$BIN.tmp" "$BIN"
log "  done in $((SECONDS - start))s"
echo "$BIN"
