"""CRI AppArmor settings to `process.apparmorProfile`, with and without AppArmor on the node
(this machine has none: the kernel's profile list is a real file layout under tmp_path)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cri.api.runtime.v1 import api_pb2 as v1
from cri.errors import FailedPrecondition, InvalidArgument
from cri.spec.apparmor import (
    DEFAULT_PROFILE,
    DefaultProfileLoader,
    apparmor_for,
    default_profile_text,
)

RUNTIME_DEFAULT = v1.SecurityProfile(profile_type=v1.SecurityProfile.RuntimeDefault)
UNCONFINED = v1.SecurityProfile(profile_type=v1.SecurityProfile.Unconfined)


def localhost(name: str) -> v1.SecurityProfile:
    return v1.SecurityProfile(profile_type=v1.SecurityProfile.Localhost, localhost_ref=name)


@pytest.fixture
def profiles(tmp_path: Path) -> Path:
    """/sys/kernel/security/apparmor/profiles with our default and one node profile loaded."""
    path = tmp_path / "profiles"
    path.write_text(f"{DEFAULT_PROFILE} (enforce)\nk8s-nginx (enforce)\nother (complain)\n")
    return path


@pytest.fixture
def loader(profiles: Path) -> DefaultProfileLoader:
    return DefaultProfileLoader(parser="/nonexistent/apparmor_parser", profiles_file=str(profiles))


@pytest.mark.parametrize(("profile", "legacy", "privileged", "expected"), [
    (None, "", False, DEFAULT_PROFILE),  # nothing asked: the default (kubernetes#51746)
    (None, "", True, None),  # ... but not for privileged containers
    (RUNTIME_DEFAULT, "", False, DEFAULT_PROFILE),
    (RUNTIME_DEFAULT, "", True, None),
    (UNCONFINED, "", False, None),
    (localhost("k8s-nginx"), "", False, "k8s-nginx"),
    (localhost("localhost/k8s-nginx"), "", True, "k8s-nginx"),  # explicit: even privileged
    (None, "runtime/default", False, DEFAULT_PROFILE),
    (None, "unconfined", False, None),
    (None, "localhost/k8s-nginx", False, "k8s-nginx"),
    (UNCONFINED, "localhost/k8s-nginx", False, None),  # the field wins over the old string
])
def test_with_apparmor_on_the_node(profile: v1.SecurityProfile | None, legacy: str,
                                   privileged: bool, expected: str | None,
                                   loader: DefaultProfileLoader, profiles: Path) -> None:
    assert apparmor_for(profile, legacy, privileged, enabled=True, loader=loader,
                        profiles_file=str(profiles)) == expected


@pytest.mark.parametrize(("profile", "legacy", "error"), [
    (localhost("not-loaded"), "", FailedPrecondition),
    (localhost(""), "", InvalidArgument),
    (v1.SecurityProfile(profile_type=v1.SecurityProfile.RuntimeDefault, localhost_ref="x"), "",
     InvalidArgument),
    (None, "bogus", InvalidArgument),
])
def test_bad_requests(profile: v1.SecurityProfile | None, legacy: str, error: type[Exception],
                      loader: DefaultProfileLoader, profiles: Path) -> None:
    with pytest.raises(error):
        apparmor_for(profile, legacy, False, enabled=True, loader=loader,
                     profiles_file=str(profiles))


@pytest.mark.parametrize(("profile", "legacy"), [(None, ""), (UNCONFINED, ""),
                                                 (None, "unconfined")])
def test_without_apparmor_nothing_or_unconfined_runs_unconfined(
        profile: v1.SecurityProfile | None, legacy: str) -> None:
    assert apparmor_for(profile, legacy, False, enabled=False) is None


@pytest.mark.parametrize(("profile", "legacy"), [(RUNTIME_DEFAULT, ""), (localhost("p"), ""),
                                                 (None, "runtime/default")])
def test_without_apparmor_a_profile_fails_rather_than_run_unconfined(
        profile: v1.SecurityProfile | None, legacy: str) -> None:
    with pytest.raises(FailedPrecondition, match="not enabled"):
        apparmor_for(profile, legacy, False, enabled=False)


def test_the_host_flag_read_for_real() -> None:
    """Nothing asked: no profile without AppArmor (this machine kind), else the default one
    (or a clear error where apparmor_parser is missing)."""
    from cri.oci.apparmor import is_enabled

    if not is_enabled():
        assert apparmor_for(None, "", False) is None
        return
    try:
        assert apparmor_for(None, "", False) == DEFAULT_PROFILE
    except FailedPrecondition as e:
        assert "apparmor_parser" in str(e)


def test_default_profile_is_loaded_once_and_a_missing_parser_is_reported(tmp_path: Path) -> None:
    empty = tmp_path / "profiles"
    empty.write_text("")
    missing = DefaultProfileLoader(parser="/nonexistent/apparmor_parser",
                                   profiles_file=str(empty))
    with pytest.raises(FailedPrecondition, match="apparmor_parser is not installed"):
        missing.ensure_loaded()
    # a parser that records what it was given (a real program, standing in for the kernel's)
    parser = tmp_path / "parser"
    parser.write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path}/calls\ncat > {tmp_path}/loaded\n")
    parser.chmod(0o755)
    loader = DefaultProfileLoader(parser=str(parser), profiles_file=str(empty))
    loader.ensure_loaded()
    loader.ensure_loaded()
    assert (tmp_path / "calls").read_text() == "-Kr\n"
    assert (tmp_path / "loaded").read_text() == default_profile_text()


def test_default_profile_text_names_itself_and_balances() -> None:
    text = default_profile_text("p1")
    assert "profile p1 flags=(attach_disconnected,mediate_deleted) {" in text
    assert "peer=p1," in text and "deny mount," in text and "@{PROC}" in text
    assert text.count("{") == text.count("}")
