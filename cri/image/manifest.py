"""OCI and Docker schema 2 manifests and indexes: media types, descriptors, parsing.

Pure functions over bytes a registry (or our own import) produced. Anything malformed is the
remote side's fault, so it becomes `Internal` with a message naming what is wrong; a well-formed
format we choose not to support (schema 1, zstd, non-sha256 digests) becomes `Unimplemented`; an
index with nothing for this platform is `NotFound`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cri.errors import Internal, NotFound, Unimplemented
from cri.image.digest import DigestError, check_digest
from cri.image.platform import Platform, match_rank

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)

MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
# The Accept header: indexes first so multi-platform images come back as the index.
ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))

# Layer types we can unpack. Non-distributable ("foreign") variants carry the same tar formats.
_LAYER_TYPES = frozenset(
    {
        OCI_LAYER_TAR,
        OCI_LAYER_GZIP,
        DOCKER_LAYER_GZIP,
        "application/vnd.docker.image.rootfs.diff.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    }
)
_ZSTD_TYPES = frozenset(
    {OCI_LAYER_ZSTD, "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"}
)

MAX_MANIFEST_BYTES = 4 << 20


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None


@dataclass(frozen=True, slots=True)
class Manifest:
    """A single-platform image manifest."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


@dataclass(frozen=True, slots=True)
class Index:
    media_type: str
    manifests: tuple[Descriptor, ...]


def load_json(data: bytes, what: str) -> Mapping[str, Any]:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise Internal(f"{what} is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise Internal(f"{what} is not a JSON object")
    return doc


def parse(data: bytes, content_type: str, what: str) -> Manifest | Index:
    """Parse a manifest or index; `content_type` is the HTTP header (may be empty or generic)."""
    doc = load_json(data, what)
    media_type = _media_type(doc, content_type)
    if media_type in DOCKER_SCHEMA1 or doc.get("schemaVersion") == 1:
        raise Unimplemented(f"{what}: Docker schema 1 manifests are not supported")
    if doc.get("schemaVersion") != 2:
        raise Internal(f"{what}: unsupported schemaVersion {doc.get('schemaVersion')!r}")
    if media_type in INDEX_TYPES:
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise Internal(f"{what}: index without a manifests list")
        return Index(media_type, tuple(_descriptor(e, what) for e in entries))
    if media_type in MANIFEST_TYPES:
        layers = doc.get("layers")
        if not isinstance(layers, list):
            raise Internal(f"{what}: manifest without a layers list")
        parsed = tuple(_descriptor(e, what) for e in layers)
        for layer in parsed:
            check_layer_type(layer.media_type, what)
        return Manifest(media_type, _descriptor(doc.get("config"), what), parsed)
    raise Unimplemented(f"{what}: unsupported media type {media_type!r}")


def check_layer_type(media_type: str, what: str) -> None:
    if media_type in _ZSTD_TYPES:
        raise Unimplemented(f"{what}: zstd-compressed layers are not supported")
    if media_type not in _LAYER_TYPES:
        raise Unimplemented(f"{what}: unsupported layer media type {media_type!r}")


def select_platform(index: Index, host: Platform, what: str) -> Descriptor:
    """The index entry that best fits `host` (first of equals, as containerd picks)."""
    best: tuple[int, Descriptor] | None = None
    for entry in index.manifests:
        if entry.platform is None or entry.media_type not in MANIFEST_TYPES + INDEX_TYPES:
            continue
        rank = match_rank(host, entry.platform)
        if rank is not None and (best is None or rank < best[0]):
            best = (rank, entry)
    if best is None:
        offered = sorted({str(e.platform) for e in index.manifests if e.platform is not None})
        # NotFound, as in containerd and Docker: the image exists, just not for this machine.
        raise NotFound(
            f"{what}: no manifest for platform {host} (index offers {', '.join(offered) or 'none'})"
        )
    return best[1]


def _media_type(doc: Mapping[str, Any], content_type: str) -> str:
    declared = doc.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    header = content_type.split(";", 1)[0].strip()
    if header in MANIFEST_TYPES + INDEX_TYPES + DOCKER_SCHEMA1:
        return header
    # OCI allows omitting mediaType: tell the two shapes apart by their fields.
    if "manifests" in doc:
        return OCI_INDEX
    if "config" in doc and "layers" in doc:
        return OCI_MANIFEST
    return header


def _descriptor(raw: object, what: str) -> Descriptor:
    if not isinstance(raw, dict):
        raise Internal(f"{what}: descriptor is not an object")
    media_type, digest, size = raw.get("mediaType"), raw.get("digest"), raw.get("size")
    if not isinstance(media_type, str) or not isinstance(digest, str):
        raise Internal(f"{what}: descriptor without mediaType or digest")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise Internal(f"{what}: descriptor {digest} has an invalid size {size!r}")
    try:
        check_digest(digest)
    except DigestError as e:
        raise Unimplemented(f"{what}: {e}") from None
    platform = None
    p = raw.get("platform")
    if (
        isinstance(p, dict)
        and isinstance(p.get("os"), str)
        and isinstance(p.get("architecture"), str)
    ):
        variant = p.get("variant")
        platform = Platform(p["os"], p["architecture"], variant if isinstance(variant, str) else "")
    return Descriptor(media_type, digest, size, platform)


def encode(doc: Mapping[str, Any]) -> bytes:
    """Canonical JSON for documents we write ourselves, so their digests are reproducible."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def descriptor_json(d: Descriptor) -> dict[str, Any]:
    return {"mediaType": d.media_type, "digest": d.digest, "size": d.size}
