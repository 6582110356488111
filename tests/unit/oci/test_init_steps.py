"""The init's step list for the new spec features, run through the recording fake syscalls."""

from __future__ import annotations

import copy
import os
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from cri.oci import sync
from cri.oci import syscalls as sc
from cri.oci.errors import InitFailed
from cri.oci.init import InitContext, PreparedProcess, container_steps, process_steps
from cri.oci.spec import parse_spec
from cri.oci.syscalls import RecordingSyscalls, SchedAttr

BASE: dict[str, Any] = {
    "ociVersion": "1.0.2",
    "root": {"path": "rootfs"},
    "process": {"args": ["sh"], "cwd": "/", "env": ["PATH=/bin"]},
    "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"}]},
}
HOOK = {"path": "/bin/true"}


class FakeCgroup:
    version = 1

    @property
    def paths(self) -> dict[str, str]:
        return {}

    def add(self, pid: int) -> None:
        pass


def _ctx(
    tmp_path: Path, changes: Mapping[str, Any], fake: RecordingSyscalls, **kw: Any
) -> InitContext:
    (tmp_path / "rootfs").mkdir(exist_ok=True)
    raw = copy.deepcopy(BASE)
    for key, value in changes.items():
        if key == "linux":
            raw["linux"].update(value)
        elif key == "process":
            raw["process"].update(value)
        else:
            raw[key] = value
    spec = parse_spec(raw, tmp_path)
    return InitContext(spec, fake, -1, -1, (0, 1, 2), FakeCgroup(), [], container_id="c1", **kw)  # type: ignore[arg-type]


def _in_order(wanted: Sequence[str], names: Sequence[str]) -> bool:
    it = iter(names)
    return all(any(n == w for n in it) for w in wanted)


def test_the_cgroup_is_joined_after_the_mounts_unless_a_cgroup_namespace_is_new(
    tmp_path: Path,
) -> None:
    """Late, while the grace period of the first migration passes (cgroups/warmup.py); first
    where a new cgroup namespace is rooted at the cgroup the init is in when it unshares."""
    names = [n for n, _ in container_steps(_ctx(tmp_path, {}, RecordingSyscalls()))]
    assert _in_order(["new namespaces", "devices", "join cgroup", "pivot_root"], names), names
    namespaces = [*BASE["linux"]["namespaces"], {"type": "cgroup"}]
    ctx = _ctx(tmp_path, {"linux": {"namespaces": namespaces}}, RecordingSyscalls())
    names = [n for n, _ in container_steps(ctx)]
    assert _in_order(["join cgroup", "new namespaces", "mounts"], names), names
    assert names.count("join cgroup") == 1


def test_plain_spec_has_none_of_the_optional_steps(tmp_path: Path) -> None:
    names = [n for n, _ in container_steps(_ctx(tmp_path, {}, RecordingSyscalls()))]
    assert names[0] == "setsid"
    for optional in (
        "createRuntime hooks",
        "createContainer hooks",
        "root propagation",
        "console",
        "personality",
    ):
        assert optional not in names


def test_optional_steps_in_runc_order(tmp_path: Path) -> None:
    fake = RecordingSyscalls()
    ctx = _ctx(
        tmp_path,
        {
            "hooks": {"prestart": [HOOK], "createContainer": [HOOK]},
            "process": {"terminal": True},
            "linux": {"rootfsPropagation": "rshared", "personality": {"domain": "LINUX32"}},
            "hostname": "h",
        },
        fake,
        console_socket=99,
    )
    steps = dict(container_steps(ctx))
    names = list(steps)
    assert _in_order(
        [
            "setsid",
            "mounts",
            "devices",
            "join cgroup",  # late: cgroups/warmup.py
            "createRuntime hooks",
            "createContainer hooks",
            "pivot_root",
            "console",
            "readonly paths",
            "masked paths",
            "root propagation",
            "hostname",
            "personality",
        ],
        names,
    ), names
    for name in ("setsid", "root propagation", "personality"):
        steps[name]()
    assert fake.calls == [
        ("setsid",),
        ("mount", None, "/", None, sc.MS_SHARED | sc.MS_REC, None),
        ("personality", 8),
    ]


def test_private_propagation_is_not_applied_twice(tmp_path: Path) -> None:
    names = [
        n
        for n, _ in container_steps(
            _ctx(tmp_path, {"linux": {"rootfsPropagation": "rprivate"}}, RecordingSyscalls())
        )
    ]
    assert "root propagation" not in names


@pytest.mark.parametrize(
    ("propagation", "before", "after"),
    [
        ("unbindable", sc.MS_PRIVATE, sc.MS_UNBINDABLE),
        ("runbindable", sc.MS_PRIVATE | sc.MS_REC, sc.MS_UNBINDABLE | sc.MS_REC),
        ("slave", sc.MS_SLAVE, sc.MS_SLAVE),
    ],
)
def test_unbindable_root_is_private_until_after_pivot(
    tmp_path: Path, propagation: str, before: int, after: int
) -> None:
    """The rootfs is bound from under the old "/" before pivot_root: from an unbindable mount
    that is EINVAL. The new "/" gets the requested propagation."""
    fake = RecordingSyscalls()
    ctx = _ctx(tmp_path, {"linux": {"rootfsPropagation": propagation}}, fake)
    steps = dict(container_steps(ctx))
    steps["rootfs propagation"]()
    steps["root propagation"]()
    assert fake.calls == [
        ("mount", None, "/", None, before, None),
        ("mount", None, "/", None, after, None),
    ]


def test_without_a_mount_namespace_the_host_mounts_keep_their_propagation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sharing the caller's mount namespace: no propagation change on its "/" or the rootfs's
    parent, the rootfs still bound onto itself, chroot instead of pivot_root."""
    fake = RecordingSyscalls()
    ctx = _ctx(tmp_path, {"linux": {"namespaces": [{"type": "pid"}]}}, fake)
    steps = dict(container_steps(ctx))
    names = list(steps)
    assert "rootfs propagation" not in names and "rootfs parent private" not in names
    assert "pivot_root" not in names
    assert _in_order(["bind rootfs", "mounts", "devices", "chroot", "readonly paths"], names)
    monkeypatch.chdir(tmp_path)
    steps["chroot"]()
    assert fake.calls == [("chroot", ".")]
    assert os.getcwd() == "/"


def test_create_runtime_step_waits_for_the_creator(tmp_path: Path) -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ctx = _ctx(tmp_path, {"hooks": {"createRuntime": [HOOK]}}, RecordingSyscalls())
        ctx = InitContext(**{**_fields(ctx), "sync_fd": theirs.fileno()})
        step = dict(container_steps(ctx))["createRuntime hooks"]
        sync.send(ours.fileno(), {"type": "resume"})  # the creator's answer, already waiting
        step()
        assert sync.receive(ours.fileno(), 1) == {"type": "hooks"}
        ours.shutdown(socket.SHUT_WR)  # the creator went away: the init must not go on
        with pytest.raises(InitFailed, match="did not resume"):
            step()


def _fields(ctx: InitContext) -> dict[str, Any]:
    return {name: getattr(ctx, name) for name in ctx.__slots__}


def test_scheduler_and_io_priority_before_the_identity_change(tmp_path: Path) -> None:
    fake = RecordingSyscalls()
    ctx = _ctx(
        tmp_path,
        {
            "process": {
                "scheduler": {
                    "policy": "SCHED_RR",
                    "priority": 5,
                    "flags": ["SCHED_FLAG_RESET_ON_FORK"],
                },
                "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 4},
            }
        },
        fake,
    )
    steps = dict(process_steps(fake, ctx.spec.process, PreparedProcess()))
    names = list(steps)
    assert _in_order(["rlimits", "scheduler", "io priority", "user"], names), names
    steps["scheduler"]()
    steps["io priority"]()
    assert fake.calls == [
        ("sched_setattr", SchedAttr(policy=2, flags=1, nice=0, priority=5)),
        ("ioprio_set", sc.IOPRIO_WHO_PROCESS, 0, (2 << 13) | 4),
    ]
    assert len(SchedAttr(policy=0).pack()) == 48


def test_install_stdio_places_extra_fds_after_stdio(tmp_path: Path) -> None:
    """In a child: fds 0-2 and 3.. end up where asked, whatever numbers they had."""
    from cri.oci.process import close_other_fds, install_stdio

    files = []
    for name in ("in", "out", "err", "x", "y"):
        (tmp_path / name).write_text(name)
        files.append(os.open(tmp_path / name, os.O_RDONLY | os.O_CLOEXEC))
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - reports through the pipe
        try:
            # extra fds in reverse order, one of them already sitting at a target number
            install_stdio(files[:3], [files[4], files[3]])
            close_other_fds(keep=(w,), start=5)
            seen = [os.pread(fd, 10, 0).decode() for fd in range(5)]
            flags = [os.get_inheritable(fd) for fd in range(5)]
            os.write(w, repr((seen, flags)).encode())
        finally:
            os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    with os.fdopen(r) as f:
        assert f.read() == repr((["in", "out", "err", "y", "x"], [True] * 5))
    for fd in files:
        os.close(fd)
