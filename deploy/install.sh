#!/bin/sh
# Installs the daemon on Debian 12 as root: a virtual environment at /opt/cri with the package
# (which compiles the static pause binary), the `cri` and `cri-oci` commands, and the systemd unit.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq python3 python3-venv gcc libc6-dev iproute2 \
    containernetworking-plugins iptables >/dev/null
python3 -m venv /opt/cri
/opt/cri/bin/pip install -q "$here"
ln -sf /opt/cri/bin/cri /usr/local/bin/cri
# -I: the installed package, not a `cri/` in the current directory
ln -sf "$(/opt/cri/bin/python -I -m cri.oci.front)" /usr/local/bin/cri-oci
install -D -m 0644 "$here/deploy/cri.service" /etc/systemd/system/cri.service
install -D -m 0644 "$here/deploy/crictl.yaml" /etc/crictl.yaml
# A pod network out of the box, as CRI-O's package ships one: a bridge with host-local IPs. A
# network add-on (Calico, Cilium, flannel...) puts its own config here, lexically first.
mkdir -p /etc/cni/net.d
ls /etc/cni/net.d/*.conf /etc/cni/net.d/*.conflist /etc/cni/net.d/*.json >/dev/null 2>&1 ||
    install -m 0644 "$here/deploy/10-cri-bridge.conflist" /etc/cni/net.d/
[ -e /etc/cri/config.toml ] || install -D -m 0644 "$here/deploy/config.toml" /etc/cri/config.toml
echo "installed: run 'cri' (or 'systemctl enable --now cri' where systemd runs)"
