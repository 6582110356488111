from __future__ import annotations

import os
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
