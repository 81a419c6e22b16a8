#!/usr/bin/env bash
# Builds kube-score (github.com/zegl/kube-score), the independent linter that
# test/lint runs over every profile's render, from the Go module proxy, and
# caches it by version outside the repo so a fresh clone on the same machine
# reuses it. Cold: about a minute.
#
#   hack/kube-score.sh    # prints the kube-score binary's path on its last line
set -euo pipefail

KUBE_SCORE_VERSION=${KUBE_SCORE_VERSION:-v1.20.0}
CACHE=${SHOP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shop-operator}
DIR="$CACHE/bin/kube-score-$KUBE_SCORE_VERSION"
BIN="$DIR/kube-score"

log() { echo "kube-score: $*" >&2; }

mkdir -p "$CACHE"
if [[ -x "$BIN" ]]; then echo "$BIN"; exit 0; fi

# One build at a time per cache (parallel test packages may call this).
if command -v flock >/dev/null; then
  exec 9>"$CACHE/.kube-score.lock"
  flock -n 9 || { log "another build holds $CACHE/.kube-score.lock; waiting"; flock 9; }
  if [[ -x "$BIN" ]]; then echo "$BIN"; exit 0; fi
fi

log "building $KUBE_SCORE_VERSION (cached afterwards in $DIR)"
tmp=$(mktemp -d "$CACHE/.kube-score-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# GOFLAGS of the caller (-mod=vendor, ...) do not apply to a go install @version.
GOFLAGS= GOBIN="$tmp" go install -trimpath -ldflags=-s "github.com/zegl/kube-score/cmd/kube-score@$KUBE_SCORE_VERSION" >&2
mkdir -p "$DIR"
mv "$tmp/kube-score" "$BIN"
echo "$BIN"
