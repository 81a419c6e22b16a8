#!/usr/bin/env bash
# Builds Jaeger v2 (itself a collector distribution) at the module release of
# the Shop's default Jaeger image (jaegertracing/jaeger:2.11.0 = module
# v1.74.0), to validate the config the operator renders for a deployed Jaeger
# (TestJaegerConfigValidates with SHOP_JAEGER). Cached outside the repo by
# version; prints the binary's path on its last line. Cold: about 10 min, 120 MB.
set -euo pipefail

JAEGER_MODULE_VERSION=${JAEGER_MODULE_VERSION:-1.74.0}
CACHE=${SHOP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shop-operator}
SRC="$CACHE/src/jaeger-$JAEGER_MODULE_VERSION"
BIN="$CACHE/bin/jaeger-$JAEGER_MODULE_VERSION/jaeger"

log() { echo "jaeger: $*" >&2; }

mkdir -p "$CACHE"
if [[ -x "$BIN" ]]; then echo "$BIN"; exit 0; fi
if command -v flock >/dev/null; then
  exec 9>"$CACHE/.jaeger.lock"
  flock -n 9 || { log "another build holds $CACHE/.jaeger.lock; waiting"; flock 9; }
  if [[ -x "$BIN" ]]; then echo "$BIN"; exit 0; fi
fi

mkdir -p "$SRC" "$(dirname "$BIN")"
if [[ ! -f "$SRC/go.sum" ]]; then
  printf 'module jaegerbinary\n\ngo 1.26\n' >"$SRC/go.mod"
  (cd "$SRC" && go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@v$JAEGER_MODULE_VERSION") >&2
fi
log "building (cold: about 10 minutes; cached afterwards in $(dirname "$BIN"))"
start=$SECONDS
(cd "$SRC" && go build -trimpath -ldflags=-s -o "$BIN.tmp" github.com/jaegertracing/jaeger/cmd/jaeger) >"$SRC/build.log" 2>&1 &
pid=$!
while kill -0 "$pid" 2>/dev/null; do
  sleep 30
  kill -0 "$pid" 2>/dev/null && log "  still building ($((SECONDS - start))s)"
done
if ! wait "$pid"; then
  log "building failed; log:"; tail -40 "$SRC/build.log" >&2; exit 1
fi
mv "$BIN.tmp" "$BIN"
log "  done in $((SECONDS - start))s"
echo "$BIN"
