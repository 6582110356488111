"""Which platform this host runs, in OCI/Go names, and how well an index entry fits it.

An image index lists one manifest per platform. We take the best match for the host, the way
containerd's `platforms.Only(host)` does: same OS and architecture, then the exact variant, then
older compatible variants (an armv7 host runs armv6 and armv5 images; an arm64 host also accepts
entries that omit the implied `v8`).
"""

from __future__ import annotations

import platform as _platform
from collections.abc import Mapping
from dataclasses import dataclass

# uname -m -> (GOARCH, default variant)
_MACHINE_TO_GO: Mapping[str, tuple[str, str]] = {
    "x86_64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "aarch64": ("arm64", "v8"),
    "arm64": ("arm64", "v8"),
    "armv8l": ("arm", "v8"),
    "armv7l": ("arm", "v7"),
    "armv7": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "armv5tel": ("arm", "v5"),
    "i386": ("386", ""),
    "i686": ("386", ""),
    "ppc64le": ("ppc64le", ""),
    "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""),
    "mips64": ("mips64le", ""),
    "loongarch64": ("loong64", ""),
}

# Variants that mean "nothing beyond the baseline": an absent variant equals these.
_IMPLIED_VARIANT: Mapping[str, str] = {"amd64": "v1", "arm64": "v8", "arm": "v7"}


@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


def host_platform() -> Platform:
    arch, variant = _MACHINE_TO_GO.get(_platform.machine().lower(), (_platform.machine(), ""))
    return Platform("linux", arch, variant)


def normalize(p: Platform) -> Platform:
    """Fold the aliases people write (x86_64, aarch64, an absent implied variant)."""
    os_name = p.os.lower()
    arch, default_variant = _MACHINE_TO_GO.get(p.architecture.lower(), (p.architecture.lower(), ""))
    variant = p.variant.lower() or default_variant or _IMPLIED_VARIANT.get(arch, "")
    return Platform(os_name, arch, variant)


def match_rank(host: Platform, candidate: Platform) -> int | None:
    """0 for an exact fit, larger for a worse but runnable fit, None if it cannot run here."""
    h, c = normalize(host), normalize(candidate)
    if h.os != c.os or h.architecture != c.architecture:
        return None
    if h.variant == c.variant:
        return 0
    hv, cv = _variant_level(h.variant), _variant_level(c.variant)
    if hv is None or cv is None or cv > hv:
        return None
    # NOTE: only arm's variants are a strict ladder that hardware runs downwards; amd64 v2..v4
    # need CPU features we do not probe, so the host is taken as v1 and only v1 images fit.
    if h.architecture != "arm":
        return None
    return hv - cv


def _variant_level(variant: str) -> int | None:
    if len(variant) >= 2 and variant[0] == "v" and variant[1:].isdigit():
        return int(variant[1:])
    return None
