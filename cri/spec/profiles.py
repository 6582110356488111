"""What a container asks for in a CRI SecurityProfile (seccomp, AppArmor), or in the deprecated
string field that came before it: "unconfined", a runtime-default name, or "localhost/<ref>"."""

from __future__ import annotations

from collections.abc import Collection

from cri.api.runtime.v1 import api_pb2 as v1
from cri.errors import InvalidArgument

UNCONFINED = "unconfined"
RUNTIME_DEFAULT = "runtime"
LOCALHOST = "localhost"
LOCALHOST_PREFIX = "localhost/"


def requested_profile(
    what: str,
    profile: v1.SecurityProfile | None,
    legacy: str,
    runtime_default_names: Collection[str],
) -> tuple[str, str]:
    """("", "") for nothing asked, else (UNCONFINED | RUNTIME_DEFAULT | LOCALHOST, ref). The
    profile field, where set, wins over the legacy string. `what` names the setting in errors."""
    if profile is not None:
        kind = profile.profile_type
        if kind != v1.SecurityProfile.Localhost and profile.localhost_ref:
            raise InvalidArgument(
                f"{what}: localhost_ref is only valid with profile_type Localhost"
            )
        if kind == v1.SecurityProfile.Unconfined:
            return UNCONFINED, ""
        if kind == v1.SecurityProfile.RuntimeDefault:
            return RUNTIME_DEFAULT, ""
        if kind == v1.SecurityProfile.Localhost:
            # the prefix should not be there in the new field, but containerd trims it too
            ref = profile.localhost_ref.removeprefix(LOCALHOST_PREFIX)
            if not ref:
                raise InvalidArgument(f"{what}: profile_type Localhost needs a localhost_ref")
            return LOCALHOST, ref
        raise InvalidArgument(f"{what}: unknown profile_type {kind}")
    if not legacy:
        return "", ""
    if legacy == UNCONFINED:
        return UNCONFINED, ""
    if legacy in runtime_default_names:
        return RUNTIME_DEFAULT, ""
    if legacy.startswith(LOCALHOST_PREFIX):
        return LOCALHOST, legacy.removeprefix(LOCALHOST_PREFIX)
    expected = ", ".join([*runtime_default_names, UNCONFINED, f"{LOCALHOST_PREFIX}<name>"])
    raise InvalidArgument(f"{what} {legacy!r}: expected {expected}")
