"""Writable container root filesystems: an overlay of image layers with a per-container upper."""

from cri.storage.rootfs import RootfsLayout, mount_rootfs, unmount_rootfs

__all__ = ["RootfsLayout", "mount_rootfs", "unmount_rootfs"]
