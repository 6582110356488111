"""User namespaces: spec rules, the mapping files, the init's early steps and their order."""

from __future__ import annotations

import copy
import os
import socket
from pathlib import Path
from typing import Any

import pytest

from cri.oci import namespaces, sync, userns
from cri.oci import syscalls as sc
from cri.oci.errors import InvalidSpec
from cri.oci.init import InitContext, container_steps, run_steps
from cri.oci.spec import IDMapping, Namespace, parse_spec
from cri.oci.syscalls import RecordingSyscalls

MAP = [{"containerID": 0, "hostID": 100000, "size": 65536}]
BASE: dict[str, Any] = {
    "ociVersion": "1.0.2",
    "root": {"path": "rootfs"},
    "process": {"args": ["sh"], "cwd": "/"},
    "linux": {
        "namespaces": [{"type": "mount"}, {"type": "user"}],
        "uidMappings": MAP,
        "gidMappings": [
            {"containerID": 0, "hostID": 200000, "size": 1000},
            {"containerID": 1000, "hostID": 300000, "size": 1},
        ],
    },
}


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    (tmp_path / "rootfs").mkdir()
    return tmp_path


def _spec(bundle: Path, **linux: Any) -> Any:
    raw = copy.deepcopy(BASE)
    raw["linux"].update(linux)
    return parse_spec(raw, bundle)


def test_mappings_are_parsed(bundle: Path) -> None:
    spec = _spec(bundle)
    assert spec.uid_mappings == (IDMapping(0, 100000, 65536),)
    assert userns.map_text(spec.gid_mappings) == "0 200000 1000\n1000 300000 1\n"
    assert userns.in_use(spec) and not userns.double_fork(spec)
    with_pid = _spec(bundle, namespaces=[{"type": "user"}, {"type": "pid"}])
    assert userns.double_fork(with_pid)


@pytest.mark.parametrize(
    ("linux", "message"),
    [
        ({"namespaces": [{"type": "mount"}]}, "need a user namespace"),
        ({"uidMappings": []}, "needs linux.uidMappings"),
        ({"gidMappings": None}, "needs linux.gidMappings"),
        ({"uidMappings": [{"containerID": 1, "hostID": 1000, "size": 10}]}, "container's root"),
        ({"uidMappings": [{"containerID": 0, "hostID": 1000, "size": 0}]}, "size > 0"),
        ({"uidMappings": [{"containerID": 0, "hostID": "x", "size": 1}]}, "integer"),
    ],
)
def test_refused_mappings(bundle: Path, linux: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidSpec, match=message):
        _spec(bundle, **linux)


def test_a_joined_user_namespace_needs_no_mappings(bundle: Path) -> None:
    spec = _spec(
        bundle,
        namespaces=[{"type": "user", "path": "/proc/self/ns/user"}],
        uidMappings=None,
        gidMappings=None,
    )
    assert userns.in_use(spec) and not spec.new_namespace("user")


def test_the_creator_writes_each_map_in_one_piece(bundle: Path, tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    (proc / "42").mkdir(parents=True)
    userns.write_mappings(42, _spec(bundle), proc=str(proc))
    assert (proc / "42" / "uid_map").read_text() == "0 100000 65536\n"
    assert (proc / "42" / "gid_map").read_text() == "0 200000 1000\n1000 300000 1\n"


class FakeCgroup:
    version = 1
    paths: dict[str, str] = {}

    def __init__(self, calls: list[tuple[Any, ...]]) -> None:
        self.calls = calls

    def add(self, pid: int) -> None:
        self.calls.append(("cgroup add", pid))


def test_early_steps_join_then_map_then_become_root(bundle: Path) -> None:
    """Cgroup and namespaces by path with the host's rights, then the user namespace; the
    creator's answer comes before the uid change."""
    fake = RecordingSyscalls()
    spec = _spec(bundle, namespaces=[{"type": "mount"}, {"type": "user"}, {"type": "ipc"}])
    creator, init = socket.socketpair()
    netns = os.open("/dev/null", os.O_RDONLY)  # a stand-in, closed by the join
    with creator, init:
        cgroup = FakeCgroup(fake.calls)
        ctx = InitContext(spec, fake, init.fileno(), -1, (0, 1, 2), cgroup, [("network", netns)])  # type: ignore[arg-type]
        sync.send(creator.fileno(), {"type": "mapped"})  # answered ahead: the steps run here
        names = [name for name, _ in userns.early_steps(ctx)]
        assert names == [
            "die with the creator",
            "join cgroup",
            "join namespaces",
            "new user namespace",
            "root in the user namespace",
        ]
        run_steps(userns.early_steps(ctx))
        assert sync.receive(creator.fileno(), 1) == {"type": "userns"}
    assert fake.calls[:3] == [
        ("prctl", sc.PR_SET_PDEATHSIG, 9, 0, 0, 0),
        ("cgroup add", 0),
        ("setns", netns, sc.CLONE_NEWNET),
    ]
    assert fake.calls[3:] == [("unshare", sc.CLONE_NEWUSER), ("setresgid", 0), ("setresuid", 0)]


def test_container_steps_leave_cgroup_namespaces_and_user_to_the_early_steps(
    bundle: Path,
) -> None:
    fake = RecordingSyscalls()
    spec = _spec(bundle, namespaces=[{"type": "mount"}, {"type": "user"}, {"type": "uts"}])
    ctx = InitContext(spec, fake, -1, -1, (0, 1, 2), FakeCgroup([]), [])  # type: ignore[arg-type]
    steps = dict(container_steps(ctx))
    assert "join cgroup" not in steps and "join namespaces" not in steps
    steps["new namespaces"]()
    assert fake.calls == [("unshare", sc.CLONE_NEWNS | sc.CLONE_NEWUTS)]


def test_a_new_pid_namespace_is_left_to_the_init_with_a_user_namespace() -> None:
    fake = RecordingSyscalls()
    plain = [Namespace("pid", None), Namespace("mount", None)]
    with namespaces.for_children(fake, plain):
        pass
    assert ("unshare", sc.CLONE_NEWPID) in fake.calls
    fake = RecordingSyscalls()
    with namespaces.for_children(fake, [*plain, Namespace("user", None)]):
        pass
    assert not [c for c in fake.calls if c[0] == "unshare"]
