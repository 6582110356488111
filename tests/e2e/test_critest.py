"""critest, the CRI conformance suite, against the daemon, where a critest binary is given:

    CRITEST=/path/to/critest [CRITEST_MIRROR=http://127.0.0.1:5000] [CRITEST_ARGS='...'] \\
        .venv/bin/python -m pytest tests/e2e/test_critest.py

The daemon runs with CNI (Debian's bridge, host-local and portmap plugins) inside a stand-in
node namespace, and critest with it, so the Networking and port-forward specs reach pod IPs
without touching the machine's network. critest pulls its images from registry.k8s.io and
friends; CRITEST_MIRROR serves them instead (../shared/critest-kit's registry, say). The
test fails if critest does: CRITEST_ARGS (e.g. "--ginkgo.skip 'public image with digest'")
narrows what runs; CRITEST_LOG names a file to keep critest's whole output in.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import urllib.parse
from pathlib import Path

import pytest

from tests.support import node as nodes
from tests.support.daemon import running_daemon

CRITEST = os.environ.get("CRITEST", "")
MIRRORED = ("registry.k8s.io", "k8s.gcr.io", "gcr.io", "docker.io", "public.ecr.aws", "quay.io")


@pytest.mark.skipif(not CRITEST, reason="CRITEST is not set: give the path of a critest binary "
                                        "(cri-tools) to run the conformance suite")
def test_critest_passes(pause_binary: Path, tmp_path: Path) -> None:
    assert os.access(CRITEST, os.X_OK), f"CRITEST={CRITEST} is not an executable"
    (tmp_path / "net.d").mkdir()
    (tmp_path / "net.d" / "10-bridge.conflist").write_text(json.dumps({
        "cniVersion": "1.0.0", "name": "critest",
        "plugins": [
            {"type": "bridge", "bridge": "cri0", "isGateway": True, "ipMasq": True,
             "hairpinMode": True,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.88.0.0/16"}]],
                      "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(tmp_path / "ipam")}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
            {"type": "loopback"},
        ]}))
    config = f'cni_conf_dir = "{tmp_path / "net.d"}"\n'
    runc = "/usr/sbin/runc"
    if os.path.exists(runc):
        config += f'[runtimes.runc]\nbinary = "{runc}"\n'
    mirror = os.environ.get("CRITEST_MIRROR", "")
    for host in MIRRORED if mirror else ():
        config += f'[registry.mirrors."{host}"]\nendpoints = ["{mirror}"]\n'
    with nodes.netns("cri-critest") as node:
        relays = []
        parts = urllib.parse.urlsplit(mirror)
        if parts.hostname in ("127.0.0.1", "localhost") and parts.port:
            relays.append(nodes.Relay(node, parts.port))  # the mirror, on the node's loopback
        try:
            with running_daemon(pause_binary, config, network="cni", node=node) as daemon:
                endpoint = f"unix://{daemon.socket}"
                argv = [*nodes.nsenter(node), CRITEST, "--runtime-endpoint", endpoint,
                        "--image-endpoint", endpoint, "--ginkgo.no-color",
                        *shlex.split(os.environ.get("CRITEST_ARGS", ""))]
                result = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
        finally:
            for relay in relays:
                relay.close()
    if os.environ.get("CRITEST_LOG"):
        Path(os.environ["CRITEST_LOG"]).write_text(result.stdout + result.stderr)
    summary = re.findall(r"(?:SUCCESS|FAIL)! -- .*", result.stdout)
    failures = re.findall(r"^\s*\[FAIL\] .*", result.stdout, re.MULTILINE)
    assert result.returncode == 0, (
        f"critest failed: {summary}\n" + "\n".join(dict.fromkeys(failures))
        + f"\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}")
