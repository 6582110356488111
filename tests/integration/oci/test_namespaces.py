"""Namespaces joined by path, shared with the caller, and user namespaces: ours against runc."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import needs_root, run_ours, run_runc, set_cgroups_path

pytestmark = needs_root

RUNNERS = {"ours": run_ours, "runc": run_runc}


@contextlib.contextmanager
def unshared(*flags: str) -> Iterator[int]:
    """A `sleep` in new namespaces (unshare(1) flags); yields its pid."""
    proc = subprocess.Popen(["unshare", *flags, "sleep", "1000"])
    try:
        # unshare(1) unshares, then execs sleep: wait for the exec
        for _ in range(500):
            if Path(f"/proc/{proc.pid}/comm").read_text().strip() == "sleep":
                break
            subprocess.run(["sleep", "0.01"])
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("who", ["ours", "runc"])
def test_hostname_set_in_a_joined_uts_namespace(
    make_bundle: Callable[..., Path], tmp_path: Path, cid: str, who: str
) -> None:
    """runc sets the hostname of a UTS namespace joined by path (runtime-tools linux_ns_path)."""
    with unshared("--uts") as pid:

        def edit(spec: dict[str, Any]) -> None:
            set_cgroups_path(spec, cid)
            spec["hostname"] = f"joined-{who}"
            for ns in spec["linux"]["namespaces"]:
                if ns["type"] == "uts":
                    ns["path"] = f"/proc/{pid}/ns/uts"

        script = "hostname; readlink /proc/self/ns/uts"
        code, out, err = RUNNERS[who](tmp_path / who, cid, make_bundle(["sh", "-c", script], edit))
        assert code == 0, err
        assert out.split() == [f"joined-{who}", str(Path(f"/proc/{pid}/ns/uts").readlink())]
        seen = subprocess.run(
            ["nsenter", "-t", str(pid), "-u", "hostname"], capture_output=True, text=True
        )
        assert seen.stdout.strip() == f"joined-{who}"


def test_without_a_mount_namespace_the_container_shares_ours(
    make_bundle: Callable[..., Path], oci_root: Path, cid: str
) -> None:
    """No 'mount' in linux.namespaces: the container inherits our mount namespace (runtime-tools
    linux_ns_itype) and is chrooted into its rootfs, as under runc; exec enters that chroot too,
    and delete detaches the mounts the init made in our namespace (runc leaves them behind)."""
    from cri import oci

    def edit(spec: dict[str, Any]) -> None:
        set_cgroups_path(spec, cid)
        spec["linux"]["namespaces"] = [
            n for n in spec["linux"]["namespaces"] if n["type"] != "mount"
        ]

    bundle = make_bundle(["sleep", "1000"], edit)
    rootfs = str(bundle / "rootfs")
    pid = oci.create(oci_root, cid, bundle)
    try:
        oci.start(oci_root, cid)
        assert Path(f"/proc/{pid}/ns/mnt").readlink() == Path("/proc/self/ns/mnt").readlink()
        assert Path(f"/proc/{pid}/root").readlink() == Path(rootfs)
        assert f" {rootfs}/proc " in Path("/proc/self/mountinfo").read_text()
        r, w = os.pipe()
        try:
            code = oci.exec_process(
                oci_root,
                cid,
                {"args": ["sh", "-c", "ls /; readlink /proc/self/ns/mnt"], "cwd": "/"},
                stdin=None,
                stdout=w,
                stderr=w,
            )
        finally:
            os.close(w)
        with os.fdopen(r) as f:
            out = f.read().split()
        assert code == 0, out
        assert out[:-1] == sorted(os.listdir(rootfs))
        assert out[-1] == str(Path("/proc/self/ns/mnt").readlink())
    finally:
        oci.delete(oci_root, cid, force=True)
        os.waitpid(pid, 0)
    assert f" {rootfs}" not in Path("/proc/self/mountinfo").read_text()
