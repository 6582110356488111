"""The sandboxes table; only the sandbox package writes it."""

from __future__ import annotations

from collections.abc import Callable

from cri.sandbox.model import Sandbox, SandboxStatus
from cri.store.db import Database
from cri.store.table import ObjectTable


class SandboxStore:
    def __init__(self, db: Database) -> None:
        self._table = ObjectTable(db, "sandboxes", "sandbox")

    def reserve(self, sandbox: Sandbox) -> None:
        self._table.insert(sandbox.id, sandbox.name, "", sandbox.metadata_json(),
                           sandbox.status.to_json())

    def get(self, id_or_prefix: str) -> Sandbox:
        return Sandbox.from_row(self._table.resolve(id_or_prefix))

    def find(self, id_or_prefix: str) -> Sandbox | None:
        from cri.errors import NotFound

        try:
            return self.get(id_or_prefix)
        except NotFound:
            return None

    def list(self) -> list[Sandbox]:
        return [Sandbox.from_row(row) for row in self._table.list()]

    def update_status(self, sandbox_id: str,
                      fn: Callable[[SandboxStatus], SandboxStatus]) -> SandboxStatus:
        result = self._table.update_status(
            sandbox_id, lambda data: fn(SandboxStatus.from_json(data)).to_json())
        return SandboxStatus.from_json(result)

    def delete(self, sandbox_id: str) -> None:
        self._table.delete(sandbox_id)
