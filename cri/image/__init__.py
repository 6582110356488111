"""The images domain: pull, store, unpack and remove OCI images (see `service.py`)."""

from cri.image.config import ImageConfig
from cri.image.reference import parse_reference
from cri.image.service import FileLayer, Image, ImageService, RegistryAuth

__all__ = ["FileLayer", "Image", "ImageConfig", "ImageService", "RegistryAuth", "parse_reference"]
