"""AppArmor in the executor, on real file layouts: the host flag, the profile asked for at the
next execve (per-LSM `attr/apparmor/exec`, or the older `attr/exec`), and where it is asked."""

from __future__ import annotations

from pathlib import Path

import pytest

from cri.oci import apparmor
from cri.oci.errors import InitFailed
from cri.oci.init import PreparedProcess, process_steps
from cri.oci.spec import parse_process
from cri.oci.syscalls import RealSyscalls


@pytest.fixture
def enabled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    flag = tmp_path / "enabled"
    flag.write_text("Y\n")
    monkeypatch.setattr(apparmor, "ENABLED_FLAG", str(flag))
    return flag


@pytest.mark.parametrize(("text", "expected"), [("Y\n", True), ("N\n", False), (None, False)])
def test_is_enabled_reads_the_module_flag(tmp_path: Path, text: str | None, expected: bool) -> None:
    flag = tmp_path / "enabled"
    if text is not None:
        flag.write_text(text)
    assert apparmor.is_enabled(str(flag)) is expected


def test_profile_goes_to_the_per_lsm_attr(tmp_path: Path) -> None:
    attr = tmp_path / "thread-self" / "attr"
    (attr / "apparmor").mkdir(parents=True)
    (attr / "apparmor" / "exec").write_text("")
    (attr / "exec").write_text("")
    apparmor.apply_on_exec("cri-py-default", proc=str(tmp_path))
    assert (attr / "apparmor" / "exec").read_text() == "exec cri-py-default"
    assert (attr / "exec").read_text() == ""


def test_profile_goes_to_the_old_attr_without_a_per_lsm_one(tmp_path: Path) -> None:
    attr = tmp_path / "thread-self" / "attr"
    attr.mkdir(parents=True)
    (attr / "exec").write_text("")
    apparmor.apply_on_exec("localhost-profile", proc=str(tmp_path))
    assert (attr / "exec").read_text() == "exec localhost-profile"


def test_no_attr_file_is_an_init_failure(tmp_path: Path) -> None:
    with pytest.raises(InitFailed, match="cannot apply profile 'p'"):
        apparmor.apply_on_exec("p", proc=str(tmp_path))


def test_spec_profile_parsed_where_the_host_has_apparmor(enabled: Path) -> None:
    assert parse_process({"args": ["x"], "apparmorProfile": "p"}).apparmor_profile == "p"
    assert parse_process({"args": ["x"]}).apparmor_profile is None
    enabled.write_text("N\n")
    with pytest.raises(Exception, match="AppArmor is disabled"):
        parse_process({"args": ["x"], "apparmorProfile": "p"})


def test_profile_is_asked_for_before_no_new_privs(enabled: Path) -> None:
    proc = parse_process({"args": ["x"], "apparmorProfile": "p", "noNewPrivileges": True})
    names = [name for name, _ in process_steps(RealSyscalls(), proc, PreparedProcess())]
    assert names.index("apparmor") < names.index("no_new_privileges")
    plain = parse_process({"args": ["x"]})
    steps = process_steps(RealSyscalls(), plain, PreparedProcess())
    assert "apparmor" not in [name for name, _ in steps]
