"""The built-in pause image: the pause binary compiled at install time, registered as a local
image so that pods start on a node that can reach no registry."""

from __future__ import annotations

import logging
import platform
from pathlib import Path

from cri.image import FileLayer, Image, ImageService

log = logging.getLogger(__name__)

_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
           "s390x": "s390x", "riscv64": "riscv64"}


def register_builtin_pause(images: ImageService, name: str, binary: Path) -> Image:
    config = {
        "architecture": _GOARCH.get(platform.machine(), platform.machine()),
        "os": "linux",
        "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
    }
    image = images.import_image(name, FileLayer("pause", binary, 0o755), config, pinned=True)
    log.info("built-in pause image %s is %s", name, image.id)
    return image
