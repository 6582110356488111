"""The sandboxes table; only the sandbox package writes it.

Events (a sandbox's own, with its id as the container id, as containerd sends them): CREATED and
STARTED when RunPodSandbox has succeeded, STOPPED when the state leaves READY, DELETED at
RemovePodSandbox.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from cri.events import CREATED, DELETED, STARTED, STOPPED, LifecycleEvent
from cri.events.broker import EventSink, NoEvents
from cri.sandbox.model import READY, Sandbox, SandboxStatus
from cri.store.db import Database
from cri.store.table import ObjectTable


class SandboxStore:
    def __init__(self, db: Database, events: EventSink | None = None) -> None:
        self._table = ObjectTable(db, "sandboxes", "sandbox")
        self.events: EventSink = events or NoEvents()

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
            sandbox_id, lambda data: fn(SandboxStatus.from_json(data)).to_json(),
            lambda parent, old, new: self._announce_change(sandbox_id, old, new))
        return SandboxStatus.from_json(result)

    def _announce_change(self, sandbox_id: str, old: Mapping[str, Any],
                         new: Mapping[str, Any]) -> None:
        before, after = old.get("state"), new.get("state")
        if before == after:
            return
        if after == READY:
            self.events.publish(LifecycleEvent(CREATED, sandbox_id, sandbox_id))
            self.events.publish(LifecycleEvent(STARTED, sandbox_id, sandbox_id))
        elif before == READY:
            self.events.publish(LifecycleEvent(STOPPED, sandbox_id, sandbox_id))

    def delete(self, sandbox_id: str) -> None:
        if self._table.delete(sandbox_id):
            self.events.publish(LifecycleEvent(DELETED, sandbox_id, sandbox_id))

    def release(self, sandbox_id: str) -> None:
        """Undo a reservation that was never announced."""
        self._table.delete(sandbox_id)
