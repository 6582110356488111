"""What the daemon does for pods: a sandbox container, then containers joining its namespaces."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import needs_root, set_cgroups_path

from cri import oci

pytestmark = needs_root


def _run(root: Path, cid: str, bundle: Path) -> tuple[int, str]:
    out = bundle / "out"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        pid = oci.create(root, cid, bundle, stdout=fd, stderr=fd)
        oci.start(root, cid)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
        with contextlib.suppress(oci.ContainerNotFound):
            oci.delete(root, cid, force=True)
    return os.waitstatus_to_exitcode(status), out.read_text()


def test_container_joins_sandbox_namespaces(
    make_bundle: Callable[..., Path], oci_root: Path, cid: str
) -> None:
    sandbox = cid + "-pause"

    def sandbox_edit(spec: dict[str, Any]) -> None:
        set_cgroups_path(spec, sandbox)
        spec["hostname"] = "podhost"

    pid = oci.create(oci_root, sandbox, make_bundle(["sleep", "1000"], sandbox_edit))
    try:
        oci.start(oci_root, sandbox)
        paths = {
            t: f"/proc/{pid}/ns/{n}"
            for t, n in (("network", "net"), ("ipc", "ipc"), ("uts", "uts"), ("pid", "pid"))
        }

        def edit(spec: dict[str, Any]) -> None:
            set_cgroups_path(spec, cid)
            spec["linux"]["namespaces"] = [{"type": "mount"}] + [
                {"type": t, "path": p} for t, p in paths.items()
            ]
            spec["hostname"] = ""

        script = (
            "hostname; for n in net ipc uts pid; do readlink /proc/self/ns/$n; done;"
            " cat /proc/1/cmdline"
        )
        code, out = _run(oci_root, cid, make_bundle(["sh", "-c", script], edit))
        assert code == 0, out
        lines = out.split("\n")
        assert lines[0] == "podhost"
        assert lines[1:5] == [os.readlink(p) for p in paths.values()]
        assert lines[5].startswith("sleep")  # the sandbox's init is pid 1 of the shared pid ns
    finally:
        oci.delete(oci_root, sandbox, force=True)
        os.waitpid(pid, 0)


def test_privileged_caps_oom_and_sysctl(
    make_bundle: Callable[..., Path], oci_root: Path, cid: str
) -> None:
    from cri.oci.capabilities import NAMES

    def edit(spec: dict[str, Any]) -> None:
        set_cgroups_path(spec, cid)
        # every capability, CAP_SYS_RESOURCE included, which this host's root lacks:
        # dropped, not fatal
        spec["process"]["capabilities"] = {
            k: list(NAMES) for k in ("bounding", "effective", "permitted")
        }
        spec["process"]["oomScoreAdj"] = -500  # below ours: clamped
        spec["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
        spec["linux"]["readonlyPaths"] = [
            p for p in spec["linux"]["readonlyPaths"] if p != "/proc/sys"
        ]

    script = (
        "grep CapEff /proc/self/status; cat /proc/self/oom_score_adj"
        " /proc/sys/net/ipv4/ip_forward; touch /x; echo $?"
    )
    code, out = _run(oci_root, cid, make_bundle(["sh", "-c", script], edit))
    assert code == 0, out
    lines = out.split("\n")
    own = int(Path("/proc/self/status").read_text().split("CapBnd:")[1].split()[0], 16)
    assert int(lines[0].split()[1], 16) == own & ((1 << len(NAMES)) - 1)
    assert int(lines[1]) >= int(Path("/proc/self/oom_score_adj").read_text())
    assert lines[2] == "1"
    assert "Read-only file system" in out  # root.readonly from `runc spec`
