"""The containers table; only the container package writes it."""

from __future__ import annotations

from collections.abc import Callable

from cri.container.model import Container, ContainerStatus
from cri.errors import NotFound
from cri.store.db import Database
from cri.store.table import ObjectTable


class ContainerStore:
    def __init__(self, db: Database) -> None:
        self._table = ObjectTable(db, "containers", "container")

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
            container_id, lambda data: fn(ContainerStatus.from_json(data)).to_json())
        return ContainerStatus.from_json(result)

    def delete(self, container_id: str) -> None:
        self._table.delete(container_id)
