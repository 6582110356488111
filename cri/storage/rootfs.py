"""Prepare and tear down the overlay root filesystem of one container or sandbox.

The upper and work dirs live under the persistent root, so a container's writes survive a daemon
restart; the mount point lives under the runtime state dir, which a reboot empties.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from cri.storage.mounts import mount, unmount

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


def unmount_rootfs(layout: RootfsLayout) -> None:
    """Unmount and delete everything the layout holds; safe to call more than once."""
    unmount(layout.mount_point)
    shutil.rmtree(layout.mount_point, ignore_errors=True)
    if layout.data_dir.exists():
        shutil.rmtree(layout.data_dir, ignore_errors=True)
