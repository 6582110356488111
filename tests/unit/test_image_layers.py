"""Unpacking layers in overlayfs format (cri.image.layers). Needs root (mknod, chown, trusted.*)."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from cri.errors import Internal, Unimplemented
from cri.image.layers import LayerStore, chain_ids
from cri.image.unpack import OPAQUE_XATTR, apply_layer, diff_id_of, unpack_layer
from tests.support.oci_build import MTIME, OCI_LAYER_TAR, Blob, BuiltLayer, Layer

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="unpacking layers needs root")


@pytest.fixture
def store(tmp_path: Path) -> LayerStore:
    return LayerStore(tmp_path / "images" / "layers")


def unpack(store: LayerStore, tmp_path: Path, layer: BuiltLayer, lower: str = "") -> Path:
    """Unpack `layer` on top of the layer with chain id `lower` (or at the bottom)."""
    chain_id = layer.diff_id if not lower else chain_ids([lower, layer.diff_id])[1]
    blob = tmp_path / f"blob-{layer.blob.digest[7:19]}"
    blob.write_bytes(layer.blob.data)
    unpack_layer(store, chain_id, blob, layer.diff_id, lower_chain_ids=[lower] if lower else [])
    return store.diff_dir(chain_id)


def raw_tar(*members: tuple[tarfile.TarInfo, bytes | None]) -> BuiltLayer:
    """A layer from hand-made tar headers, for names the Layer builder would never write."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return BuiltLayer(Blob(buf.getvalue(), OCI_LAYER_TAR), buf.getvalue())


def entry(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, 0o644
    return info


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_files_dirs_links_and_attributes(store: LayerStore, tmp_path: Path) -> None:
    layer = (
        Layer()
        .dir("etc", 0o750, 0, 4)
        .file("etc/conf", "x=1\n", 0o640, 1000, 1001)
        .file("usr/bin/suid", b"\x7fELF", 0o4755)
        .dir("tmp", 0o1777)
        .symlink("bin/sh", "/usr/bin/suid")
        .symlink("etc/rel", "../usr")
        .hardlink("usr/bin/alias", "usr/bin/suid")
        .fifo("run/fifo", 0o620)
        .file("etc/attr", "a", xattrs={"user.comment": "hello"})
        .build()
    )
    diff = unpack(store, tmp_path, layer)

    st = os.lstat(diff / "etc/conf")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 1001, 0o640)
    assert (diff / "etc/conf").read_text() == "x=1\n"
    assert int(st.st_mtime) == MTIME
    assert stat.S_IMODE(os.lstat(diff / "etc").st_mode) == 0o750
    assert os.lstat(diff / "etc").st_gid == 4
    assert int(os.lstat(diff / "etc").st_mtime) == MTIME  # set after its children were written
    assert stat.S_IMODE(os.lstat(diff / "usr/bin/suid").st_mode) == 0o4755  # setuid survives chown
    assert stat.S_IMODE(os.lstat(diff / "tmp").st_mode) == 0o1777
    assert os.readlink(diff / "bin/sh") == "/usr/bin/suid"  # absolute targets kept verbatim
    assert os.readlink(diff / "etc/rel") == "../usr"
    assert int(os.lstat(diff / "bin/sh").st_mtime) == MTIME
    assert os.lstat(diff / "usr/bin/alias").st_ino == os.lstat(diff / "usr/bin/suid").st_ino
    assert stat.S_ISFIFO(os.lstat(diff / "run/fifo").st_mode)
    assert os.getxattr(diff / "etc/attr", "user.comment") == b"hello"
    # Parents the tar implied without listing them: 0755 root, like containerd.
    assert stat.S_IMODE(os.lstat(diff / "usr").st_mode) == 0o755
    assert stat.S_IMODE(os.lstat(diff).st_mode) == 0o755


def test_device_nodes(store: LayerStore, tmp_path: Path) -> None:
    layer = Layer().device("dev/null", "c", 1, 3).device("dev/loop9", "b", 7, 9, 0o660).build()
    diff = unpack(store, tmp_path, layer)
    null, loop = os.lstat(diff / "dev/null"), os.lstat(diff / "dev/loop9")
    assert (
        stat.S_ISCHR(null.st_mode) and os.major(null.st_rdev) == 1 and os.minor(null.st_rdev) == 3
    )
    assert stat.S_ISBLK(loop.st_mode) and (os.major(loop.st_rdev), os.minor(loop.st_rdev)) == (7, 9)
    assert stat.S_IMODE(loop.st_mode) == 0o660


def test_whiteouts_and_opaque_directories(store: LayerStore, tmp_path: Path) -> None:
    layer = (
        Layer()
        .whiteout("etc/motd")
        .opaque("opt/data")
        .file("opt/data/new.txt", "new")
        .file("var/.wh..wh.plnk/123.456", "aufs hard-link bookkeeping")
        .build()
    )
    diff = unpack(store, tmp_path, layer)
    motd = os.lstat(diff / "etc/motd")
    assert stat.S_ISCHR(motd.st_mode) and motd.st_rdev == os.makedev(0, 0)
    assert os.getxattr(diff / "opt/data", OPAQUE_XATTR) == b"y"
    assert (diff / "opt/data/new.txt").read_text() == "new"
    assert not any(".wh." in p for p in tree(diff))
    with pytest.raises(OSError):
        os.getxattr(diff / "etc", OPAQUE_XATTR)


def test_forged_overlay_xattr_is_ignored(store: LayerStore, tmp_path: Path) -> None:
    layer = Layer().dir("d").file("d/f", "", xattrs={"trusted.overlay.opaque": "y"}).build()
    diff = unpack(store, tmp_path, layer)
    with pytest.raises(OSError):
        os.getxattr(diff / "d/f", OPAQUE_XATTR)


def test_security_xattr_failure_is_tolerated(store: LayerStore, tmp_path: Path) -> None:
    # A malformed file capability: the kernel refuses it (EINVAL); the layer still unpacks.
    layer = Layer().file("bin/ping", "", 0o755, xattrs={"security.capability": "garbage"}).build()
    diff = unpack(store, tmp_path, layer)
    assert (diff / "bin/ping").exists()


def test_implicit_parents_copy_the_lower_layer(store: LayerStore, tmp_path: Path) -> None:
    lower = Layer().dir("home/app", 0o700, 1000, 1000).build()
    unpack(store, tmp_path, lower)
    upper = Layer().file("home/app/.profile", "x").build()
    upper_layer = raw_tar(*[(info, data) for info, data in _members(upper) if info.isfile()])
    diff = unpack(store, tmp_path, upper_layer, lower.diff_id)
    st = os.lstat(diff / "home/app")
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (1000, 0o700)


def _members(layer: BuiltLayer) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    out = []
    with tarfile.open(fileobj=io.BytesIO(layer.tar)) as tar:
        for info in tar:
            f = tar.extractfile(info)
            out.append((info, f.read() if f else None))
    return out


def test_later_entries_replace_earlier_ones(store: LayerStore, tmp_path: Path) -> None:
    layer = raw_tar(
        (entry("a"), b"file first"),
        (entry("a", tarfile.DIRTYPE), None),
        (entry("a/inner"), b"inside"),
        (entry("b", tarfile.DIRTYPE), None),
        (entry("b/x"), b"gone with b"),
        (entry("b", tarfile.SYMTYPE, "a"), None),
    )
    diff = unpack(store, tmp_path, layer)
    assert (diff / "a/inner").read_text() == "inside"
    assert os.readlink(diff / "b") == "a"


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([(entry("../escape"), b"x")], "outside the layer"),
        ([(entry("a/../../escape"), b"x")], "outside the layer"),
        ([(entry("/etc/passwd"), b"x")], "absolute path"),
        ([(entry("lnk", tarfile.SYMTYPE, "/tmp"), None), (entry("lnk/x"), b"x")], "symlink"),
        ([(entry("lnk", tarfile.SYMTYPE, ".."), None), (entry("lnk/x"), b"x")], "symlink"),
        ([(entry("h", tarfile.LNKTYPE, "../../etc/passwd"), None)], "outside the layer"),
        ([(entry("h", tarfile.LNKTYPE, "/etc/passwd"), None)], "absolute path"),
        ([(entry("h", tarfile.LNKTYPE, "missing"), None)], "not in the layer"),
        (
            [
                (entry("l", tarfile.SYMTYPE, "/etc"), None),
                (entry("h", tarfile.LNKTYPE, "l/passwd"), None),
            ],
            "symlink",
        ),
        ([(entry("f"), b"x"), (entry("f/x"), b"y")], "non-directory"),
    ],
)
def test_hostile_layers_are_refused(
    store: LayerStore,
    tmp_path: Path,
    members: list[tuple[tarfile.TarInfo, bytes | None]],
    message: str,
) -> None:
    victim = tmp_path / "escape"
    with pytest.raises(Internal, match=message):
        unpack(store, tmp_path, raw_tar(*members))
    assert not victim.exists()
    assert os.listdir(store.root) == []  # nothing, not even a temporary directory


def test_diff_id_mismatch_leaves_nothing(store: LayerStore, tmp_path: Path) -> None:
    layer = Layer().file("f", "x").build()
    blob = tmp_path / "blob"
    blob.write_bytes(layer.blob.data)
    wrong = "sha256:" + "0" * 64
    with pytest.raises(Internal, match="image config says"):
        unpack_layer(store, wrong, blob, wrong)
    assert os.listdir(store.root) == []


def test_plain_and_gzip_give_the_same_diff_id(store: LayerStore, tmp_path: Path) -> None:
    builder = Layer().file("f", "same")
    gz, plain = builder.build(), builder.build(compress=False)
    assert gz.blob.data != plain.blob.data
    (tmp_path / "gz").write_bytes(gz.blob.data)
    (tmp_path / "plain").write_bytes(plain.blob.data)
    assert diff_id_of(tmp_path / "gz") == diff_id_of(tmp_path / "plain") == gz.diff_id
    with open(tmp_path / "plain", "rb") as f:
        (tmp_path / "out").mkdir()
        assert apply_layer(f, tmp_path / "out") == gz.diff_id


def test_zstd_and_garbage_are_refused(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    with pytest.raises(Unimplemented, match="zstd"):
        apply_layer(io.BytesIO(b"\x28\xb5\x2f\xfd" + b"\0" * 100), tmp_path / "out")
    with pytest.raises(Internal, match="not a valid tar"):
        apply_layer(io.BytesIO(b"\x1f\x8b" + b"not really gzip" * 10), tmp_path / "out")


def test_chain_ids() -> None:
    a, b, c = ("sha256:" + ch * 64 for ch in "abc")
    ab = "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()
    abc = "sha256:" + hashlib.sha256(f"{ab} {c}".encode()).hexdigest()
    assert chain_ids([a, b, c]) == [a, ab, abc]
    assert chain_ids([]) == []


def test_store_lifecycle(store: LayerStore, tmp_path: Path) -> None:
    layer = Layer().file("f", "x").build()
    diff = unpack(store, tmp_path, layer)
    assert store.has(layer.diff_id) and store.chain_ids() == {layer.diff_id}
    unpack(store, tmp_path, layer)  # a second unpack is a no-op
    assert diff.joinpath("f").read_text() == "x"
    (store.root / ".unpack-crashed").mkdir()
    (store.root / ".remove-crashed").mkdir()
    assert store.chain_ids() == {layer.diff_id}
    store.clean_temporary()
    store.remove(layer.diff_id)
    store.remove(layer.diff_id)  # idempotent
    assert os.listdir(store.root) == []
