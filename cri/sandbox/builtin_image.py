"""The built-in pause image: the pause binary compiled at install time, registered as a local
image so that pods start on a node that can reach no registry."""

from __future__ import annotations

import hashlib
import io
import logging
import platform
import tarfile
import tempfile
from pathlib import Path

from cri.image import Image, ImageService

log = logging.getLogger(__name__)

_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
           "s390x": "s390x", "riscv64": "riscv64"}


def _layer(binary: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        data = binary.read_bytes()
        info = tarfile.TarInfo("pause")
        info.size, info.mode, info.mtime = len(data), 0o755, 0
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def register_builtin_pause(images: ImageService, name: str, binary: Path) -> Image:
    layer = _layer(binary)
    config = {
        "architecture": _GOARCH.get(platform.machine(), platform.machine()),
        "os": "linux",
        "config": {"Entrypoint": ["/pause"], "User": "65535:65535"},
        "rootfs": {"type": "layers",
                   "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]},
    }
    with tempfile.TemporaryDirectory() as tmp:
        tar_path = Path(tmp) / "layer.tar"
        tar_path.write_bytes(layer)
        image = images.import_image(name, tar_path, config, pinned=True)
    log.info("built-in pause image %s is %s", name, image.id)
    return image
