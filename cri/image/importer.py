"""Registering a locally built image (the built-in pause image) without a registry.

Like a pull, this runs in the pull helper (puller.py): it unpacks tars, and the leases and the
image record are the daemon's, reached through a `Keeper`.

The result is indistinguishable from a pulled image: layer blobs, a config and an OCI manifest in
the content store, unpacked layers, a record with a repo tag. The config is written as canonical
JSON, so the same inputs always give the same image id and importing again changes nothing.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import tarfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from cri.errors import InvalidArgument
from cri.image import manifest as mf
from cri.image.content import ContentStore
from cri.image.digest import digest_of
from cri.image.layers import LayerStore, chain_ids
from cri.image.platform import host_platform
from cri.image.pull import Keeper
from cri.image.reference import Reference
from cri.image.service import FileLayer
from cri.image.store import ImageRecord
from cri.image.unpack import diff_id_of, unpack_layer

log = logging.getLogger(__name__)

_READ_SIZE = 1 << 20


def write_file_layer(layer: FileLayer, dest: Path) -> Path:
    """Write `layer` as a plain tar at `dest`: fixed mtime and owner, so the same file always
    gives the same layer digest."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        data = layer.source.read_bytes()
        info = tarfile.TarInfo(layer.name)
        info.size, info.mode, info.mtime = len(data), layer.mode, 0
        tar.addfile(info, io.BytesIO(data))
    dest.write_bytes(buf.getvalue())
    return dest


def import_layers(
    content: ContentStore,
    layer_store: LayerStore,
    keeper: Keeper,
    ref: Reference,
    layer_tars: Sequence[Path],
    config: Mapping[str, Any],
    *,
    pinned: bool,
) -> str:
    """Import `layer_tars` (bottom first, gzip or plain) under `ref`; return the image id.

    `config` is an OCI image config document (`{"config": {"Entrypoint": [...]}, ...}`); its
    `rootfs` is filled in from the layers, `os` and `architecture` default to this host's.
    """
    if ref.digest is not None or ref.repo_tag is None:
        raise InvalidArgument(f"cannot import an image as {ref}: give a tag, not a digest")
    if not layer_tars:
        raise InvalidArgument(f"cannot import {ref} without layers")
    layers: list[mf.Descriptor] = []
    for tar in layer_tars:
        digest, size = _file_digest(tar)
        keeper.lease([digest])
        if not content.has(digest, size):
            content.ingest(digest, size, _chunks(tar))
        with content.path(digest).open("rb") as f:
            gzipped = f.read(2) == b"\x1f\x8b"
        layers.append(
            mf.Descriptor(mf.OCI_LAYER_GZIP if gzipped else mf.OCI_LAYER_TAR, digest, size)
        )
    ids = [diff_id_of(content.path(d.digest)) for d in layers]
    chain = chain_ids(ids)
    keeper.lease(chain)
    for i, (desc, diff_id, chain_id) in enumerate(zip(layers, ids, chain, strict=True)):
        unpack_layer(layer_store, chain_id, content.path(desc.digest), diff_id,
                     lower_chain_ids=chain[:i][::-1])

    host = host_platform()
    doc: dict[str, Any] = {"architecture": host.architecture, "os": host.os, **config}
    doc["rootfs"] = {"type": "layers", "diff_ids": ids}
    config_bytes = mf.encode(doc)
    config_digest = digest_of(config_bytes)
    keeper.lease([config_digest])
    content.write(config_bytes)
    manifest = mf.encode(
        {
            "schemaVersion": 2,
            "mediaType": mf.OCI_MANIFEST,
            "config": {
                "mediaType": mf.OCI_CONFIG,
                "digest": config_digest,
                "size": len(config_bytes),
            },
            "layers": [mf.descriptor_json(d) for d in layers],
        }
    )
    manifest_digest = digest_of(manifest)
    keeper.lease([manifest_digest])
    content.write(manifest)
    keeper.record(
        ImageRecord(
            id=config_digest,
            manifest_digest=manifest_digest,
            config=config_bytes.decode(),
            chain_ids=tuple(chain),
            blobs=(manifest_digest, config_digest, *(d.digest for d in layers)),
            size=len(config_bytes) + sum(d.size for d in layers),
            pinned=pinned,
            created_ns=time.time_ns(),
        ),
        [ref.repo_tag],
    )
    log.info("imported %s as %s", ref, config_digest, extra={"image_id": config_digest})
    return config_digest


def _file_digest(path: Path) -> tuple[str, int]:
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        raise InvalidArgument(f"layer tar {path} does not exist") from None
    h = hashlib.sha256()
    for chunk in _chunks(path):
        h.update(chunk)
    return f"sha256:{h.hexdigest()}", size


def _chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(_READ_SIZE):
            yield chunk
