#!/bin/sh
# Installs what the tests need on Debian 12 (as root) and runs them all. CI runs exactly this.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq python3 python3-venv gcc libc6-dev iproute2 util-linux \
    docker-registry busybox-static runc crun containernetworking-plugins iptables >/dev/null
# The registry package enables its own service where systemd runs; tests start their own.
python3 -m venv .venv
.venv/bin/pip install -q -e ".[test]"
exec .venv/bin/python -m pytest "$@"
