"""Build OCI (or Docker schema 2) images in Python and push them to a registry.

Everything is deterministic (fixed mtimes, sorted entries, gzip mtime 0, canonical JSON), so the
same inputs give the same digests on every run.

    layer = Layer().dir("etc").file("etc/hostname", "x\\n").symlink("bin/sh", "busybox")
    image = build_image([layer.build()], {"Cmd": ["sh"]})
    push_image("127.0.0.1:5000", "test/thing", "1.0", image)

`busybox_image()` is a small but real image around Debian's static busybox (`/bin/busybox`),
`whiteout_layer()` a second layer for it that deletes a file and makes a directory opaque.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import requests

MTIME = 1577836800  # 2020-01-01T00:00:00Z
CREATED = "2020-01-01T00:00:00Z"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

BUSYBOX = Path("/bin/busybox")
BUSYBOX_APPLETS = (
    *("sh", "ls", "cat", "echo", "sleep", "id", "true", "false", "env", "hostname", "ps"),
    *("mount", "wc", "head", "tail", "grep", "printf", "test", "kill", "uname", "yes"),
)
PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "app:x:1000:1000:app:/home/app:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
GROUP = "root:x:0:\napp:x:1000:\nnogroup:x:65534:\n"


@dataclass(frozen=True, slots=True)
class Blob:
    data: bytes
    media_type: str

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.data).hexdigest()

    @property
    def size(self) -> int:
        return len(self.data)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


@dataclass(frozen=True, slots=True)
class BuiltLayer:
    blob: Blob  # what is pushed (gzip unless built with compress=False)
    tar: bytes  # the uncompressed tar

    @property
    def diff_id(self) -> str:
        return "sha256:" + hashlib.sha256(self.tar).hexdigest()


@dataclass(frozen=True, slots=True)
class BuiltImage:
    config: Blob
    layers: tuple[BuiltLayer, ...]
    manifest: Blob

    @property
    def digest(self) -> str:
        """The manifest digest (what a repo digest names)."""
        return self.manifest.digest

    @property
    def id(self) -> str:
        """The image id a runtime reports: the config digest."""
        return self.config.digest

    @property
    def size(self) -> int:
        return self.config.size + sum(layer.blob.size for layer in self.layers)


@dataclass(slots=True)
class _Entry:
    kind: str  # d f l h c b p (dir file symlink hardlink char block fifo)
    mode: int
    data: bytes = b""
    link: str = ""
    uid: int = 0
    gid: int = 0
    dev: tuple[int, int] = (0, 0)
    xattrs: dict[str, str] = field(default_factory=dict)


class Layer:
    """A layer described entry by entry. Missing parent directories are added (0755 root)."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def dir(self, path: str, mode: int = 0o755, uid: int = 0, gid: int = 0) -> Layer:
        self._entries[_norm(path)] = _Entry("d", mode, uid=uid, gid=gid)
        return self

    def file(
        self,
        path: str,
        data: bytes | str = b"",
        mode: int = 0o644,
        uid: int = 0,
        gid: int = 0,
        xattrs: Mapping[str, str] | None = None,
    ) -> Layer:
        raw = data.encode() if isinstance(data, str) else data
        self._entries[_norm(path)] = _Entry(
            "f", mode, raw, uid=uid, gid=gid, xattrs=dict(xattrs or {})
        )
        return self

    def symlink(self, path: str, target: str) -> Layer:
        self._entries[_norm(path)] = _Entry("l", 0o777, link=target)
        return self

    def hardlink(self, path: str, target: str) -> Layer:
        """A hard link to `target`, a path inside this layer (written before links)."""
        self._entries[_norm(path)] = _Entry("h", 0o755, link=_norm(target))
        return self

    def device(self, path: str, kind: str, major: int, minor: int, mode: int = 0o666) -> Layer:
        assert kind in ("c", "b")
        self._entries[_norm(path)] = _Entry(kind, mode, dev=(major, minor))
        return self

    def fifo(self, path: str, mode: int = 0o644) -> Layer:
        self._entries[_norm(path)] = _Entry("p", mode)
        return self

    def whiteout(self, path: str) -> Layer:
        """Delete `path` (from the layers below): a `.wh.NAME` entry."""
        parent, _, name = _norm(path).rpartition("/")
        return self.file(f"{parent}/.wh.{name}" if parent else f".wh.{name}", mode=0o600)

    def opaque(self, path: str) -> Layer:
        """Hide everything the layers below have in directory `path`."""
        if _norm(path) not in self._entries:
            self.dir(path)
        return self.file(f"{_norm(path)}/.wh..wh..opq", mode=0o600)

    def tree(self, root: Path, prefix: str = "") -> Layer:
        """Add a directory tree from disk (modes, owners, symlinks and hard links kept)."""
        seen: dict[tuple[int, int], str] = {}
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(dirnames) + sorted(filenames):
                full = Path(dirpath, name)
                rel = _norm(f"{prefix}/{full.relative_to(root)}")
                st = os.lstat(full)
                mode = stat.S_IMODE(st.st_mode)
                if stat.S_ISDIR(st.st_mode):
                    self.dir(rel, mode, st.st_uid, st.st_gid)
                elif stat.S_ISLNK(st.st_mode):
                    self.symlink(rel, os.readlink(full))
                elif stat.S_ISREG(st.st_mode):
                    key = (st.st_dev, st.st_ino)
                    if st.st_nlink > 1 and key in seen:
                        self.hardlink(rel, seen[key])
                    else:
                        seen[key] = rel
                        self.file(rel, full.read_bytes(), mode, st.st_uid, st.st_gid)
        return self

    def build(self, *, compress: bool = True, docker: bool = False) -> BuiltLayer:
        entries = dict(self._entries)
        for path in list(entries):
            parts = path.split("/")
            for i in range(1, len(parts)):
                entries.setdefault("/".join(parts[:i]), _Entry("d", 0o755))
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            # Hard links last, so that their targets come first, as tar requires.
            for path in sorted(entries, key=lambda p: (entries[p].kind == "h", p)):
                tar.addfile(*_tarinfo(path, entries[path]))
        tar_bytes = raw.getvalue()
        if not compress:
            return BuiltLayer(Blob(tar_bytes, OCI_LAYER_TAR), tar_bytes)
        return BuiltLayer(
            Blob(gzip_bytes(tar_bytes), DOCKER_LAYER_GZIP if docker else OCI_LAYER_GZIP), tar_bytes
        )


def _norm(path: str) -> str:
    return path.strip("/")


def _tarinfo(path: str, e: _Entry) -> tuple[tarfile.TarInfo, io.BytesIO | None]:
    ti = tarfile.TarInfo(path)
    ti.mtime, ti.mode, ti.uid, ti.gid = MTIME, e.mode, e.uid, e.gid
    ti.uname = ti.gname = ""
    if e.xattrs:
        ti.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in e.xattrs.items()}
    kinds = {
        "d": tarfile.DIRTYPE,
        "l": tarfile.SYMTYPE,
        "h": tarfile.LNKTYPE,
        "c": tarfile.CHRTYPE,
        "b": tarfile.BLKTYPE,
        "p": tarfile.FIFOTYPE,
    }
    if e.kind == "f":
        ti.size = len(e.data)
        return ti, io.BytesIO(e.data)
    ti.type = kinds[e.kind]
    ti.linkname = e.link
    ti.devmajor, ti.devminor = e.dev
    return ti, None


def gzip_bytes(data: bytes) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=6, filename="") as g:
        g.write(data)
    return out.getvalue()


def canonical_json(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def build_image(
    layers: Sequence[BuiltLayer],
    config: Mapping[str, Any],
    *,
    architecture: str = "amd64",
    os_name: str = "linux",
    variant: str = "",
    docker: bool = False,
) -> BuiltImage:
    """An image from built layers (bottom first); `config` is the config's `config` section.

    `docker=True` gives Docker schema 2 media types for the manifest and config (build the
    layers with `docker=True` too for Docker layer media types).
    """
    doc: dict[str, Any] = {
        "created": CREATED,
        "architecture": architecture,
        "os": os_name,
        "config": dict(config),
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [{"created": CREATED, "created_by": "tests.support.oci_build"} for _ in layers],
    }
    if variant:
        doc["variant"] = variant
    cfg = Blob(canonical_json(doc), DOCKER_CONFIG if docker else OCI_CONFIG)
    manifest_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
    manifest = {
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": cfg.descriptor(),
        "layers": [layer.blob.descriptor() for layer in layers],
    }
    return BuiltImage(cfg, tuple(layers), Blob(canonical_json(manifest), manifest_type))


def build_index(
    images: Iterable[tuple[BuiltImage, Mapping[str, str]]], *, docker: bool = False
) -> Blob:
    """A multi-platform index of (image, platform), platform as `{"os":.., "architecture":..}`."""
    media_type = DOCKER_LIST if docker else OCI_INDEX
    doc = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [img.manifest.descriptor(platform=dict(p)) for img, p in images],
    }
    return Blob(canonical_json(doc), media_type)


# --- pushing (the distribution API's monolithic upload) ---------------------------------------


def push_blob(host: str, repo: str, blob: Blob, *, session: requests.Session | None = None) -> None:
    http = session or requests.Session()
    base = f"http://{host}/v2/{repo}/blobs"
    if http.head(f"{base}/{blob.digest}", timeout=30).status_code == 200:
        return
    started = http.post(f"{base}/uploads/", timeout=30)
    if started.status_code != 202:
        raise RuntimeError(f"starting upload of {blob.digest}: HTTP {started.status_code}")
    location = urljoin(f"http://{host}/", started.headers["Location"])
    sep = "&" if "?" in location else "?"
    done = http.put(
        f"{location}{sep}digest={blob.digest}",
        data=blob.data,
        headers={"Content-Type": "application/octet-stream"},
        timeout=60,
    )
    if done.status_code != 201:
        raise RuntimeError(f"uploading {blob.digest}: HTTP {done.status_code} {done.text}")


def push_manifest(
    host: str, repo: str, reference: str, manifest: Blob, *, session: requests.Session | None = None
) -> str:
    """PUT a manifest or index under a tag (or its digest); returns its digest."""
    http = session or requests.Session()
    resp = http.put(
        f"http://{host}/v2/{repo}/manifests/{reference}",
        data=manifest.data,
        headers={"Content-Type": manifest.media_type},
        timeout=30,
    )
    if resp.status_code != 201:
        raise RuntimeError(
            f"pushing manifest {repo}:{reference}: HTTP {resp.status_code} {resp.text}"
        )
    return manifest.digest


def push_image(
    host: str, repo: str, tag: str | None, image: BuiltImage, *, auth: tuple[str, str] | None = None
) -> str:
    """Push blobs, then the manifest under `tag` (by digest if None); returns the digest."""
    with requests.Session() as http:
        http.auth = auth
        for layer in image.layers:
            push_blob(host, repo, layer.blob, session=http)
        push_blob(host, repo, image.config, session=http)
        return push_manifest(host, repo, tag or image.digest, image.manifest, session=http)


def push_index(
    host: str,
    repo: str,
    tag: str,
    images: Sequence[tuple[BuiltImage, Mapping[str, str]]],
    *,
    docker: bool = False,
) -> str:
    """Push each platform image by digest, then the index under `tag`; returns the index digest."""
    for image, _ in images:
        push_image(host, repo, None, image)
    return push_manifest(host, repo, tag, build_index(images, docker=docker))


# --- busybox ------------------------------------------------------------------------------


def busybox_rootfs() -> Layer:
    """Static busybox with hard-linked applets, users root/app(1000)/nobody, the usual dirs."""
    layer = Layer()
    for d in ("bin", "etc", "dev", "proc", "sys", "usr/bin", "var", "opt/data"):
        layer.dir(d)
    layer.dir("tmp", 0o1777).dir("root", 0o700).dir("home/app", 0o755, 1000, 1000)
    layer.file("bin/busybox", BUSYBOX.read_bytes(), 0o755)
    for applet in BUSYBOX_APPLETS:
        layer.hardlink(f"bin/{applet}", "bin/busybox")
    layer.file("etc/passwd", PASSWD).file("etc/group", GROUP)
    layer.file("etc/hosts").file("etc/resolv.conf").file("etc/motd", "welcome\n")
    # Fodder for the whiteout layer: it deletes one file and makes the directory opaque.
    layer.file("opt/data/keep.txt", "lower keep\n").file("opt/data/old.txt", "lower old\n")
    return layer


def whiteout_layer() -> Layer:
    """An upper layer for busybox: deletes /etc/motd, makes /opt/data opaque with one new file."""
    return (
        Layer()
        .whiteout("etc/motd")
        .dir("opt/data")
        .opaque("opt/data")
        .file("opt/data/new.txt", "upper new\n")
    )


def busybox_config(**overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"Env": [PATH_ENV], "Cmd": ["sh"]}
    config.update(overrides)
    return config


@functools.cache
def busybox_base_layer(docker: bool = False) -> BuiltLayer:
    return busybox_rootfs().build(docker=docker)


def busybox_image(
    *,
    with_whiteouts: bool = False,
    docker: bool = False,
    architecture: str = "amd64",
    **config: Any,
) -> BuiltImage:
    """The busybox test image; `with_whiteouts` adds `whiteout_layer()` on top.

    Keyword arguments override config fields (`Labels={"a": "b"}` gives a distinct image id).
    """
    layers = [busybox_base_layer(docker)]
    if with_whiteouts:
        layers.append(whiteout_layer().build(docker=docker))
    return build_image(layers, busybox_config(**config), architecture=architecture, docker=docker)
