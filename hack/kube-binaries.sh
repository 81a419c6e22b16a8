#!/usr/bin/env bash
# Builds the Kubernetes control-plane binaries that tests and `make demo` run,
# from the Go module proxy (no download site is reachable), and caches them by
# version outside the repo so a fresh clone on the same machine reuses them.
#
#   hack/kube-binaries.sh envtest   # kube-apiserver + etcd            (make test)
#   hack/kube-binaries.sh cluster   # + controller-manager, scheduler, kwok (make demo, e2e)
#
# Prints the directory that holds the binaries on its last line.
set -euo pipefail

KUBE_VERSION=${KUBE_VERSION:-1.37.2}
ETCD_VERSION=${ETCD_VERSION:-3.6.16}
KWOK_VERSION=${KWOK_VERSION:-0.8.0}
CACHE=${SHOP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shop-operator}
BIN="$CACHE/bin/k8s-$KUBE_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION"
WHAT=${1:-envtest}
mkdir -p "$BIN"

log() { echo "kube-binaries: $*" >&2; }

# One build at a time per cache (parallel test packages may all call this).
if command -v flock >/dev/null; then
  exec 9>"$CACHE/.lock"
  flock -n 9 || { log "another build holds $CACHE/.lock; waiting"; flock 9; }
fi

# build_with_progress NAME DIR CMD...: runs a long go build with a heartbeat.
build_with_progress() {
  local name=$1 dir=$2; shift 2
  local start=$SECONDS
  log "building $name (cold: several minutes, cached afterwards in $BIN)"
  ( cd "$dir" && "$@" ) >"$dir/build.log" 2>&1 &
  local pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 30
    kill -0 "$pid" 2>/dev/null && log "  $name: still building ($((SECONDS - start))s)"
  done
  if ! wait "$pid"; then
    log "building $name failed; log:"; tail -40 "$dir/build.log" >&2; exit 1
  fi
  log "  $name: done in $((SECONDS - start))s"
}

kube_module() {
  local dir="$CACHE/src/kubernetes-$KUBE_VERSION"
  if [[ ! -f "$dir/go.sum" ]]; then
    mkdir -p "$dir"
    local gomod
    gomod=$(cd "$dir" && go mod download -json "k8s.io/kubernetes@v$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    {
      echo "module kubebinaries"
      echo
      echo "go 1.26"
      echo
      echo "require k8s.io/kubernetes v$KUBE_VERSION"
      echo
      # Kubernetes' own go.mod maps every staging module to ./staging; map them
      # to the published module of the same release instead.
      grep -E '^\s+k8s.io/[^ ]+ => ./staging/' "$gomod" |
        awk -v v="v0.${KUBE_VERSION#1.}" '{print "replace " $1 " => " $1 " " v}'
    } >"$dir/go.mod"
    printf 'package tools\n\nimport (\n\t_ "k8s.io/kubernetes/cmd/kube-apiserver"\n\t_ "k8s.io/kubernetes/cmd/kube-controller-manager"\n\t_ "k8s.io/kubernetes/cmd/kube-scheduler"\n\t_ "k8s.io/kubernetes/cmd/kubelet"\n\t_ "k8s.io/kubernetes/cmd/kube-proxy"\n)\n' >"$dir/tools.go"
    (cd "$dir" && go mod tidy) >&2
  fi
  echo "$dir"
}

build_kube() {
  local name=$1
  [[ -x "$BIN/$name" ]] && return
  local dir; dir=$(kube_module)
  build_with_progress "$name" "$dir" go build -trimpath -ldflags=-s -o "$BIN/$name" "k8s.io/kubernetes/cmd/$name"
}

build_etcd() {
  [[ -x "$BIN/etcd" ]] && return
  local dir="$CACHE/src/etcd-$ETCD_VERSION"
  mkdir -p "$dir"
  if [[ ! -f "$dir/go.sum" ]]; then
    printf 'module etcdbinary\n\ngo 1.26\n\nrequire go.etcd.io/etcd/server/v3 v%s\n' "$ETCD_VERSION" >"$dir/go.mod"
    printf 'package tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >"$dir/tools.go"
    (cd "$dir" && go mod tidy) >&2
  fi
  build_with_progress etcd "$dir" go build -trimpath -ldflags=-s -o "$BIN/etcd" go.etcd.io/etcd/server/v3
}

build_kwok() {
  local dir="$CACHE/src/kwok-$KWOK_VERSION"
  # The stage set changed once (volume stages added): a cache with the binary
  # but an older stage set only refreshes the stages.
  [[ -x "$BIN/kwok" && -f "$BIN/kwok-stages/pvc-provision.yaml" ]] && return
  mkdir -p "$dir"
  if [[ ! -f "$dir/go.sum" ]]; then
    printf 'module kwokbinary\n\ngo 1.26\n' >"$dir/go.mod"
    (cd "$dir" && go get -tool "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION") >&2
  fi
  if [[ ! -x "$BIN/kwok" ]]; then
    build_with_progress kwok "$dir" go build -trimpath -ldflags=-s -o "$BIN/kwok" sigs.k8s.io/kwok/cmd/kwok
  fi
  local src
  src=$(cd "$dir" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
  # Only the Stage documents: kustomization.yaml files share one name (each cp
  # overwrote the last) and the volume StorageClass is created by the cluster
  # starter (internal/localcluster), not by kwok.
  rm -rf "$BIN/kwok-stages" && mkdir -p "$BIN/kwok-stages"
  local d f
  for d in node/fast node/heartbeat pod/fast volume/fast; do
    for f in "$src/kustomize/stage/$d"/*.yaml; do
      if grep -q '^kind: Stage$' "$f"; then cp "$f" "$BIN/kwok-stages/"; fi
    done
  done
  chmod -R u+w "$BIN/kwok-stages"
}

build_etcd
build_kube kube-apiserver
if [[ "$WHAT" == cluster || "$WHAT" == node ]]; then
  build_kube kube-controller-manager
  build_kube kube-scheduler
  build_kwok
fi
if [[ "$WHAT" == node ]]; then
  build_kube kubelet
  build_kube kube-proxy
fi
echo "$BIN"
