"""A table of runtime objects (sandboxes, containers): metadata written once, status by transaction.

Each object has an id, a unique name (reserved when the object is created, so a retried request
finds it instead of making a twin), immutable metadata, and a mutable status. Status changes only
through `update_status(id, fn)`, which runs `fn` inside one SQLite transaction: if `fn` raises,
nothing changes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from cri.errors import AlreadyExists, NotFound
from cri.store.db import Database

JSON = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Row:
    id: str
    name: str
    parent: str
    metadata: JSON
    status: JSON


class ObjectTable:
    def __init__(self, db: Database, table: str, kind: str) -> None:
        self._db = db
        self._table = table
        self._kind = kind  # "sandbox" or "container", for messages
        db.ensure_schema(table, 1, [
            f"""CREATE TABLE IF NOT EXISTS {table} (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL UNIQUE,
                parent TEXT NOT NULL DEFAULT '',
                metadata TEXT NOT NULL,
                status TEXT NOT NULL
            )""",
            f"CREATE INDEX IF NOT EXISTS {table}_parent ON {table} (parent)",
        ])

    def insert(self, id: str, name: str, parent: str, metadata: JSON, status: JSON) -> None:
        with self._db.transaction() as cur:
            clash = cur.execute(
                f"SELECT id FROM {self._table} WHERE name = ?", (name,)
            ).fetchone()
            if clash is not None:
                raise AlreadyExists(
                    f"{self._kind} name {name!r} is reserved for {self._kind} {clash['id']}"
                )
            cur.execute(
                f"INSERT INTO {self._table} (id, name, parent, metadata, status) "
                "VALUES (?, ?, ?, ?, ?)",
                (id, name, parent, json.dumps(metadata), json.dumps(status)),
            )

    def get(self, id: str) -> Row | None:
        rows = self._db.query(f"SELECT * FROM {self._table} WHERE id = ?", (id,))
        return _row(rows[0]) if rows else None

    def resolve(self, id_or_prefix: str) -> Row:
        """The object with this id, or the only one whose id starts with it (crictl truncates)."""
        if not id_or_prefix:
            raise NotFound(f"empty {self._kind} id")
        row = self.get(id_or_prefix)
        if row is not None:
            return row
        pattern = id_or_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = self._db.query(
            f"SELECT * FROM {self._table} WHERE id LIKE ? ESCAPE '\\' LIMIT 2", (pattern + "%",)
        )
        if not rows:
            raise NotFound(f"{self._kind} {id_or_prefix!r} not found")
        if len(rows) > 1:
            raise NotFound(f"{self._kind} id prefix {id_or_prefix!r} is ambiguous")
        return _row(rows[0])

    def list(self, parent: str | None = None) -> list[Row]:
        if parent is None:
            rows = self._db.query(f"SELECT * FROM {self._table}")
        else:
            rows = self._db.query(f"SELECT * FROM {self._table} WHERE parent = ?", (parent,))
        return [_row(r) for r in rows]

    def update_status(self, id: str, fn: Callable[[JSON], JSON],
                      committed: Callable[[str, JSON, JSON], None] | None = None) -> JSON:
        """`committed(parent, old, new)` runs once the change is committed (the stores announce
        state transitions from it)."""
        with self._db.transaction() as cur:
            found = cur.execute(
                f"SELECT status, parent FROM {self._table} WHERE id = ?", (id,)
            ).fetchone()
            if found is None:
                raise NotFound(f"{self._kind} {id!r} not found")
            old = json.loads(found["status"])
            status = fn(old)
            cur.execute(
                f"UPDATE {self._table} SET status = ? WHERE id = ?", (json.dumps(status), id)
            )
        if committed is not None:
            committed(found["parent"], old, status)
        return status

    def delete(self, id: str) -> bool:
        """False when there was no such row (a concurrent remove got there first)."""
        with self._db.transaction() as cur:
            cur.execute(f"DELETE FROM {self._table} WHERE id = ?", (id,))
            return cur.rowcount > 0

    def __iter__(self) -> Iterator[Row]:
        return iter(self.list())


def _row(r: Any) -> Row:
    return Row(
        id=r["id"],
        name=r["name"],
        parent=r["parent"],
        metadata=json.loads(r["metadata"]),
        status=json.loads(r["status"]),
    )
