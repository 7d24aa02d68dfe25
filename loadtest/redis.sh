#!/usr/bin/env bash
# Installs redis-server and redis-benchmark (Debian's redis 7, built with
# TLS) for `loadtest --compare-redis`. Needs root (or sudo) and apt.
set -euo pipefail
if command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null; then
    redis-server --version
    exit 0
fi
SUDO=""
if [[ $(id -u) != 0 ]]; then SUDO=sudo; fi
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y redis-server redis-tools
# The packaged service is not needed: the loadtest starts its own server on
# a loopback port with TLS only.
$SUDO systemctl disable --now redis-server 2>/dev/null || true
redis-server --version
