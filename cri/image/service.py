"""The images domain's facade: what the gRPC ImageService and the container domain call.

Layout under `<root>/images`:
    content/sha256/<hex>        blobs: manifests, indexes, configs, compressed layers
    layers/<chain-id hex>/diff  unpacked layers in overlayfs format (see layers.py)
and the `image_images` / `image_names` tables in the shared database (see store.py).

Ids: an image's id is its config digest, "sha256:<hex>", as in containerd and Docker. Names are
canonical: "docker.io/library/busybox:latest", "docker.io/library/busybox@sha256:<hex>".

Concurrency: calls come from the gRPC thread pool. Pulls that resolve to the same digest are
serialised on a lock for that digest, so the second waits and then finds everything present.
Everything else is safe to run concurrently (see gc.py for how removal and pulls coexist).
"""

from __future__ import annotations

import base64
import binascii
import builtins
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cri.errors import InvalidArgument
from cri.image import manifest as mf
from cri.image.config import ImageConfig, image_config
from cri.image.content import ContentStore
from cri.image.digest import is_digest
from cri.image.gc import Leases, collect
from cri.image.layers import LayerStore
from cri.image.mirrors import normalize_mirrors
from cri.image.pull_process import run_puller
from cri.image.reference import Reference, parse_reference
from cri.image.store import ImageRecord, ImageStore
from cri.image.stores import Stores
from cri.store.db import Database

log = logging.getLogger(__name__)

# How long fs_usage answers from its last walk when nothing we did changed the tree.
USAGE_MAX_AGE_S = 10.0
# crictl prints 13 characters of an id; accept anything from 12 up as a unique prefix.
_ID_PREFIX_RE = re.compile(r"(?:sha256:)?([0-9a-f]{12,64})")


@dataclass(frozen=True, slots=True)
class Image:
    id: str  # "sha256:<config digest hex>"
    repo_tags: tuple[str, ...]  # canonical "docker.io/library/busybox:latest"
    repo_digests: tuple[str, ...]  # "docker.io/library/busybox@sha256:<manifest digest>"
    size: int  # compressed layers + config, like containerd
    config: ImageConfig
    pinned: bool
    chain_ids: tuple[str, ...]  # bottom layer first


@dataclass(frozen=True, slots=True)
class FileLayer:
    """A layer of one file at the root, e.g. the pause binary as `pause`. The pull helper
    builds its tar (importer.py), so the daemon itself never needs tarfile."""

    name: str
    source: Path
    mode: int


@dataclass(frozen=True, slots=True)
class RegistryAuth:
    """The CRI AuthConfig: username/password, or `auth` ("user:pass" base64), or tokens."""

    username: str = ""
    password: str = ""
    auth: str = ""
    identity_token: str = ""
    registry_token: str = ""


class ImageService:
    def __init__(
        self,
        root: Path,
        db: Database,
        mirrors: Mapping[str, Sequence[str]] = {},  # noqa: B006 - read only, never mutated
        *,
        layers_in_use: Callable[[], set[str]] = lambda: set(),
    ) -> None:
        """`layers_in_use` returns the chain ids (as in `Image.chain_ids`) of layers that
        containers' root filesystems stack; removal never deletes those."""
        self._root = root / "images"
        content = ContentStore(self._root / "content")
        layers = LayerStore(self._root / "layers")
        # Nothing can be in flight yet: whatever temporary files exist are from a crash.
        content.clean_temporary()
        layers.clean_temporary()
        self._stores = Stores(ImageStore(db), content, layers, Leases())
        self._mirrors = normalize_mirrors(mirrors)  # a bad endpoint fails at start, not at a pull
        self._layers_in_use = layers_in_use
        self._locks_guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}
        # fs_usage's last walk: (generation, bytes, inodes, when); see _changed
        self._usage_lock = threading.Lock()
        self._generation = 0
        self._usage: tuple[int, int, int, float] | None = None

    # --- pulling and importing -------------------------------------------------------------

    def pull(self, ref: str, auth: RegistryAuth | None = None, *, pinned: bool = False) -> Image:
        """Pull `ref` (tag or digest) for this host's platform; a no-op when already present.

        The fetching and unpacking run in the pull helper (puller.py); this thread answers it."""
        reference = parse_reference(ref)
        log.info("pulling %s", reference, extra={"image_ref": str(reference)})
        image_id = self._run_puller(reference, pinned, {
            "mirrors": {k: list(v) for k, v in self._mirrors.items()},
            "credentials": _credentials(auth)})
        image = self._by_id(image_id)
        assert image is not None, "a pulled image is recorded before pull_resolved returns"
        log.info("pulled %s as %s", reference, image_id, extra={"image_id": image_id})
        return image

    def import_image(
        self,
        name: str,
        layers: Path | FileLayer | Sequence[Path | FileLayer],
        config: Mapping[str, object],
        *,
        pinned: bool,
    ) -> Image:
        """Register a locally built image from one layer or several (bottom first): tars, or
        one-file layers the helper builds.

        `config` is the OCI image config document, e.g. `{"config": {"Entrypoint": ["/pause"],
        "User": "65535:65535"}}`; `rootfs` is computed, `os`/`architecture` default to the host.
        """
        items = [layers] if isinstance(layers, (Path, FileLayer)) else list(layers)
        reference = parse_reference(name)
        wire = [str(i) if isinstance(i, Path) else
                {"name": i.name, "source": str(i.source), "mode": i.mode} for i in items]
        image_id = self._run_puller(reference, pinned,
                                    {"import": {"layers": wire, "config": dict(config)}})
        image = self._by_id(image_id)
        assert image is not None
        return image

    def _run_puller(self, reference: Reference, pinned: bool, what: Mapping[str, object]) -> str:
        """Have the pull helper do `what` (a pull's or an import's fields, see puller.py) for
        `reference`, answering it from our locks, leases and records; the image id."""
        request = {"ref": str(reference), "pinned": pinned, "images_root": str(self._root),
                   **what}
        self._changed()
        try:
            with self._stores.leases.lease() as lease:
                return run_puller(request, digest_lock=self._digest_lock, lease=lease.add,
                                  record=self._stores.images.put)
        finally:
            self._changed()

    # --- reading ---------------------------------------------------------------------------

    def get(self, ref: str) -> Image | None:
        """Look up by full id, bare 64-hex id, name, or unique id prefix (12+ hex digits)."""
        image_id = self._resolve(ref)
        return self._by_id(image_id) if image_id is not None else None

    def list(self, ref_filter: str | None = None) -> list[Image]:
        if ref_filter:
            image = self.get(ref_filter)
            return [image] if image is not None else []
        return [_image(r) for r in self._stores.images.all()]

    def layer_dirs(self, image: Image) -> builtins.list[Path]:
        """The unpacked layer directories, top layer first (overlay lowerdir order)."""
        return [self._stores.layers.diff_dir(c) for c in reversed(image.chain_ids)]

    def fs_usage(self) -> tuple[int, int]:
        """(bytes, inodes) used under <root>/images: allocated blocks, hard links counted once.

        NOTE: the walk visits every file of every image: about 1 ms with two small images, far
        more on a node with many; kubelet asks every few seconds, crictl at every exec. Only
        pulls, imports and removals change the tree, and each marks it changed (_changed), so
        the last walk is answered until one does, or for USAGE_MAX_AGE_S at most (a change we
        did not make), as containerd answers from snapshot usage it refreshes every 10 s."""
        with self._usage_lock:
            generation, cached = self._generation, self._usage
        if cached is not None and cached[0] == generation and \
                time.monotonic() - cached[3] < USAGE_MAX_AGE_S:
            return cached[1], cached[2]
        used, inodes = self._walk_usage()
        with self._usage_lock:
            if self._generation == generation:  # no change began meanwhile
                self._usage = (generation, used, inodes, time.monotonic())
        return used, inodes

    def _changed(self) -> None:
        """The tree under <root>/images is about to change, or has: walk it again."""
        with self._usage_lock:
            self._generation += 1

    def _walk_usage(self) -> tuple[int, int]:
        seen: set[tuple[int, int]] = set()
        used = 0
        for st in _walk_lstat(self._root):
            key = (st.st_dev, st.st_ino)
            if key not in seen:
                seen.add(key)
                used += st.st_blocks * 512
        return used, len(seen)

    # --- removing --------------------------------------------------------------------------

    def remove(self, ref: str) -> None:
        """Remove the image `ref` names, with all its names, then collect unneeded data.

        Idempotent: removing an absent image is not an error.
        """
        image_id = self._resolve(ref)
        # NOTE: asked before the record goes, outside our locks: the container domain may look
        # the image up (by id) to find the layers its containers stack, and may take its own
        # locks to answer.
        in_use = self._layers_in_use()
        if image_id is not None:
            self._stores.images.delete(image_id)
            log.info("removed image %s (asked as %s)", image_id, ref, extra={"image_id": image_id})
        s = self._stores
        self._changed()
        try:
            collect(s.images, s.content, s.layers, s.leases, in_use)
        finally:
            self._changed()

    # --- helpers ---------------------------------------------------------------------------

    def _resolve(self, ref: str) -> str | None:
        # The order is containerd's (LocalResolve): a full id, then a name, then an id prefix.
        if not ref:
            return None
        if is_digest(ref):
            return ref
        try:
            reference = parse_reference(ref)
        except InvalidArgument:
            reference = None
        if reference is not None:
            name = reference.repo_digest or reference.repo_tag
            image_id = self._stores.images.resolve_name(name) if name else None
            if image_id is not None:
                return image_id
        m = _ID_PREFIX_RE.fullmatch(ref)
        if m is not None:
            candidates = self._stores.images.ids_with_prefix("sha256:" + m.group(1))
            if len(candidates) == 1:
                return candidates[0]
        return None

    def _by_id(self, image_id: str) -> Image | None:
        record = self._stores.images.get(image_id)
        return _image(record) if record is not None else None

    @contextmanager
    def _digest_lock(self, digest: str) -> Iterator[None]:
        with self._locks_guard:
            lock, users = self._locks.get(digest, (threading.Lock(), 0))
            self._locks[digest] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._locks_guard:
                lock, users = self._locks[digest]
                if users == 1:
                    del self._locks[digest]
                else:
                    self._locks[digest] = (lock, users - 1)


def _image(record: ImageRecord) -> Image:
    doc = mf.load_json(record.config.encode(), f"config of {record.id}")
    return Image(
        id=record.id,
        repo_tags=tuple(n for n in record.names if "@" not in n),
        repo_digests=tuple(n for n in record.names if "@" in n),
        size=record.size,
        config=image_config(doc),
        pinned=record.pinned,
        chain_ids=record.chain_ids,
    )


def _credentials(auth: RegistryAuth | None) -> dict[str, str]:
    """The fields of registry.Credentials, decoded from the CRI AuthConfig."""
    if auth is None:
        return {}
    username, password = auth.username, auth.password
    if auth.auth and not username:
        try:
            decoded = base64.b64decode(auth.auth, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise InvalidArgument("auth is not base64 of 'username:password'") from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise InvalidArgument("auth is not base64 of 'username:password'")
    return {"username": username, "password": password,
            "identity_token": auth.identity_token, "registry_token": auth.registry_token}


def _walk_lstat(root: Path) -> Iterator[os.stat_result]:
    stack = [str(root)]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except FileNotFoundError:
            continue  # removed while we walked
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            yield st
            if stat.S_ISDIR(st.st_mode):
                stack.append(entry.path)
