"""The Stream* RPCs (cri-api 1.36): a List answer cut into bounded messages, so a full node's
answer never meets kubelet's 16 MiB message limit."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

from google.protobuf.message import Message

# Items per message of the Stream* RPCs: far below kubelet's 16 MiB limit for any object size.
STREAM_PAGE = 100

M = TypeVar("M", bound=Message)


def pages(items: Iterable[Any], make: type[M], field: str, size: int = STREAM_PAGE) -> Iterator[M]:
    """The List answer cut into messages of at most `size` items (at least one message)."""
    batch: list[Any] = []
    sent = False
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield make(**{field: batch})
            batch, sent = [], True
    if batch or not sent:
        yield make(**{field: batch})
