"""Spec parsing of hooks, terminals, scheduling, personality; the fd rules of the CLI."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest

from cri.oci import fds
from cri.oci.errors import InvalidSpec, OciError, Unsupported
from cri.oci.features import features
from cri.oci.spec import ConsoleSize, Hook, IOPriority, parse_hooks, parse_process, parse_spec

BASE: dict[str, Any] = {
    "ociVersion": "1.0.2",
    "root": {"path": "rootfs"},
    "process": {"args": ["sh"], "cwd": "/", "env": ["PATH=/bin"]},
    "linux": {"namespaces": [{"type": "mount"}]},
}


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    (tmp_path / "rootfs").mkdir()
    return tmp_path


def test_hooks_are_parsed_in_kind_order_and_unknown_kinds_ignored() -> None:
    hooks = parse_hooks(
        {
            "poststop": [{"path": "/p"}],
            "createRuntime": [
                {"path": "/a", "args": ["a", "1"], "env": ["X=1"], "timeout": 5},
                {"path": "/b", "env": []},
            ],
            "somethingNew": [{"path": "relative is fine here: ignored"}],
        }
    )
    assert hooks == {
        "poststop": (Hook("/p", (), None, None),),
        "createRuntime": (Hook("/a", ("a", "1"), ("X=1",), 5), Hook("/b", (), (), None)),
    }
    assert parse_hooks(None) == {}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"prestart": [{"path": "bin/x"}]}, "absolute"),
        ({"prestart": [{}]}, "absolute"),
        ({"prestart": [{"path": "/x", "timeout": 0}]}, "greater than zero"),
        ({"prestart": [{"path": "/x", "timeout": "5"}]}, "integer"),
        ({"prestart": {"path": "/x"}}, "array"),
        ({"prestart": [{"path": "/x", "args": "x"}]}, "array"),
    ],
)
def test_bad_hooks(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidSpec, match=message):
        parse_hooks(raw)


def test_terminal_and_console_size() -> None:
    proc = parse_process(
        {"args": ["x"], "terminal": True, "consoleSize": {"height": 3, "width": 4}}
    )
    assert proc.terminal and proc.console_size == ConsoleSize(3, 4)
    assert not parse_process({"args": ["x"], "terminal": None}).terminal
    with pytest.raises(InvalidSpec, match="boolean"):
        parse_process({"args": ["x"], "terminal": "yes"})


def test_io_priority_and_scheduler() -> None:
    proc = parse_process(
        {
            "args": ["x"],
            "ioPriority": {"class": "IOPRIO_CLASS_RT", "priority": 7},
            "scheduler": {"policy": "SCHED_FIFO", "priority": 10, "flags": ["SCHED_FLAG_RECLAIM"]},
        }
    )
    assert proc.io_priority == IOPriority(1, 7)
    assert proc.scheduler is not None
    assert (proc.scheduler.policy, proc.scheduler.priority, proc.scheduler.flags) == (1, 10, 2)
    for bad, message in [
        ({"ioPriority": {"class": "IOPRIO_CLASS_NOPE"}}, "class"),
        ({"ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 8}}, "0..7"),
        ({"scheduler": {"policy": "SCHED_FIFO"}}, "1..99"),
        ({"scheduler": {"policy": "SCHED_OTHER", "priority": 3}}, "must be 0"),
        ({"scheduler": {"policy": "SCHED_OTHER", "nice": 40}}, "-20..19"),
        ({"scheduler": {"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_X"]}}, "unknown flag"),
    ]:
        with pytest.raises(InvalidSpec, match=message):
            parse_process({"args": ["x"], **bad})


def _spec(bundle: Path, **linux: Any) -> dict[str, Any]:
    raw = copy.deepcopy(BASE)
    raw["linux"].update(linux)
    return raw


def test_personality_and_refusals(bundle: Path) -> None:
    assert parse_spec(_spec(bundle, personality={"domain": "LINUX32"}), bundle).personality == 8
    assert parse_spec(_spec(bundle), bundle).personality is None
    with pytest.raises(InvalidSpec, match="LINUX or LINUX32"):
        parse_spec(_spec(bundle, personality={"domain": "BSD"}), bundle)
    with pytest.raises(Unsupported, match="flags"):
        parse_spec(_spec(bundle, personality={"domain": "LINUX", "flags": ["X"]}), bundle)
    with pytest.raises(Unsupported, match="Intel RDT"):
        parse_spec(_spec(bundle, intelRdt={"closID": "c"}), bundle)
    # accepted and ignored: no SELinux here
    assert parse_spec(_spec(bundle, mountLabel="system_u:object_r:x:s0"), bundle)


def test_listen_fds_follow_sd_listen_fds() -> None:
    me = os.getpid()
    assert fds.listen_fds({"LISTEN_FDS": "2", "LISTEN_PID": str(me)}, me) == 2
    assert fds.listen_fds({"LISTEN_FDS": "2", "LISTEN_PID": "1"}, me) == 0  # not for us
    assert fds.listen_fds({"LISTEN_FDS": "x", "LISTEN_PID": str(me)}, me) == 0
    assert fds.listen_fds({}, me) == 0
    env = {"LISTEN_FDS": "2", "LISTEN_PID": str(me)}
    assert fds.cli_fds(env, me, 1, activation=True) == [3, 4, 5]
    assert fds.cli_fds(env, me, 1, activation=False) == [3]  # exec: no socket activation
    assert fds.activation_env(2) == ("LISTEN_FDS=2", "LISTEN_PID=1")
    assert fds.activation_env(0) == ()


def test_preserved_fds_must_be_open() -> None:
    r, w = os.pipe()
    try:
        fds.check([r, w])
    finally:
        os.close(r)
        os.close(w)
    with pytest.raises(OciError, match="unable to stat preserved-fd"):
        fds.check([r])


def test_features_document() -> None:
    doc = features()
    assert doc["hooks"] == [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ]
    assert {"user", "time"} <= set(doc["linux"]["namespaces"])
    assert {"rbind", "rprivate", "nosymfollow"} <= set(doc["mountOptions"])
    assert doc["linux"]["seccomp"]["enabled"] is True


@pytest.mark.parametrize("key", ["apparmorProfile", "selinuxLabel"])
def test_process_labels_are_refused_not_ignored(
    key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the host lacks the LSM (AppArmor off here; SELinux labels are never applied)."""
    from cri.oci import apparmor

    (tmp_path / "enabled").write_text("N\n")
    monkeypatch.setattr(apparmor, "ENABLED_FLAG", str(tmp_path / "enabled"))
    with pytest.raises(Unsupported, match=key):
        parse_process({"args": ["x"], key: "some-profile"})
    assert parse_process({"args": ["x"], key: ""}).args == ("x",)


def test_device_rules_for_spec_devices_leave_out_fifos(bundle: Path) -> None:
    """The device cgroup knows a, b and c: a rule for a FIFO made `create` fail with EINVAL."""
    from cri.oci.create import _resources_with_devices
    from cri.oci.devices import DEFAULT_ALLOW_RULES

    raw = copy.deepcopy(BASE)
    raw["linux"]["devices"] = [
        {"path": "/dev/c", "type": "c", "major": 10, "minor": 666},
        {"path": "/dev/u", "type": "u", "major": 10, "minor": 667},
        {"path": "/dev/b", "type": "b", "major": 8, "minor": 666},
        {"path": "/dev/p", "type": "p"},
    ]
    rules = _resources_with_devices(parse_spec(raw, bundle))["devices"]
    assert isinstance(rules, list)
    assert rules[: len(DEFAULT_ALLOW_RULES)] == list(DEFAULT_ALLOW_RULES)
    assert [(r["type"], r["major"], r["minor"]) for r in rules[len(DEFAULT_ALLOW_RULES) :]] == [
        ("c", 10, 666),
        ("c", 10, 667),
        ("b", 8, 666),
    ]
