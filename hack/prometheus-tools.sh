#!/usr/bin/env bash
# Installs promtool and amtool (Debian's prometheus and prometheus-alertmanager
# packages) for the rule and routing tests of internal/builders/monitoring.
# Idempotent: does nothing when both are on PATH. The packages start no daemon
# when there is no init system (containers, CI).
set -euo pipefail

if command -v promtool >/dev/null && command -v amtool >/dev/null; then
	exit 0
fi
if ! command -v apt-get >/dev/null; then
	echo "prometheus-tools.sh: no apt-get; install promtool and amtool yourself (the tests skip without them)" >&2
	exit 0
fi
sudo=""
if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager >/dev/null
# Debian starts the services where systemd runs; the tests need only the tools.
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
	$sudo systemctl disable --now prometheus prometheus-alertmanager >/dev/null 2>&1 || true
fi
command -v promtool && command -v amtool
