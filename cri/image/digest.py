"""Content digests: the one algorithm we store by, and how we check one we were handed.

NOTE: the OCI image spec also registers sha512, but every registry and runtime in practice uses
sha256, and our content store is laid out by sha256 only. A descriptor with another algorithm is
refused with a clear message rather than half supported.
"""

from __future__ import annotations

import hashlib
import re

ALGORITHM = "sha256"
_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
_ANY_DIGEST_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")


class DigestError(ValueError):
    """A string that is not a digest we can use; callers turn it into the right CriError."""


def check_digest(value: str) -> str:
    """Return `value` if it is `sha256:<64 lowercase hex>`, else raise DigestError saying why."""
    if _DIGEST_RE.fullmatch(value):
        return value
    if _ANY_DIGEST_RE.fullmatch(value) and not value.startswith(f"{ALGORITHM}:"):
        raise DigestError(f"unsupported digest algorithm in {value!r}: only sha256 is supported")
    raise DigestError(f"invalid digest {value!r}: want sha256:<64 lowercase hex digits>")


def is_digest(value: str) -> bool:
    return _DIGEST_RE.fullmatch(value) is not None


def digest_of(data: bytes) -> str:
    return f"{ALGORITHM}:{hashlib.sha256(data).hexdigest()}"


def hex_of(digest: str) -> str:
    """The hex part of a checked digest (the file name in the content store)."""
    return check_digest(digest).split(":", 1)[1]
