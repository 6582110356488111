"""Applying a layer tar: what the pull helper does to fill the layer store (`layers.py`).

A tar is applied the way containerd's overlay applier does it:

* `.wh.NAME` (a whiteout: NAME was deleted) becomes a 0/0 character device named NAME;
* `.wh..wh..opq` (an opaque directory: hide everything below in lower layers) becomes the
  xattr `trusted.overlay.opaque=y` on its directory;
* other `.wh..wh.*` entries, and whatever lies below them (`.wh..wh.plnk/`), are aufs
  bookkeeping and are skipped.

Modes, owners (numeric uid/gid; names are ignored), mtimes, symlinks, hard links to files earlier
in the same layer, device nodes, fifos and `SCHILY.xattr.*` records are reproduced. Setting an
xattr in the `security.` namespace may fail on some file systems (SELinux labels without SELinux,
for example); those failures are logged and ignored.

Safety: a layer comes from a registry, so it is untrusted. Entry names that are absolute or
contain `..` are refused, as is any entry whose parent path runs through a symlink, and hard link
targets obey the same rules. Files are opened with O_NOFOLLOW. We are the only writer of the
temporary directory while a layer unpacks, so checking with lstat before each step is enough.

Crash safety: the layer is unpacked under `.unpack-*`, its diff_id (sha256 of the uncompressed
tar, computed while unpacking) is checked against the image config, the data is synced, and only
then is the directory renamed to its chain id. Removal renames to `.remove-*` first. A crash
leaves only dot-directories, which `clean_temporary` deletes at start-up.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import io
import logging
import os
import shutil
import stat
import tarfile
import tempfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from cri.errors import Unimplemented
from cri.image.digest import ALGORITHM
from cri.image.layers import UNPACK_PREFIX, LayerError, LayerStore, remove_tree

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

log = logging.getLogger(__name__)

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
OPAQUE_WHITEOUT = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
_XATTR_PAX_PREFIX = "SCHILY.xattr."
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_READ_SIZE = 1 << 20


def unpack_layer(
    store: LayerStore, chain_id: str, blob: Path, diff_id: str, lower_chain_ids: Sequence[str] = ()
) -> None:
    """Unpack the (gzip or plain) tar `blob` as layer `chain_id`, unless already there.

    `lower_chain_ids` are the layers below, top first; directories the tar implies without
    listing them take their owner and mode from there, as containerd does.
    """
    final = store.dir(chain_id)
    if store.has(chain_id):
        return
    tmp = Path(tempfile.mkdtemp(prefix=UNPACK_PREFIX, dir=store.root))
    try:
        os.chmod(tmp, 0o755)
        diff = tmp / "diff"
        diff.mkdir(mode=0o755)
        with open(blob, "rb") as f:
            actual = apply_layer(f, diff, lowers=[store.diff_dir(c) for c in lower_chain_ids])
        if actual != diff_id:
            raise LayerError(
                f"layer {chain_id}: uncompressed content has digest {actual}, but the "
                f"image config says {diff_id}"
            )
        # NOTE: once renamed, the layer counts as complete. Flush its files first so that a
        # power cut cannot leave a complete-looking layer with empty files. One sync per
        # layer is cheap next to the download.
        os.sync()
        try:
            os.rename(tmp, final)
        except OSError as e:
            if e.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not store.has(chain_id):
                raise
            # Another pull unpacked the same layer first; theirs is as good as ours.
            remove_tree(tmp)
    except BaseException:
        remove_tree(tmp)
        raise
    log.info("unpacked layer %s", chain_id)


def diff_id_of(blob: Path) -> str:
    """sha256 of the uncompressed tar, without unpacking it."""
    with open(blob, "rb") as f:
        reader = _HashingReader(_decompressed(f))
        reader.drain()
    return reader.digest()


def apply_layer(stream: BinaryIO, dest: Path, *, lowers: Sequence[Path] = ()) -> str:
    """Apply a (gzip or plain) layer tar into the empty directory `dest`; return its diff_id."""
    reader = _HashingReader(_decompressed(stream))
    applier = _Applier(dest, lowers)
    try:
        with tarfile.open(
            fileobj=reader,
            mode="r|",
            encoding="utf-8",
            errors="surrogateescape",
        ) as tar:
            for member in tar:
                applier.apply(tar, member)
        reader.drain()
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise LayerError(f"layer is not a valid tar archive: {e}") from None
    applier.finish()
    return reader.digest()


def _decompressed(f: BinaryIO) -> io.BufferedIOBase | BinaryIO:
    magic = f.read(4)
    f.seek(0)
    if magic.startswith(_GZIP_MAGIC):
        return gzip.GzipFile(fileobj=f, mode="rb")
    if magic == _ZSTD_MAGIC:
        raise Unimplemented("zstd-compressed layers are not supported")
    return f


class _HashingReader(io.RawIOBase):
    """Hashes every byte tarfile reads, so the diff_id costs no second pass."""

    def __init__(self, inner: io.BufferedIOBase | BinaryIO) -> None:
        super().__init__()
        self._inner = inner
        self._hash = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        data = self._inner.read(len(view))
        self._hash.update(data)
        view[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        # tarfile stops at the end-of-archive marker; the padding after it is part of the tar
        # the diff_id was computed over.
        while self.read(_READ_SIZE):
            pass

    def digest(self) -> str:
        return f"{ALGORITHM}:{self._hash.hexdigest()}"


def _clean_name(name: str, what: str) -> tuple[str, ...]:
    if name.startswith("/"):
        raise LayerError(f"layer {what} {name!r} is an absolute path")
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise LayerError(f"layer {what} {name!r} points outside the layer")
    return parts


class _Applier:
    def __init__(self, dest: Path, lowers: Sequence[Path]) -> None:
        self.dest = dest
        self.lowers = lowers
        # Directory mtimes are set last: creating entries inside a directory changes its mtime.
        self._dir_times: dict[Path, float] = {}

    def apply(self, tar: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        parts = _clean_name(m.name, "entry")
        if not parts:
            return  # the layer root itself: the diff directory keeps its own attributes
        if any(p.startswith(WHITEOUT_META_PREFIX) for p in parts[:-1]):
            log.debug("skipping aufs metadata entry %r", m.name)
            return
        parent = self._parent(parts[:-1], m.name)
        base = parts[-1]
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(parent, base, m)
            return
        target = parent / base
        if m.isdir():
            if not _is_real_dir(target):
                _remove(target)
                target.mkdir(mode=0o700)
            self._attrs(target, m)
            self._dir_times[target] = m.mtime
            return
        _remove(target)
        if m.isreg():
            self._file(tar, m, target)
        elif m.issym():
            os.symlink(m.linkname, target)
        elif m.islnk():
            self._hardlink(m, target)
            return  # the inode already has its attributes
        elif m.ischr() or m.isblk():
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            os.mknod(target, kind | 0o600, os.makedev(m.devmajor, m.devminor))
        elif m.isfifo():
            os.mkfifo(target, 0o600)
        else:
            log.debug("skipping layer entry %r of tar type %r", m.name, m.type)
            return
        self._attrs(target, m)

    def finish(self) -> None:
        # Deepest first, so setting a child's time cannot disturb its parent's again.
        for path in sorted(self._dir_times, key=lambda p: len(p.parts), reverse=True):
            ns = int(self._dir_times[path] * 1_000_000_000)
            os.utime(path, ns=(ns, ns), follow_symlinks=False)

    def _parent(self, parts: tuple[str, ...], name: str) -> Path:
        """The entry's parent directory, created if the tar did not list it."""
        path = self.dest
        for i, part in enumerate(parts):
            path = path / part
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                self._implicit_dir(path, parts[: i + 1])
                continue
            if stat.S_ISLNK(st.st_mode):
                raise LayerError(f"layer entry {name!r} goes through the symlink {part!r}")
            if not stat.S_ISDIR(st.st_mode):
                raise LayerError(f"layer entry {name!r} is below the non-directory {part!r}")
        return path

    def _implicit_dir(self, path: Path, rel: tuple[str, ...]) -> None:
        path.mkdir(mode=0o755)
        for lower in self.lowers:
            try:
                st = os.lstat(lower.joinpath(*rel))
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode):
                os.chown(path, st.st_uid, st.st_gid)
                os.chmod(path, stat.S_IMODE(st.st_mode))
                self._dir_times[path] = st.st_mtime
            return
        os.chmod(path, 0o755)

    def _whiteout(self, parent: Path, base: str, m: tarfile.TarInfo) -> None:
        if base == OPAQUE_WHITEOUT:
            os.setxattr(parent, OPAQUE_XATTR, b"y", follow_symlinks=False)
            return
        if base.startswith(WHITEOUT_META_PREFIX):
            log.debug("skipping aufs metadata entry %r", m.name)
            return
        name = base[len(WHITEOUT_PREFIX) :]
        if name in ("", ".", ".."):
            raise LayerError(f"layer entry {m.name!r} is an invalid whiteout")
        target = parent / name
        _remove(target)
        os.mknod(target, stat.S_IFCHR, os.makedev(0, 0))
        os.chown(target, m.uid, m.gid, follow_symlinks=False)

    def _file(self, tar: tarfile.TarFile, m: tarfile.TarInfo, target: Path) -> None:
        src = tar.extractfile(m)
        if src is None:
            raise LayerError(f"layer entry {m.name!r} has no data")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        with src, os.fdopen(os.open(target, flags, 0o600), "wb") as out:
            shutil.copyfileobj(src, out, _READ_SIZE)

    def _hardlink(self, m: tarfile.TarInfo, target: Path) -> None:
        parts = _clean_name(m.linkname, "hard link target")
        if not parts:
            raise LayerError(f"layer entry {m.name!r} is a hard link to the layer root")
        source = self._parent(parts[:-1], m.linkname) / parts[-1]
        try:
            st = os.lstat(source)
        except FileNotFoundError:
            raise LayerError(
                f"layer entry {m.name!r} links to {m.linkname!r}, which is not in the layer"
            ) from None
        if stat.S_ISDIR(st.st_mode):
            raise LayerError(f"layer entry {m.name!r} is a hard link to a directory")
        os.link(source, target, follow_symlinks=False)

    def _attrs(self, path: Path, m: tarfile.TarInfo) -> None:
        os.chown(path, m.uid, m.gid, follow_symlinks=False)
        if not m.issym():
            # After chown: chown clears the setuid and setgid bits.
            os.chmod(path, m.mode & 0o7777)
        for key, value in m.pax_headers.items():
            if key.startswith(_XATTR_PAX_PREFIX):
                self._xattr(path, key[len(_XATTR_PAX_PREFIX) :], value, m.name)
        if not m.isdir():
            ns = int(m.mtime * 1_000_000_000)
            os.utime(path, ns=(ns, ns), follow_symlinks=False)

    def _xattr(self, path: Path, name: str, value: str, entry: str) -> None:
        if name.startswith("trusted.overlay."):
            # Only whiteout entries may say what overlayfs hides; a raw xattr could forge it.
            log.warning("ignoring overlay xattr %s on layer entry %r", name, entry)
            return
        raw = value.encode("utf-8", "surrogateescape")
        try:
            os.setxattr(path, name, raw, follow_symlinks=False)
        except OSError as e:
            if name.startswith("security.") and e.errno in (
                errno.EPERM,
                errno.ENOTSUP,
                errno.EOPNOTSUPP,
                errno.EINVAL,
                errno.EACCES,
            ):
                log.debug("cannot set %s on layer entry %r: %s", name, entry, e)
                return
            raise LayerError(f"cannot set xattr {name} on layer entry {entry!r}: {e}") from None


def _is_real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def _remove(path: Path) -> None:
    """Make room for a new entry: a later tar entry for the same name replaces the earlier one."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)
