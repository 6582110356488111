"""The daemon's one SQLite database.

Each domain package owns its own tables: it declares them with `ensure_schema` and is the only code
that writes them. This module only provides the connection, the schema bookkeeping and transactions.

NOTE: gRPC serves requests from a thread pool, so the connection is shared behind a lock rather
than opened per thread; SQLite serialises writers anyway, and our transactions are short.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class Database:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            str(path), check_same_thread=False, isolation_level=None, timeout=30.0
        )
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        # NORMAL is crash-safe with WAL (a power cut may lose the last commit, never corrupt).
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_versions (owner TEXT PRIMARY KEY, version INTEGER)"
        )

    def ensure_schema(self, owner: str, version: int, statements: Sequence[str]) -> None:
        """Create the owner's tables if the database has not seen this schema version yet."""
        with self.transaction() as cur:
            row = cur.execute(
                "SELECT version FROM schema_versions WHERE owner = ?", (owner,)
            ).fetchone()
            if row is not None and row["version"] >= version:
                return
            for statement in statements:
                cur.execute(statement)
            cur.execute(
                "INSERT OR REPLACE INTO schema_versions (owner, version) VALUES (?, ?)",
                (owner, version),
            )

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Cursor]:
        """One IMMEDIATE transaction: committed when the block ends, rolled back if it raises."""
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            else:
                cur.execute("COMMIT")
            finally:
                cur.close()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            self._conn.close()
