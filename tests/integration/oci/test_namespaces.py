"""Namespaces joined by path, shared with the caller, and user namespaces: ours against runc."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import exec_output, needs_root, run_ours, run_runc, set_cgroups_path

from cri import oci

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
        code, text = exec_output(
            oci_root, cid, {"args": ["sh", "-c", "ls /; readlink /proc/self/ns/mnt"], "cwd": "/"}
        )
        out = text.split()
        assert code == 0, out
        assert out[:-1] == sorted(os.listdir(rootfs))
        assert out[-1] == str(Path("/proc/self/ns/mnt").readlink())
    finally:
        oci.delete(oci_root, cid, force=True)
        os.waitpid(pid, 0)
    assert f" {rootfs}" not in Path("/proc/self/mountinfo").read_text()


USERNS_PROBE = (
    "id; cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups;"
    " stat -c '%n %u %g %a' / /proc /dev /dev/null /dev/pts/ptmx /dev/shm;"
    " grep -E '^Cap' /proc/self/status; hostname; grep -c . /proc/self/mountinfo"
)


@pytest.fixture
def open_bundle(base_spec: dict[str, Any]) -> Iterator[Callable[..., Path]]:
    """Like make_bundle, but under a 0755 directory: the container's root is an unmapped uid
    on the host, which pytest's 0700 temporary directories would keep out of its own rootfs."""
    import shutil
    import tempfile

    from conftest import build_rootfs

    top = Path(tempfile.mkdtemp(prefix="cri-userns-"))
    top.chmod(0o755)
    counter = [0]

    def make(args: list[str], edit: Callable[[dict[str, Any]], None]) -> Path:
        counter[0] += 1
        bundle = top / f"bundle{counter[0]}"
        build_rootfs(bundle / "rootfs")
        spec = json.loads(json.dumps(base_spec))
        spec["process"]["args"] = args
        edit(spec)
        (bundle / "config.json").write_text(json.dumps(spec))
        return bundle

    try:
        yield make
    finally:
        shutil.rmtree(top, ignore_errors=True)


def _user_namespace(spec: dict[str, Any], uid: int = 100000, gid: int = 200000) -> None:
    spec["linux"]["namespaces"].append({"type": "user"})
    spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": uid, "size": 65536}]
    spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": gid, "size": 65536}]


def test_user_namespace_matches_runc(
    open_bundle: Callable[..., Path], tmp_path: Path, cid: str
) -> None:
    """linux.uidMappings/gidMappings (runtime-tools linux_uid_mappings, linux_ns_nopath): what
    the container sees of its ids, files and capabilities is what it sees under runc."""

    def edit(spec: dict[str, Any]) -> None:
        set_cgroups_path(spec, cid)
        _user_namespace(spec)

    ours = run_ours(tmp_path / "ours", cid, open_bundle(["sh", "-c", USERNS_PROBE], edit))
    theirs = run_runc(tmp_path / "runc", cid, open_bundle(["sh", "-c", USERNS_PROBE], edit))
    assert ours[0] == theirs[0] == 0, (ours, theirs)
    assert ours[1] == theirs[1]
    lines = ours[1].splitlines()
    assert lines[0].startswith("uid=0(root) gid=0(root)")
    assert lines[1].split() == ["0", "100000", "65536"]
    assert lines[2].split() == ["0", "200000", "65536"]
    assert lines[3] == "allow"
    assert "/dev/null 65534 65534 666" in lines  # the host's node, bind-mounted (no mknod)


def test_user_namespace_init_exec_and_ownership(
    open_bundle: Callable[..., Path], oci_root: Path, cid: str
) -> None:
    """Every namespace of the container belongs to its user namespace; the init is our child
    (the creator adopts it); exec enters the user namespace too; its processes are the mapped
    uid on the host."""

    def edit(spec: dict[str, Any]) -> None:
        set_cgroups_path(spec, cid)
        _user_namespace(spec)

    bundle = open_bundle(["sleep", "1000"], edit)
    pid = oci.create(oci_root, cid, bundle)
    try:
        oci.start(oci_root, cid)
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        assert [line.split()[1:] for line in status if line.startswith("Uid:")] == [["100000"] * 4]
        user = Path(f"/proc/{pid}/ns/user").readlink()
        assert user != Path("/proc/self/ns/user").readlink()
        for ns in ("pid", "net", "ipc", "uts", "mnt"):
            assert _owner(pid, ns) == str(user), ns
        code, text = exec_output(
            oci_root,
            cid,
            {"args": ["sh", "-c", "id -u; readlink /proc/self/ns/user; echo $$"], "cwd": "/"},
        )
        out = text.split()
        assert code == 0 and out[:2] == ["0", str(user)], out
    finally:
        oci.delete(oci_root, cid, force=True)
    assert os.waitpid(pid, 0)[0] == pid  # our child: reaped here


def _owner(pid: int, ns: str) -> str:
    """The owning user namespace of /proc/PID/ns/NS (ioctl NS_GET_USERNS)."""
    import fcntl

    fd = os.open(f"/proc/{pid}/ns/{ns}", os.O_RDONLY)
    try:
        owner = fcntl.ioctl(fd, 0xB701)  # NS_GET_USERNS: a new fd for the owner
    finally:
        os.close(fd)
    try:
        return os.readlink(f"/proc/self/fd/{owner}")
    finally:
        os.close(owner)


def test_joining_a_user_namespace_by_path(
    open_bundle: Callable[..., Path], oci_root: Path, cid: str
) -> None:
    """A second container in the first one's user and network namespaces (a pod's pattern),
    with new pid and mount namespaces: those belong to the joined user namespace."""
    first = cid + "-a"

    def edit_first(spec: dict[str, Any]) -> None:
        set_cgroups_path(spec, first)
        _user_namespace(spec)

    pid = oci.create(oci_root, first, open_bundle(["sleep", "1000"], edit_first))
    try:
        oci.start(oci_root, first)

        def edit(spec: dict[str, Any]) -> None:
            set_cgroups_path(spec, cid)
            spec["linux"]["namespaces"] = [
                {"type": "user", "path": f"/proc/{pid}/ns/user"},
                {"type": "network", "path": f"/proc/{pid}/ns/net"},
                {"type": "pid"},
                {"type": "ipc"},
                {"type": "uts"},
                {"type": "mount"},
            ]

        script = (
            "cat /proc/self/uid_map; for n in user net; do readlink /proc/self/ns/$n; done; echo $$"
        )
        bundle = open_bundle(["sh", "-c", script], edit)
        code, out, err = run_ours(oci_root / "second", cid, bundle)
        assert code == 0, err
        lines = out.splitlines()
        assert lines[0].split() == ["0", "100000", "65536"]
        assert lines[1:3] == [
            os.readlink(f"/proc/{pid}/ns/user"),
            os.readlink(f"/proc/{pid}/ns/net"),
        ]
        assert lines[3] == "1"  # pid 1 of its own pid namespace
    finally:
        oci.delete(oci_root, first, force=True)
        os.waitpid(pid, 0)
