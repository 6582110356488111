"""Seccomp under our executor and under runc: the same profile must have the same effects.

A busybox container gets a profile that denies mkdir with EPERM and chmod to mode 0777 with
EACCES (an argument rule); each test runs the same bundle under runc (libseccomp) and under our
executor, and compares what the container saw.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import RUNC, needs_root, run_ours, run_runc, set_cgroups_path

from cri.spec.seccomp_default import default_profile

pytestmark = needs_root

REPO = Path(__file__).resolve().parents[3]
EXTRA_APPLETS = ("mkdir", "rmdir", "chmod", "stat", "rm", "unshare")
ARCHES = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]

DENY = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "architectures": ARCHES,
    "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
        {
            "names": ["chmod", "fchmod"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": 13,
            "args": [{"index": 1, "value": 0o777, "op": "SCMP_CMP_EQ"}],
        },
        {
            "names": ["fchmodat"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": 13,
            "args": [{"index": 2, "value": 0o777, "op": "SCMP_CMP_EQ"}],
        },
    ],
}

PROBE = (
    "exec 2>&1; grep -E '^(Seccomp|NoNewPrivs)' /proc/self/status; id -u; "
    "mkdir /tmp/x; echo mkdir=$?; "
    "echo data > /tmp/f; echo write=$?; "
    "chmod 755 /tmp/f; echo chmod755=$?; stat -c %a /tmp/f; "
    "chmod 777 /tmp/f; echo chmod777=$?; stat -c %a /tmp/f; "
    "cat /tmp/f; rm /tmp/f; echo rm=$?"
)


@pytest.fixture
def seccomp_bundle(make_bundle: Callable[..., Path], cid: str) -> Callable[..., Path]:
    """seccomp_bundle(args, seccomp, edit=None) -> a busybox bundle with linux.seccomp set."""

    def make(
        args: list[str],
        seccomp: dict[str, Any] | None,
        edit: Callable[[dict[str, Any]], None] | None = None,
    ) -> Path:
        def change(spec: dict[str, Any]) -> None:
            set_cgroups_path(spec, cid)
            spec["root"]["readonly"] = False  # runc spec's default; the probes write to /tmp
            if seccomp is not None:
                spec["linux"]["seccomp"] = seccomp
            if edit is not None:
                edit(spec)

        bundle = make_bundle(args, change)
        os.chmod(bundle / "rootfs" / "tmp", 0o1777)  # the probes write there as uid 1000 too
        bin_dir = bundle / "rootfs" / "bin"
        for applet in EXTRA_APPLETS:
            if not (bin_dir / applet).exists():
                os.link(bin_dir / "busybox", bin_dir / applet)
        return bundle

    return make


def _both(
    seccomp_bundle: Callable[..., Path],
    tmp_path: Path,
    cid: str,
    args: list[str],
    seccomp: dict[str, Any] | None,
    edit: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[tuple[int, str, str], tuple[int, str, str]]:
    ours = run_ours(tmp_path / "ours", cid, seccomp_bundle(args, seccomp, edit))
    theirs = run_runc(tmp_path / "runc", cid, seccomp_bundle(args, seccomp, edit))
    return ours, theirs


@pytest.mark.parametrize(
    ("no_new_privs", "uid"),
    [(True, 0), (False, 0), (False, 1000), (True, 1000)],
    ids=["nnp-root", "root", "user", "nnp-user"],
)
def test_denied_syscalls_match_runc(
    seccomp_bundle: Callable[..., Path], tmp_path: Path, cid: str, no_new_privs: bool, uid: int
) -> None:
    """Without no_new_privs the filter must go in before the capabilities are dropped (the
    kernel wants CAP_SYS_ADMIN then); with it, right before execve. Same effect either way."""

    def edit(spec: dict[str, Any]) -> None:
        spec["process"]["noNewPrivileges"] = no_new_privs
        spec["process"]["user"] = {"uid": uid, "gid": uid}

    ours, theirs = _both(seccomp_bundle, tmp_path, cid, ["sh", "-c", PROBE], DENY, edit)
    assert ours == theirs
    out = ours[1].splitlines()
    assert "Seccomp:\t2" in out
    assert f"NoNewPrivs:\t{int(no_new_privs)}" in out
    assert "mkdir: can't create directory '/tmp/x': Operation not permitted" in out
    assert "mkdir=1" in out
    assert "write=0" in out and "data" in out and "rm=0" in out
    assert "chmod755=0" in out and "755" in out
    assert "chmod: /tmp/f: Permission denied" in out
    assert "chmod777=1" in out and "777" not in out


def test_without_seccomp_nothing_is_filtered(
    seccomp_bundle: Callable[..., Path], tmp_path: Path, cid: str
) -> None:
    ours, theirs = _both(seccomp_bundle, tmp_path, cid, ["sh", "-c", PROBE], None)
    assert ours == theirs
    assert "Seccomp:\t0" in ours[1] and "mkdir=0" in ours[1] and "chmod777=0" in ours[1]


def test_kill_and_default_errno_match_runc(
    seccomp_bundle: Callable[..., Path], tmp_path: Path, cid: str
) -> None:
    """An allowlist built from our RuntimeDefault, minus mkdir, plus a KILL_PROCESS rule."""
    profile = default_profile([])
    for rule in profile["syscalls"]:
        rule["names"] = [n for n in rule["names"] if n not in ("mkdir", "mkdirat", "rmdir")]
    profile["syscalls"].append({"names": ["rmdir"], "action": "SCMP_ACT_KILL_PROCESS"})
    script = (
        "grep -E '^Seccomp:' /proc/self/status; mkdir /tmp/d 2>&1; echo mkdir=$?; "
        "mount -t tmpfs t /tmp 2>&1; echo mount=$?; "
        "unshare -m true 2>&1; echo unshare=$?; "
        "sh -c 'rmdir /tmp'; echo rmdir=$?; ls / | wc -l"
    )
    ours, theirs = _both(seccomp_bundle, tmp_path, cid, ["sh", "-c", script], profile)
    assert ours == theirs
    out = ours[1].splitlines()
    assert "mkdir=1" in out and "mount=0" not in out and "unshare=0" not in out
    assert "rmdir=159" in out  # 128 + SIGSYS: KILL_PROCESS


# -- exec applies the container's profile -------------------------------------------------------


def _cli(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(
        [sys.executable, "-m", "cri.oci", "--root", str(root), *args],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    if check:
        assert p.returncode == 0, (args, p.stdout, p.stderr)
    return p


def _runc(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(
        [RUNC, "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    if check:
        assert p.returncode == 0, (args, p.stdout, p.stderr)
    return p


@contextlib.contextmanager
def _running(
    run: Callable[..., subprocess.CompletedProcess[str]], root: Path, cid: str, bundle: Path
) -> Iterator[None]:
    """create (stdio to a file, so nothing waits on a pipe) + start; kill and delete after."""
    with open(bundle / "create.out", "w") as out:
        p = subprocess.run(
            [*run_argv(run), "--root", str(root), "create", "--bundle", str(bundle), cid],
            stdout=out,
            stderr=out,
            stdin=subprocess.DEVNULL,
            env=dict(os.environ, PYTHONPATH=str(REPO)),
            timeout=60,
        )
    try:
        assert p.returncode == 0, (bundle / "create.out").read_text()
        run(root, "start", cid)
        yield
    finally:
        run(root, "kill", cid, "KILL", check=False)
        for _ in range(100):
            if run(root, "delete", cid, check=False).returncode == 0:
                break
            time.sleep(0.05)
        run(root, "delete", "--force", cid, check=False)


def run_argv(run: Callable[..., subprocess.CompletedProcess[str]]) -> list[str]:
    return [RUNC] if run is _runc else [sys.executable, "-m", "cri.oci"]


def test_exec_gets_the_container_profile(
    seccomp_bundle: Callable[..., Path], tmp_path: Path, cid: str
) -> None:
    results = []
    for run, name in ((_cli, "ours"), (_runc, "runc")):
        bundle = seccomp_bundle(["sleep", "1000"], DENY)
        with _running(run, tmp_path / name, cid, bundle):
            p = run(tmp_path / name, "exec", cid, "sh", "-c", PROBE, check=False)
            results.append((p.returncode, p.stdout))
    assert results[0] == results[1]
    out = results[0][1].splitlines()
    assert "Seccomp:\t2" in out and "mkdir=1" in out and "chmod777=1" in out


def test_bad_profile_fails_create(
    seccomp_bundle: Callable[..., Path], tmp_path: Path, cid: str
) -> None:
    bad = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "NOPE"}]}
    bundle = seccomp_bundle(["true"], bad)
    root = tmp_path / "s"
    try:
        # output to a file: a created init would hold a pipe open
        with open(tmp_path / "create.out", "w+") as out:
            p = subprocess.run(
                [*run_argv(_cli), "--root", str(root), "create", "--bundle", str(bundle), cid],
                stdout=out,
                stderr=out,
                env=dict(os.environ, PYTHONPATH=str(REPO)),
                timeout=60,
                stdin=subprocess.DEVNULL,
            )
        message = (tmp_path / "create.out").read_text()
        assert p.returncode == 1, message
        assert "seccomp" in message and "unknown action 'NOPE'" in message
        assert _cli(root, "state", cid, check=False).returncode == 1
    finally:
        _cli(root, "delete", "--force", cid, check=False)
