from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from cri.oci import capabilities
from cri.oci.errors import InvalidSpec
from cri.oci.process import resolve
from cri.oci.spec import Capabilities
from cri.oci.syscalls import PR_CAP_AMBIENT, PR_CAPBSET_DROP, CapSets, RecordingSyscalls


def test_resolve_uses_process_path(tmp_path: Path) -> None:
    b = tmp_path / "bin"
    b.mkdir()
    (b / "tool").write_text("#!/bin/sh\n")
    os.chmod(b / "tool", 0o755)
    (b / "plain").write_text("")
    assert resolve("tool", {"PATH": f"/nowhere:{b}"}) == f"{b}/tool"
    with pytest.raises(InvalidSpec, match="executable file not found"):
        resolve("plain", {"PATH": str(b)})
    with pytest.raises(InvalidSpec, match="no such file"):
        resolve("/no/such", {})


def test_capabilities_drop_what_host_lacks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capabilities, "last_cap", lambda: 40)
    sys_admin, sys_resource, chown = 21, 24, 0
    fake = RecordingSyscalls(caps=CapSets(0, ((1 << 41) - 1) & ~(1 << sys_resource), 0))
    caps = Capabilities(
        bounding=("CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_SYS_RESOURCE"),
        effective=("CAP_CHOWN", "CAP_SYS_RESOURCE"),
        permitted=("CAP_CHOWN", "CAP_SYS_RESOURCE"),
        inheritable=(),
        ambient=("CAP_CHOWN",),
    )
    capabilities.drop_bounding(fake, caps)
    dropped = {c[2] for c in fake.calls if c[:2] == ("prctl", PR_CAPBSET_DROP)}
    assert dropped == set(range(41)) - {chown, sys_admin, sys_resource}
    capabilities.apply(fake, caps, capabilities.host_mask(fake))
    capset = [c[1] for c in fake.calls if c[0] == "capset"]
    assert capset == [CapSets(1 << chown, 1 << chown, 0)]
    # ambient needs inheritable: nothing raised, but the set was cleared first
    assert [c[2] for c in fake.calls if c[:2] == ("prctl", PR_CAP_AMBIENT)] == [4]


def _in_child(fn: Callable[[int], object]) -> str:
    """Run fn(report fd) in a forked child; its repr (or the exception's) comes back through
    that fd, which fn must keep open."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - reports through the pipe
        try:
            try:
                result = repr(fn(w))
            except BaseException as e:  # noqa: BLE001
                result = f"raised {e!r}"
            os.write(w, result.encode())
        finally:
            os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    with os.fdopen(r) as f:
        return f.read()


def test_close_other_fds_closes_only_listed_fds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Open fds come from /proc/self/fd: no closerange, whose per-fd fallback (close_range
    refused by a seccomp policy) takes 100+ ms, even for a high fd; `keep` survives."""
    from cri.oci import process

    def forbidden(*_: int) -> None:
        raise AssertionError("closerange used although /proc/self/fd is readable")

    def child(report: int) -> object:
        monkeypatch.setattr(os, "closerange", forbidden)
        a, b = os.pipe()
        high = os.dup2(a, 4000)
        process.close_other_fds(keep=(b, report), start=3)
        return [fd for fd in (0, 1, 2, a, b, high) if _is_open(fd)] == [0, 1, 2, b]

    assert _in_child(child) == "True"


def test_close_other_fds_without_proc_falls_back_to_closerange(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cri.oci import process

    def child(report: int) -> object:
        monkeypatch.setattr(process, "open_fds", lambda: None)
        a, b = os.pipe()
        c = os.dup(a)
        process.close_other_fds(keep=(b, report), start=3)
        return [fd for fd in (0, 1, 2, a, b, c) if _is_open(fd)] == [0, 1, 2, b]

    assert _in_child(child) == "True"


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True
