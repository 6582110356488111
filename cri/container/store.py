"""The containers table; only the container package writes it.

The store announces what it commits: STARTED and STOPPED when a status update changes the state
(whichever code path noticed it), CREATED and DELETED when CreateContainer and RemoveContainer
say so. A record released by a failed CreateContainer was never announced, so it is not deleted
publicly either.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from cri.api.runtime.v1 import api_pb2 as v1
from cri.container.model import Container, ContainerStatus
from cri.errors import NotFound
from cri.events import CREATED, DELETED, STARTED, STOPPED, LifecycleEvent
from cri.events.broker import EventSink, NoEvents
from cri.store.db import Database
from cri.store.table import ObjectTable


class ContainerStore:
    def __init__(self, db: Database, events: EventSink | None = None) -> None:
        self._table = ObjectTable(db, "containers", "container")
        self.events: EventSink = events or NoEvents()

    def reserve(self, container: Container) -> None:
        self._table.insert(container.id, container.name, container.sandbox_id,
                           container.metadata_json(), container.status.to_json())

    def get(self, id_or_prefix: str) -> Container:
        return Container.from_row(self._table.resolve(id_or_prefix))

    def find(self, id_or_prefix: str) -> Container | None:
        try:
            return self.get(id_or_prefix)
        except NotFound:
            return None

    def list(self, sandbox_id: str | None = None) -> list[Container]:
        return [Container.from_row(row) for row in self._table.list(sandbox_id)]

    def update_status(self, container_id: str,
                      fn: Callable[[ContainerStatus], ContainerStatus]) -> ContainerStatus:
        result = self._table.update_status(
            container_id, lambda data: fn(ContainerStatus.from_json(data)).to_json(),
            lambda parent, old, new: self._announce_change(container_id, parent, old, new))
        return ContainerStatus.from_json(result)

    def _announce_change(self, container_id: str, sandbox_id: str, old: Mapping[str, Any],
                         new: Mapping[str, Any]) -> None:
        before = ContainerStatus.from_json(old).state
        after = ContainerStatus.from_json(new).state
        if before == after:
            return
        if after == v1.CONTAINER_RUNNING:
            self.events.publish(LifecycleEvent(STARTED, container_id, sandbox_id))
        elif after == v1.CONTAINER_EXITED:
            self.events.publish(LifecycleEvent(STOPPED, container_id, sandbox_id))

    def announce_created(self, container: Container) -> None:
        self.events.publish(LifecycleEvent(CREATED, container.id, container.sandbox_id))

    def delete(self, container: Container) -> None:
        if self._table.delete(container.id):
            self.events.publish(LifecycleEvent(DELETED, container.id, container.sandbox_id))

    def release(self, container_id: str) -> None:
        """Undo a reservation that was never announced."""
        self._table.delete(container_id)
