"""The OCI image config document: what containers inherit from an image, and its layer ids.

Go writes absent slices and maps as `null`, so every field is read defensively: a missing or
null field is the empty value, never an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cri.errors import Internal
from cri.image.digest import is_digest


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """The `config` section of an OCI image config (Docker's `ContainerConfig` subset)."""

    user: str = ""
    env: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    working_dir: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    stop_signal: str = ""
    volumes: tuple[str, ...] = ()


def image_config(doc: Mapping[str, Any]) -> ImageConfig:
    section = doc.get("config")
    c: Mapping[str, Any] = section if isinstance(section, dict) else {}
    labels = c.get("Labels")
    volumes = c.get("Volumes")
    return ImageConfig(
        user=_str(c.get("User")),
        env=_strings(c.get("Env")),
        entrypoint=_strings(c.get("Entrypoint")),
        cmd=_strings(c.get("Cmd")),
        working_dir=_str(c.get("WorkingDir")),
        labels={str(k): _str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
        stop_signal=_str(c.get("StopSignal")),
        volumes=tuple(sorted(str(v) for v in volumes)) if isinstance(volumes, dict) else (),
    )


def diff_ids(doc: Mapping[str, Any], what: str) -> list[str]:
    """The config's `rootfs.diff_ids`, checked to be sha256 digests."""
    rootfs = doc.get("rootfs")
    ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(ids, list) or not all(isinstance(d, str) and is_digest(d) for d in ids):
        raise Internal(f"{what}: image config has no valid rootfs.diff_ids")
    return list(ids)


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _strings(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    return ()
