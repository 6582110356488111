"""Prepare and tear down the overlay root filesystem of one container or sandbox.

The upper and work dirs live under the persistent root, so a container's writes survive a daemon
restart; the mount point lives under the runtime state dir, which a reboot empties.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from cri.oci.syscalls import RealSyscalls
from cri.storage.mounts import mount, unmount

_sys = RealSyscalls()

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RootfsLayout:
    data_dir: Path  # persistent: upper/ and work/
    mount_point: Path  # runtime: where the overlay is mounted

    @property
    def upper(self) -> Path:
        return self.data_dir / "upper"

    @property
    def work(self) -> Path:
        return self.data_dir / "work"


def mount_rootfs(layout: RootfsLayout, lower_dirs: list[Path]) -> Path:
    """Mount the overlay (top layer first in `lower_dirs`) and return the mount point."""
    if not lower_dirs:
        raise ValueError("an image with no layers has no root filesystem")
    layout.upper.mkdir(parents=True, exist_ok=True)
    layout.work.mkdir(parents=True, exist_ok=True)
    layout.mount_point.mkdir(parents=True, exist_ok=True)
    lower = ":".join(str(d) for d in lower_dirs)
    options = f"lowerdir={lower},upperdir={layout.upper},workdir={layout.work}"
    # The kernel takes at most one page of mount options; many deep layers need shorter paths.
    if len(options) >= 4096:
        raise OSError(f"overlay options too long ({len(options)} bytes) "
                      f"for {len(lower_dirs)} layers")
    mount("overlay", layout.mount_point, "overlay", 0, options)
    return layout.mount_point


def mount_idmapped_rootfs(layout: RootfsLayout, lower_dirs: list[Path], userns: Path,
                          root_uid: int, root_gid: int) -> Path:
    """The overlay for a container in a user namespace: each layer bound idmapped through the
    namespace's mappings (so the image's root-owned files belong to the container's root), the
    upper layer owned by the mapped root. The layer binds are detached once the overlay holds
    them, so nothing but the overlay itself is left to unmount."""
    if not lower_dirs:
        raise ValueError("an image with no layers has no root filesystem")
    staging = layout.mount_point.parent / "idmapped-layers"
    staging.mkdir(parents=True, exist_ok=True)
    layout.upper.mkdir(parents=True, exist_ok=True)
    layout.work.mkdir(parents=True, exist_ok=True)
    os.chown(layout.upper, root_uid, root_gid)
    layout.mount_point.mkdir(parents=True, exist_ok=True)
    fd = os.open(userns, os.O_RDONLY | os.O_CLOEXEC)
    binds: list[Path] = []
    try:
        for index, layer in enumerate(lower_dirs):
            target = staging / str(index)
            target.mkdir(exist_ok=True)
            _sys.idmapped_bind(str(layer), str(target), fd)
            binds.append(target)
        lower = ":".join(str(b) for b in binds)
        mount("overlay", layout.mount_point, "overlay", 0,
              f"lowerdir={lower},upperdir={layout.upper},workdir={layout.work}")
    finally:
        os.close(fd)
        for target in binds:
            unmount(target)
        shutil.rmtree(staging, ignore_errors=True)
    return layout.mount_point


def unmount_rootfs(layout: RootfsLayout) -> None:
    """Unmount and delete everything the layout holds; safe to call more than once."""
    unmount(layout.mount_point)
    shutil.rmtree(layout.mount_point, ignore_errors=True)
    if layout.data_dir.exists():
        shutil.rmtree(layout.data_dir, ignore_errors=True)
