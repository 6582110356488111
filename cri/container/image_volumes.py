"""Image volumes (Mount.image, cri-api 1.31+): an image's unpacked layers mounted read-only in
a container, whole or one subdirectory of them (image_sub_path).

Several layers are joined by a read-only overlay under the container's state dir; a single
layer is bound straight from the layer store (an overlay needs two lower dirs without an upper
one). The container's OCI spec binds the result read-only; the layers are recorded as the
container's, so removing the image keeps them while it lives.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cri.api.runtime.v1 import api_pb2 as v1
from cri.errors import InvalidArgument, NotFound
from cri.spec.users import secure_join
from cri.storage.mounts import mount, unmount

if TYPE_CHECKING:
    from cri.container.service import ContainerService

MS_RDONLY = 0x1
DIR_NAME = "image-volumes"


@dataclass(frozen=True, slots=True)
class ImageVolumes:
    sources: dict[str, str]  # container path -> host path to bind
    layers: tuple[str, ...]  # chain ids, to keep while the container lives


def mount_image_volumes(svc: ContainerService, container_id: str, config: v1.ContainerConfig,
                        undo: ExitStack) -> ImageVolumes:
    """Mounts every image volume of `config` and fills in each one's image_ref (the image id,
    which ContainerStatus reports)."""
    sources: dict[str, str] = {}
    layers: list[str] = []
    base = svc.paths.container_state(container_id) / DIR_NAME
    for index, m in enumerate(config.mounts):
        if not m.image.image:
            continue
        if not m.readonly:
            raise InvalidArgument(f"image volume {m.container_path!r} must be read-only")
        image = svc.images.get(m.image.image)
        if image is None:
            raise NotFound(f"image {m.image.image!r} of volume {m.container_path!r} not found: "
                           "pull it first")
        dirs = svc.images.layer_dirs(image)
        if not dirs:
            raise InvalidArgument(f"image {m.image.image!r} has no layers to mount")
        if len(dirs) == 1:
            root = dirs[0]
        else:
            root = base / str(index)
            root.mkdir(parents=True, exist_ok=True)
            mount("overlay", root, "overlay", MS_RDONLY,
                  "lowerdir=" + ":".join(str(d) for d in dirs))
            undo.callback(unmount, root)
        source = root
        if m.image_sub_path:
            source = secure_join(root, m.image_sub_path)
            if not source.exists():
                raise InvalidArgument(f"image volume {m.container_path!r}: sub path "
                                      f"{m.image_sub_path!r} is not in image {m.image.image!r}")
        sources[m.container_path] = str(source)
        layers.extend(image.chain_ids)
        m.image.image_ref = image.id
    return ImageVolumes(sources, tuple(layers))
