"""Garbage collection of blobs and unpacked layers, and the leases that protect pulls from it.

A blob or layer is kept while any image record lists it, while the container domain says a
layer is in use (a container's rootfs stacks it), or while a lease holds it. Pulls and imports
take a lease on everything they are about to need *before* checking whether it is present, and
release it only after the image record that references it is committed. Leases and collection
share one lock, so a collection either sees a lease or finishes before the pull looks.
This is containerd's lease model (`leases.Manager`), kept in memory: after a restart there are
no pulls in flight, hence nothing to protect.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from cri.image.content import ContentStore
from cri.image.digest import ALGORITHM
from cri.image.layers import LayerStore
from cri.image.store import ImageStore

log = logging.getLogger(__name__)


class Lease:
    def __init__(self, leases: Leases) -> None:
        self._leases = leases
        self.keys: Counter[str] = Counter()

    def add(self, keys: Iterable[str]) -> None:
        new = Counter(keys)
        with self._leases.lock:
            self._leases.held.update(new)
            self.keys.update(new)


class Leases:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.held: Counter[str] = Counter()

    @contextmanager
    def lease(self) -> Iterator[Lease]:
        lease = Lease(self)
        try:
            yield lease
        finally:
            with self.lock:
                self.held.subtract(lease.keys)
                self.held = +self.held  # drop the zero counts


def collect(
    images: ImageStore,
    content: ContentStore,
    layers: LayerStore,
    leases: Leases,
    layers_in_use: Iterable[str],
) -> None:
    """Delete every layer and blob that no image, lease or container (`layers_in_use`) needs."""
    in_use = {c if c.startswith(f"{ALGORITHM}:") else f"{ALGORITHM}:{c}" for c in layers_in_use}
    with leases.lock:
        wanted_layers, wanted_blobs = images.referenced()
        leased = set(leases.held)
        doomed_layers = layers.chain_ids() - wanted_layers - in_use - leased
        doomed_blobs = content.digests() - wanted_blobs - leased
        for chain_id in sorted(doomed_layers):
            layers.remove(chain_id)
        for digest in sorted(doomed_blobs):
            content.delete(digest)
    if doomed_layers or doomed_blobs:
        log.info("image gc removed %d layers and %d blobs", len(doomed_layers), len(doomed_blobs))
