"""One publisher side for the domains, any number of subscribers, and nothing that blocks.

The domains publish a small record (`LifecycleEvent`) the moment a transition is committed:
CREATED and DELETED from CreateContainer / RemoveContainer (RunPodSandbox / RemovePodSandbox),
STARTED and STOPPED from the stores' state changes, which happen once per transition whoever
notices them (an RPC, the exit watcher, recovery). Publishing only appends to a queue.

One dispatcher thread renders each event once (the pod's status and its containers' statuses, by
a function the gRPC layer gives) and hands it to every subscriber. Each subscriber has a bounded
queue: one that falls that far behind is cut off (`Overflowed`), so it reconnects and relists as
kubelet does after a broken stream, rather than slowing the runtime or silently missing events.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class EventKind(enum.IntEnum):
    # The values are CRI's ContainerEventType.
    CREATED = 0
    STARTED = 1
    STOPPED = 2
    DELETED = 3


CREATED, STARTED, STOPPED, DELETED = EventKind


@dataclass(frozen=True, slots=True)
class LifecycleEvent:
    kind: EventKind
    object_id: str  # a container id, or a sandbox id for the sandbox's own events
    sandbox_id: str
    created_at: int = field(default_factory=time.time_ns)


class Overflowed(Exception):
    """The subscriber fell more than its queue's bound behind and was cut off."""


_CLOSED = object()
_OVERFLOW = object()


class Subscription(Generic[T]):
    def __init__(self, broker: EventBroker[T], bound: int) -> None:
        self._broker = broker
        self._queue: queue.Queue[object] = queue.Queue(bound + 1)
        self._bound = bound
        self._dead = False  # no more items will be offered
        self._closed = False  # the consumer has gone

    def offer(self, item: T) -> None:
        """Called by the dispatcher only: never blocks."""
        if self._dead:
            return
        if self._queue.qsize() >= self._bound:
            self._dead = True
            self._queue.put_nowait(_OVERFLOW)
            return
        self._queue.put_nowait(item)

    def close(self) -> None:
        self._broker.unsubscribe(self)
        self._closed = True
        if not self._dead:
            self._dead = True
            # A full queue: the consumer is not blocked (it has items) and sees _closed next.
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(_CLOSED)

    def get(self, timeout: float | None = None) -> T | None:
        """The next item; None after `timeout` or once closed. Raises Overflowed."""
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is _OVERFLOW:
            self._broker.unsubscribe(self)
            raise Overflowed(f"the subscriber fell {self._bound} events behind")
        if item is _CLOSED:
            self._closed = True
            return None
        return item  # type: ignore[return-value]

    def __iter__(self) -> Iterator[T]:
        while not self._closed:
            item = self.get(timeout=1.0)
            if item is not None:
                yield item


class EventBroker(Generic[T]):
    def __init__(self, render: Callable[[LifecycleEvent], T], bound: int = 1000) -> None:
        self._render = render
        self._bound = bound
        self._pending: queue.SimpleQueue[LifecycleEvent | None] = queue.SimpleQueue()
        self._subscribers: list[Subscription[T]] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._dispatch, name="events", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._pending.put(None)
        if self._thread is not None:
            self._thread.join(5)
        for sub in self.subscribers():
            sub.close()

    def publish(self, event: LifecycleEvent) -> None:
        self._pending.put(event)

    def subscribe(self) -> Subscription[T]:
        sub = Subscription(self, self._bound)
        with self._lock:
            self._subscribers.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription[T]) -> None:
        with self._lock:
            if sub in self._subscribers:
                self._subscribers.remove(sub)

    def subscribers(self) -> list[Subscription[T]]:
        with self._lock:
            return list(self._subscribers)

    def _dispatch(self) -> None:
        while True:
            event = self._pending.get()
            if event is None:
                return
            subscribers = self.subscribers()
            if not subscribers:
                continue
            try:
                rendered = self._render(event)
            except Exception:  # noqa: BLE001 - one bad event must not stop the stream
                log.exception("rendering event %s for %s", event.kind.name, event.object_id)
                continue
            for sub in subscribers:
                sub.offer(rendered)


class EventSink(Protocol):
    def publish(self, event: LifecycleEvent) -> None: ...


class NoEvents:
    """What a domain publishes to when nobody listens (unit tests, tools)."""

    def publish(self, event: LifecycleEvent) -> None:
        pass
