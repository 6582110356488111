from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from cri.oci.errors import InvalidSpec
from cri.oci.spec import parse_process, parse_spec

BASE: dict[str, Any] = {
    "ociVersion": "1.0.2",
    "root": {"path": "rootfs"},
    "process": {"args": ["sh"], "cwd": "/", "env": ["PATH=/bin"]},
    "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
    "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "uts"}]},
}


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    (tmp_path / "rootfs").mkdir()
    return tmp_path


def _spec(**changes: Any) -> dict[str, Any]:
    raw = copy.deepcopy(BASE)
    for key, value in changes.items():
        raw[key] = value
    return raw


def test_valid_spec_is_typed(bundle: Path) -> None:
    spec = parse_spec(_spec(hostname="h"), bundle)
    assert spec.root == str(bundle / "rootfs")
    assert spec.process.args == ("sh",)
    assert spec.new_namespace("pid") and spec.namespace("network") is None
    assert spec.mounts[0].type == "proc"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"root": {"path": "missing"}}, "does not exist"),
        ({"ociVersion": "0.9"}, "ociVersion"),
        ({"process": {"args": [], "cwd": "/"}}, "process.args must not be empty"),
        ({"process": {"args": ["sh"], "cwd": "relative"}}, "absolute"),
        ({"process": {"args": ["sh"], "env": ["NOEQUALS"]}}, "KEY=VALUE"),
        (
            {"linux": {"namespaces": [{"type": "mount"}, {"type": "bogus"}]}},
            "unknown namespace type 'bogus'",
        ),
        ({"linux": {"namespaces": [{"type": "mount"}, {"type": "mount"}]}}, "given twice"),
        (
            {
                "linux": {
                    "namespaces": [{"type": "mount"}, {"type": "network", "path": "/no/such/ns"}]
                }
            },
            "does not exist",
        ),
        ({"hostname": "x", "linux": {"namespaces": [{"type": "mount"}]}}, "UTS"),
        ({"mounts": [{"destination": "rel", "type": "tmpfs"}]}, "absolute"),
        ({"mounts": [{"destination": "/x", "source": "/x"}]}, "type is required"),
        (
            {
                "mounts": [
                    {
                        "destination": "/x",
                        "type": "bind",
                        "source": "/no/such",
                        "options": ["rbind"],
                    }
                ]
            },
            "bind source",
        ),
        (
            {"mounts": [{"destination": "/x", "type": "tmpfs", "options": ["idmap"]}]},
            "not supported",
        ),
        (
            {"process": {"args": ["sh"], "capabilities": {"bounding": ["CAP_BOGUS"]}}},
            "unknown capability",
        ),
        (
            {
                "process": {
                    "args": ["sh"],
                    "rlimits": [{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}],
                }
            },
            "unknown rlimit",
        ),
        (
            {"linux": {"namespaces": [{"type": "mount"}], "cgroupsPath": "system.slice:cri:x"}},
            "systemd",
        ),
        (
            {
                "linux": {
                    "namespaces": [{"type": "mount"}],
                    "devices": [{"path": "/etc/x", "type": "c"}],
                }
            },
            "under /dev",
        ),
    ],
)
def test_invalid_specs(bundle: Path, change: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidSpec, match=message):
        parse_spec(_spec(**change), bundle)


def test_no_namespaces_at_all_is_valid(bundle: Path) -> None:
    """Each namespace type left out is the runtime's, the mount namespace included (runc too)."""
    spec = parse_spec(_spec(linux={"namespaces": []}), bundle)
    assert spec.namespace("mount") is None


def test_hostname_in_a_joined_uts_namespace(bundle: Path) -> None:
    namespaces = [{"type": "mount"}, {"type": "uts", "path": "/proc/self/ns/uts"}]
    spec = parse_spec(_spec(hostname="h", linux={"namespaces": namespaces}), bundle)
    assert spec.hostname == "h" and not spec.new_namespace("uts")


def test_process_defaults() -> None:
    proc = parse_process({"args": ["x"]})
    assert (
        proc.cwd == "/"
        and proc.user.uid == 0
        and proc.capabilities is None
        and not proc.no_new_privileges
    )
