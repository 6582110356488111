"""PullImage, after resolution: fetch what is missing, unpack it, record the image.

Steps, each idempotent, so a retried or concurrent pull of the same image only does what is
still missing:
1. lease the manifest, config and layer blobs (and, once known, the chain ids);
2. fetch the config unless stored, read its diff_ids, and check they match the manifest;
3. per layer, bottom up: skip it if its chain id is unpacked, else fetch the blob unless stored
   (the content store verifies digest and size) and unpack it (verifying the diff_id);
4. store the manifest (and index) blobs, then commit the image record and its names.
The image becomes visible only at step 4, after everything it needs is on disk.

This runs in the pull helper (`cri/image/puller.py`), not the daemon: the leases and the image
record are the daemon's, reached through a `Keeper`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Protocol

from cri.errors import Internal
from cri.image import manifest as mf
from cri.image.config import diff_ids
from cri.image.content import ContentStore
from cri.image.layers import LayerStore, chain_ids
from cri.image.registry import RegistrySession, ResolvedImage
from cri.image.store import ImageRecord
from cri.image.unpack import unpack_layer

log = logging.getLogger(__name__)


class Keeper(Protocol):
    """What a pull asks of the daemon, which owns the leases and the image records."""

    def lease(self, keys: Sequence[str]) -> None:
        """Protect these blobs and layers from collection until the pull ends; returns once
        they are protected."""

    def record(self, record: ImageRecord, names: Sequence[str]) -> None:
        """Commit the image record and point `names` at it."""


def image_names(resolved: ResolvedImage) -> list[str]:
    """The names a pull records: the repo tag (unless pinned by digest) and the repo digest.

    Like containerd, a `repo:tag@digest` reference records only the digest name: the tag was
    not checked against the registry, so recording it could make it lie.
    """
    ref = resolved.reference
    names = [f"{ref.repository}@{resolved.digest}"]
    if ref.digest is None and ref.repo_tag is not None:
        names.insert(0, ref.repo_tag)
    return names


def pull_resolved(
    content: ContentStore,
    layers: LayerStore,
    keeper: Keeper,
    session: RegistrySession,
    resolved: ResolvedImage,
    *,
    pinned: bool,
) -> str:
    """Make the resolved image present and recorded; return its id."""
    what = f"{resolved.reference.repository}@{resolved.manifest_digest}"
    manifest_blobs = [resolved.manifest_digest] + ([resolved.digest] if resolved.index else [])
    layer_blobs = [d.digest for d in resolved.layers]
    keeper.lease([*manifest_blobs, resolved.config.digest, *layer_blobs])

    config_bytes = _config(content, session, resolved)
    doc = mf.load_json(config_bytes, f"{what} config")
    ids = diff_ids(doc, what)
    if len(ids) != len(resolved.layers):
        raise Internal(
            f"{what}: manifest has {len(resolved.layers)} layers but the config lists "
            f"{len(ids)} diff_ids"
        )
    chain = chain_ids(ids)
    keeper.lease(chain)

    for i, (desc, diff_id, chain_id) in enumerate(
        zip(resolved.layers, ids, chain, strict=True)
    ):
        if layers.has(chain_id):
            continue
        if not content.has(desc.digest, desc.size):
            started = time.monotonic()
            with session.blob(resolved.endpoint, desc) as chunks:
                content.ingest(desc.digest, desc.size, chunks)
            log.info(
                "fetched layer %s (%d bytes) in %.1fs",
                desc.digest,
                desc.size,
                time.monotonic() - started,
                extra={"image_ref": str(resolved.reference)},
            )
        unpack_layer(
            layers, chain_id, content.path(desc.digest), diff_id, lower_chain_ids=chain[:i][::-1]
        )

    content.write(resolved.manifest, resolved.manifest_digest)
    if resolved.index is not None:
        content.write(resolved.index, resolved.digest)
    image_id = resolved.config.digest
    keeper.record(
        ImageRecord(
            id=image_id,
            manifest_digest=resolved.manifest_digest,
            config=config_bytes.decode(),
            chain_ids=tuple(chain),
            blobs=(*manifest_blobs, resolved.config.digest, *layer_blobs),
            size=resolved.config.size + sum(d.size for d in resolved.layers),
            pinned=pinned,
            created_ns=time.time_ns(),
        ),
        image_names(resolved),
    )
    return image_id


def _config(content: ContentStore, session: RegistrySession, resolved: ResolvedImage) -> bytes:
    desc = resolved.config
    if not content.has(desc.digest, desc.size):
        if desc.size > mf.MAX_MANIFEST_BYTES:
            raise Internal(f"image config {desc.digest} is implausibly large ({desc.size} bytes)")
        with session.blob(resolved.endpoint, desc) as chunks:
            content.ingest(desc.digest, desc.size, chunks)
    return content.read(desc.digest)
