"""The content-addressed blob store (cri.image.content)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cri.errors import Internal, NotFound
from cri.image.content import ContentStore


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    return ContentStore(tmp_path / "images" / "content")


def files(store: ContentStore) -> list[str]:
    return sorted(os.listdir(store.root / "sha256"))


def test_ingest_in_chunks(store: ContentStore) -> None:
    data = b"hello world" * 1000
    d = digest(data)
    path = store.ingest(d, len(data), (data[i : i + 100] for i in range(0, len(data), 100)))
    assert path == store.root / "sha256" / d.split(":")[1]
    assert path.read_bytes() == data
    assert store.has(d) and store.has(d, len(data)) and not store.has(d, 1)
    assert store.read(d) == data
    assert store.digests() == {d}
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)


def test_digest_mismatch_leaves_nothing(store: ContentStore) -> None:
    good = digest(b"expected")
    with pytest.raises(Internal, match="digest mismatch"):
        store.ingest(good, 8, [b"tampered"])
    assert files(store) == []
    assert not store.has(good)


@pytest.mark.parametrize(
    ("chunks", "size", "message"), [([b"abc"], 4, "has 3 bytes"), ([b"abcde"], 4, "larger")]
)
def test_size_mismatch_leaves_nothing(
    store: ContentStore, chunks: list[bytes], size: int, message: str
) -> None:
    with pytest.raises(Internal, match=message):
        store.ingest(digest(b"".join(chunks)), size, chunks)
    assert files(store) == []


def test_failing_source_leaves_nothing(store: ContentStore) -> None:
    def broken() -> Iterator[bytes]:
        yield b"partial"
        raise ConnectionError("network went away")

    with pytest.raises(ConnectionError):
        store.ingest(digest(b"partial and more"), None, broken())
    assert files(store) == []


def test_write_is_idempotent_and_checked(store: ContentStore) -> None:
    d = store.write(b"{}")
    assert d == digest(b"{}")
    assert store.write(b"{}", d) == d
    with pytest.raises(Internal):
        store.write(b"{}", digest(b"other"))
    assert files(store) == [d.split(":")[1]]


def test_invalid_digest_is_refused(store: ContentStore) -> None:
    with pytest.raises(Internal, match="invalid digest"):
        store.ingest("sha256:../../etc/passwd", None, [b""])
    with pytest.raises(Internal, match="only sha256"):
        store.ingest("sha512:" + "a" * 128, None, [b""])


def test_delete_read_missing_and_clean(store: ContentStore) -> None:
    d = store.write(b"x")
    store.delete(d)
    store.delete(d)  # idempotent
    with pytest.raises(NotFound):
        store.read(d)
    leftover = store.root / "sha256" / ".ingest-crashed"
    leftover.write_bytes(b"half")
    assert store.digests() == set()  # temporaries are never content
    store.clean_temporary()
    assert files(store) == []
