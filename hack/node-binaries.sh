#!/usr/bin/env bash
# Builds what a real node of the local cluster runs besides kubelet and
# kube-proxy (those come from hack/kube-binaries.sh node), from the Go module
# proxy and Debian, and caches each by version outside the repo:
#
#   runc, containerd (+ shim, ctr), the CNI plugins bridge/loopback/host-local/portmap,
#   kube-network-policies (the NetworkPolicy enforcer), and the programs the
#   cluster's add-on images hold: CoreDNS, local-path-provisioner,
#   opentelemetry-operator, postgres_exporter, prometheus-operator and its
#   prometheus-config-reloader, Prometheus (Debian's lacks Kubernetes
#   service discovery), Alertmanager and kube-state-metrics.
#
#   hack/node-binaries.sh      # prints the directory holding all of them on its last line
#
# Each program is built with `go install PKG@VERSION` (the module's own go.mod
# pins its dependencies, as its release does), or, where the module proxy
# refuses the module's version list, from a throwaway module that requires it.
# Cold: about 15 minutes on a quiet 2-core machine.
set -euo pipefail

RUNC_VERSION=${RUNC_VERSION:-1.5.3}
CONTAINERD_VERSION=${CONTAINERD_VERSION:-2.4.2}
CNI_PLUGINS_VERSION=${CNI_PLUGINS_VERSION:-1.10.0}
KUBE_NETWORK_POLICIES_VERSION=${KUBE_NETWORK_POLICIES_VERSION:-0.8.0}
COREDNS_VERSION=${COREDNS_VERSION:-1.15.0}
LOCAL_PATH_PROVISIONER_VERSION=${LOCAL_PATH_PROVISIONER_VERSION:-0.0.30}
OTEL_OPERATOR_VERSION=${OTEL_OPERATOR_VERSION:-0.140.0}
POSTGRES_EXPORTER_VERSION=${POSTGRES_EXPORTER_VERSION:-0.17.1}
# The release whose CRDs are under test/crds (the proxy serves its main module
# only at some versions; 0.85.0 is one).
PROMETHEUS_OPERATOR_VERSION=${PROMETHEUS_OPERATOR_VERSION:-0.85.0}
# Prometheus 3.5.0 (that operator's default) is the module's v0.305.0.
PROMETHEUS_VERSION=${PROMETHEUS_VERSION:-3.5.0}
PROMETHEUS_MODULE_VERSION=${PROMETHEUS_MODULE_VERSION:-0.305.0}
# That operator's default Alertmanager.
ALERTMANAGER_VERSION=${ALERTMANAGER_VERSION:-0.28.1}
# The Kubernetes object metrics the Shop's restart panels and alerts read.
KUBE_STATE_METRICS_VERSION=${KUBE_STATE_METRICS_VERSION:-2.20.0}

CACHE=${SHOP_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/shop-operator}
log() { echo "node-binaries: $*" >&2; }
mkdir -p "$CACHE/bin"

if command -v flock >/dev/null; then
  exec 9>"$CACHE/.node.lock"
  flock -n 9 || { log "another build holds $CACHE/.node.lock; waiting"; flock 9; }
fi

# runc links libseccomp (cgo); the others are pure Go.
need_debs=()
[[ -f /usr/include/seccomp.h ]] || need_debs+=(libseccomp-dev)
command -v pkg-config >/dev/null || need_debs+=(pkg-config)
command -v iptables >/dev/null || need_debs+=(iptables)
command -v ipset >/dev/null || need_debs+=(ipset)
if ((${#need_debs[@]})); then
  log "installing Debian packages: ${need_debs[*]}"
  sudo=""; [[ $(id -u) == 0 ]] || sudo=sudo
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >&2
  $sudo apt-get install -y -qq --no-install-recommends "${need_debs[@]}" >&2
fi

# install NAME VERSION DIR [go install args...]: go install into DIR once.
install() {
  local name=$1 version=$2 dir=$3; shift 3
  [[ -f "$dir/.done" ]] && return
  local start=$SECONDS
  log "building $name $version (cached afterwards in $dir)"
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  if ! (GOBIN="$dir.tmp" go install -trimpath "$@") >"$dir.tmp.log" 2>&1; then
    log "building $name failed; log:"; tail -40 "$dir.tmp.log" >&2; exit 1
  fi
  rm -rf "$dir" && mv "$dir.tmp" "$dir" && touch "$dir/.done"
  log "  $name: done in $((SECONDS - start))s"
}

# install_via_module NAME VERSION DIR PKG [go build args...]: for a
# module whose version list the proxy refuses (go install PKG@VERSION then
# fails on its deprecation check): `go get PKG@VERSION` in a throwaway module
# and build PKG there. The module's own go.mod still decides the versions.
install_via_module() {
  local name=$1 version=$2 dir=$3 pkg=$4; shift 4
  [[ -f "$dir/.done" ]] && return
  local start=$SECONDS src="$CACHE/src/$name-$version"
  log "building $name $version (cached afterwards in $dir)"
  mkdir -p "$src" && rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  if [[ ! -f "$src/go.sum" ]]; then
    printf 'module %sbinary\n\ngo 1.26\n' "${name//-/}" >"$src/go.mod"
    (cd "$src" && go get "$pkg@v$version") >"$dir.tmp.log" 2>&1 || { log "go get $pkg failed; log:"; tail -40 "$dir.tmp.log" >&2; exit 1; }
  fi
  if ! (cd "$src" && go build -trimpath "$@" -o "$dir.tmp/$name" "$pkg") >>"$dir.tmp.log" 2>&1; then
    log "building $name failed; log:"; tail -40 "$dir.tmp.log" >&2; exit 1
  fi
  rm -rf "$dir" && mv "$dir.tmp" "$dir" && touch "$dir/.done"
  log "  $name: done in $((SECONDS - start))s"
}

B="$CACHE/bin"
install runc "$RUNC_VERSION" "$B/runc-$RUNC_VERSION" -tags seccomp -ldflags=-s \
  "github.com/opencontainers/runc@v$RUNC_VERSION"
install containerd "$CONTAINERD_VERSION" "$B/containerd-$CONTAINERD_VERSION" -tags no_btrfs -ldflags=-s \
  "github.com/containerd/containerd/v2/cmd/containerd@v$CONTAINERD_VERSION" \
  "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@v$CONTAINERD_VERSION" \
  "github.com/containerd/containerd/v2/cmd/ctr@v$CONTAINERD_VERSION"
install cni-plugins "$CNI_PLUGINS_VERSION" "$B/cni-plugins-$CNI_PLUGINS_VERSION" -ldflags=-s \
  "github.com/containernetworking/plugins/plugins/main/bridge@v$CNI_PLUGINS_VERSION" \
  "github.com/containernetworking/plugins/plugins/main/loopback@v$CNI_PLUGINS_VERSION" \
  "github.com/containernetworking/plugins/plugins/ipam/host-local@v$CNI_PLUGINS_VERSION" \
  "github.com/containernetworking/plugins/plugins/meta/portmap@v$CNI_PLUGINS_VERSION"
install kube-network-policies "$KUBE_NETWORK_POLICIES_VERSION" "$B/kube-network-policies-$KUBE_NETWORK_POLICIES_VERSION" -ldflags=-s \
  "sigs.k8s.io/kube-network-policies/cmd@v$KUBE_NETWORK_POLICIES_VERSION"
install coredns "$COREDNS_VERSION" "$B/coredns-$COREDNS_VERSION" -ldflags=-s \
  "github.com/coredns/coredns@v$COREDNS_VERSION"
install local-path-provisioner "$LOCAL_PATH_PROVISIONER_VERSION" "$B/local-path-provisioner-$LOCAL_PATH_PROVISIONER_VERSION" \
  -ldflags="-s -X main.VERSION=v$LOCAL_PATH_PROVISIONER_VERSION" \
  "github.com/rancher/local-path-provisioner@v$LOCAL_PATH_PROVISIONER_VERSION"
install_via_module opentelemetry-operator "$OTEL_OPERATOR_VERSION" "$B/opentelemetry-operator-$OTEL_OPERATOR_VERSION" \
  github.com/open-telemetry/opentelemetry-operator -ldflags=-s
install_via_module postgres_exporter "$POSTGRES_EXPORTER_VERSION" "$B/postgres_exporter-$POSTGRES_EXPORTER_VERSION" \
  github.com/prometheus-community/postgres_exporter/cmd/postgres_exporter \
  -ldflags="-s -X github.com/prometheus/common/version.Version=$POSTGRES_EXPORTER_VERSION"
for cmd in operator prometheus-config-reloader; do
  name=prometheus-operator; [[ $cmd == operator ]] || name=$cmd
  install_via_module "$name" "$PROMETHEUS_OPERATOR_VERSION" "$B/$name-$PROMETHEUS_OPERATOR_VERSION" \
    "github.com/prometheus-operator/prometheus-operator/cmd/$cmd" \
    -ldflags="-s -X github.com/prometheus/common/version.Version=$PROMETHEUS_OPERATOR_VERSION"
done
# Without the builtinassets tag: the API and no web UI (its assets are not in the module).
install_via_module prometheus "$PROMETHEUS_MODULE_VERSION" "$B/prometheus-$PROMETHEUS_MODULE_VERSION" \
  github.com/prometheus/prometheus/cmd/prometheus \
  -ldflags="-s -X github.com/prometheus/common/version.Version=$PROMETHEUS_VERSION"
install_via_module alertmanager "$ALERTMANAGER_VERSION" "$B/alertmanager-$ALERTMANAGER_VERSION" \
  github.com/prometheus/alertmanager/cmd/alertmanager \
  -ldflags="-s -X github.com/prometheus/common/version.Version=$ALERTMANAGER_VERSION"
install_via_module kube-state-metrics "$KUBE_STATE_METRICS_VERSION" "$B/kube-state-metrics-$KUBE_STATE_METRICS_VERSION" \
  k8s.io/kube-state-metrics/v2 \
  -ldflags="-s -X github.com/prometheus/common/version.Version=v$KUBE_STATE_METRICS_VERSION"

# One directory with every binary, named by the versions in it.
KEY=$(printf '%s\n' "$RUNC_VERSION" "$CONTAINERD_VERSION" "$CNI_PLUGINS_VERSION" "$KUBE_NETWORK_POLICIES_VERSION" \
  "$COREDNS_VERSION" "$LOCAL_PATH_PROVISIONER_VERSION" "$OTEL_OPERATOR_VERSION" "$POSTGRES_EXPORTER_VERSION" "$PROMETHEUS_OPERATOR_VERSION" "$PROMETHEUS_MODULE_VERSION" "$ALERTMANAGER_VERSION" "$KUBE_STATE_METRICS_VERSION" | sha256sum | cut -c1-12)
OUT="$B/node-$KEY"
if [[ ! -f "$OUT/.done" ]]; then
  rm -rf "$OUT" && mkdir -p "$OUT/cni"
  ln "$B/runc-$RUNC_VERSION/runc" "$OUT/runc"
  for f in containerd containerd-shim-runc-v2 ctr; do ln "$B/containerd-$CONTAINERD_VERSION/$f" "$OUT/$f"; done
  for f in bridge loopback host-local portmap; do ln "$B/cni-plugins-$CNI_PLUGINS_VERSION/$f" "$OUT/cni/$f"; done
  ln "$B/kube-network-policies-$KUBE_NETWORK_POLICIES_VERSION/cmd" "$OUT/kube-network-policies"
  ln "$B/coredns-$COREDNS_VERSION/coredns" "$OUT/coredns"
  ln "$B/local-path-provisioner-$LOCAL_PATH_PROVISIONER_VERSION/local-path-provisioner" "$OUT/local-path-provisioner"
  ln "$B/opentelemetry-operator-$OTEL_OPERATOR_VERSION/opentelemetry-operator" "$OUT/opentelemetry-operator"
  ln "$B/postgres_exporter-$POSTGRES_EXPORTER_VERSION/postgres_exporter" "$OUT/postgres_exporter"
  for f in prometheus-operator prometheus-config-reloader; do ln "$B/$f-$PROMETHEUS_OPERATOR_VERSION/$f" "$OUT/$f"; done
  ln "$B/prometheus-$PROMETHEUS_MODULE_VERSION/prometheus" "$OUT/prometheus"
  ln "$B/alertmanager-$ALERTMANAGER_VERSION/alertmanager" "$OUT/alertmanager"
  ln "$B/kube-state-metrics-$KUBE_STATE_METRICS_VERSION/kube-state-metrics" "$OUT/kube-state-metrics"
  cat >"$OUT/VERSIONS" <<EOF
runc $RUNC_VERSION
containerd $CONTAINERD_VERSION
cni-plugins $CNI_PLUGINS_VERSION
kube-network-policies $KUBE_NETWORK_POLICIES_VERSION
coredns $COREDNS_VERSION
local-path-provisioner $LOCAL_PATH_PROVISIONER_VERSION
opentelemetry-operator $OTEL_OPERATOR_VERSION
postgres_exporter $POSTGRES_EXPORTER_VERSION
prometheus-operator $PROMETHEUS_OPERATOR_VERSION
prometheus-config-reloader $PROMETHEUS_OPERATOR_VERSION
prometheus $PROMETHEUS_MODULE_VERSION
alertmanager $ALERTMANAGER_VERSION
kube-state-metrics $KUBE_STATE_METRICS_VERSION
EOF
  touch "$OUT/.done"
fi
echo "$OUT"
