"""Content-addressed blob store: `<root>/images/content/sha256/<hex>`.

Invariant: a file named by a digest holds exactly the bytes of that digest. Writes go to a
temporary file in the same directory (`.ingest-*`), are checked against the expected digest and
size, fsynced and only then renamed into place; a crash or a mismatch leaves at worst a temporary
file, which `clean_temporary` removes at start-up. Readers never see half-written blobs.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from cri.errors import Internal, NotFound
from cri.image.digest import ALGORITHM, DigestError, check_digest, digest_of, hex_of, is_digest

log = logging.getLogger(__name__)

_TEMP_PREFIX = ".ingest-"


class ContentStore:
    def __init__(self, root: Path) -> None:
        """`root` is `<root>/images/content`."""
        self.root = root
        self._dir = root / ALGORITHM
        self._dir.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        return self._dir / hex_of(digest)

    def has(self, digest: str, size: int | None = None) -> bool:
        try:
            st = self.path(digest).stat()
        except FileNotFoundError:
            return False
        return size is None or st.st_size == size

    def ingest(self, digest: str, size: int | None, chunks: Iterable[bytes]) -> Path:
        """Store the blob `chunks` make up, if it has `digest` (and `size`); else raise Internal.

        Nothing is left behind on any failure, including an exception from `chunks` itself.
        """
        try:
            check_digest(digest)
        except DigestError as e:
            raise Internal(str(e)) from None
        final = self.path(digest)
        fd, tmp_name = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=self._dir)
        tmp = Path(tmp_name)
        try:
            hasher = hashlib.sha256()
            written = 0
            with os.fdopen(fd, "wb") as f:
                for chunk in chunks:
                    written += len(chunk)
                    if size is not None and written > size:
                        raise Internal(f"blob {digest} is larger than its declared {size} bytes")
                    hasher.update(chunk)
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
            actual = f"{ALGORITHM}:{hasher.hexdigest()}"
            if size is not None and written != size:
                raise Internal(f"blob {digest} has {written} bytes, expected {size}")
            if actual != digest:
                raise Internal(f"blob digest mismatch: expected {digest}, got {actual}")
            os.chmod(tmp, 0o644)
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(self._dir)
        log.debug("stored blob %s (%d bytes)", digest, written)
        return final

    def write(self, data: bytes, digest: str | None = None) -> str:
        """Store small in-memory content (manifests, configs); returns its digest."""
        actual = digest_of(data)
        if digest is not None and digest != actual:
            raise Internal(f"blob digest mismatch: expected {digest}, got {actual}")
        if not self.has(actual, len(data)):
            self.ingest(actual, len(data), (data,))
        return actual

    def read(self, digest: str) -> bytes:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not in the content store") from None

    def delete(self, digest: str) -> None:
        self.path(digest).unlink(missing_ok=True)

    def digests(self) -> set[str]:
        found = set()
        for entry in os.scandir(self._dir):
            d = f"{ALGORITHM}:{entry.name}"
            if is_digest(d):
                found.add(d)
        return found

    def clean_temporary(self) -> None:
        """Remove ingests a crash left behind. Only safe before any pull has started."""
        for entry in os.scandir(self._dir):
            if entry.name.startswith(_TEMP_PREFIX):
                log.info("removing interrupted blob write %s", entry.path)
                Path(entry.path).unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
