"""The state one image operation touches, bundled so operations take one argument."""

from __future__ import annotations

from dataclasses import dataclass

from cri.image.content import ContentStore
from cri.image.gc import Leases
from cri.image.layers import LayerStore
from cri.image.store import ImageStore


@dataclass(frozen=True, slots=True)
class Stores:
    images: ImageStore
    content: ContentStore
    layers: LayerStore
    leases: Leases
