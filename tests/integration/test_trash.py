"""The trash (cri/storage/trash.py): what a removal moves there is unmounted and deleted."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cri.storage.mounts import mount, unmount
from cri.storage.trash import Trash, _unescape, mounts_under

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")


def tree_with_mounts(base: Path, name: str) -> Path:
    """base/name with a tmpfs inside it and a bind mount inside that, as a rootfs has."""
    top = base / name
    (top / "rootfs").mkdir(parents=True)
    mount("tmpfs", top / "rootfs", "tmpfs")
    (top / "rootfs" / "dev").mkdir()
    mount("tmpfs", top / "rootfs" / "dev", "tmpfs")
    (top / "rootfs" / "file").write_text("x")
    (top / "config.json").write_text("{}")
    return top


def test_discard_moves_then_unmounts_and_deletes(tmp_path: Path) -> None:
    root, state = tmp_path / "root", tmp_path / "state"
    root.mkdir()
    state.mkdir()
    trash = Trash([root, state])
    trash.start()
    try:
        one = tree_with_mounts(state, "one")
        two = tree_with_mounts(root, "two")
        trash.discard(one)
        trash.discard(two)
        assert not one.exists() and not two.exists()  # gone from their places at once
        trash.discard(state / "never-was")  # nothing to do
        trash.drain()
        assert mounts_under(tmp_path) == []
        assert list((state / "trash").iterdir()) == list((root / "trash").iterdir()) == []
    finally:
        trash.close()
        for point in sorted(mounts_under(tmp_path), reverse=True):
            unmount(Path(point))


def test_a_restart_sweeps_what_was_left(tmp_path: Path) -> None:
    left = tree_with_mounts(tmp_path / "trash", "left.0123")
    assert mounts_under(left)
    trash = Trash([tmp_path])
    trash.start()
    trash.drain()
    trash.close()
    assert mounts_under(tmp_path) == [] and not left.exists()


def test_without_start_discard_deletes_at_once(tmp_path: Path) -> None:
    tree = tree_with_mounts(tmp_path, "now")
    (tmp_path / "trash").mkdir()
    Trash([tmp_path]).discard(tree)
    assert mounts_under(tmp_path) == [] and list((tmp_path / "trash").iterdir()) == []


def test_outside_the_bases_is_refused(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    with pytest.raises(ValueError):
        Trash([tmp_path / "b"]).discard(tmp_path / "a")


def test_mountinfo_escapes() -> None:
    assert _unescape(r"/run/with\040space\011tab\134back") == "/run/with space\ttab\\back"
    assert _unescape("/plain") == "/plain"


def test_a_mount_point_with_a_space_is_found(tmp_path: Path) -> None:
    (tmp_path / "a b").mkdir()
    mount("tmpfs", tmp_path / "a b", "tmpfs")
    try:
        assert mounts_under(tmp_path) == [str(tmp_path / "a b")]
    finally:
        unmount(tmp_path / "a b")
