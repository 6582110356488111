"""The embedded SQLite database that every domain keeps its durable state in."""

from cri.store.db import Database

__all__ = ["Database"]
