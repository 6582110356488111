"""The image records and their names, in SQLite (owner "image"; only this module writes them).

    image_images  one row per image, keyed by id = "sha256:<config digest hex>"
    image_names   name -> image id; a name is a repo tag "repo:tag" or a repo digest
                  "repo@sha256:<hex>"

A name points at exactly one image. Pulling a tag that moved re-points the name; the image it
used to name keeps its other names, and an image with no names at all stays listed (crictl shows
it as `<none>`), as in containerd, until it is removed by id.

The tables carry an `image_` prefix because all domains share one database file.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cri.store.db import Database

log = logging.getLogger(__name__)

SCHEMA_OWNER = "image"
SCHEMA_VERSION = 1
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS image_images (
        id TEXT PRIMARY KEY,
        manifest_digest TEXT NOT NULL,
        config TEXT NOT NULL,
        chain_ids TEXT NOT NULL,
        blobs TEXT NOT NULL,
        size INTEGER NOT NULL,
        pinned INTEGER NOT NULL,
        created_ns INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS image_names (
        name TEXT PRIMARY KEY,
        image_id TEXT NOT NULL REFERENCES image_images(id) ON DELETE CASCADE
    )""",
    "CREATE INDEX IF NOT EXISTS image_names_by_image ON image_names(image_id)",
)


@dataclass(frozen=True, slots=True)
class ImageRecord:
    id: str
    manifest_digest: str  # the platform manifest most recently pulled for this config
    config: str  # the image config JSON, as stored in the registry
    chain_ids: tuple[str, ...]  # bottom layer first
    blobs: tuple[str, ...]  # content-store digests this image keeps alive
    size: int
    pinned: bool
    created_ns: int
    names: tuple[str, ...] = ()


class ImageStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        db.ensure_schema(SCHEMA_OWNER, SCHEMA_VERSION, _SCHEMA)

    def put(self, record: ImageRecord, names: Sequence[str]) -> None:
        """Insert or refresh the image and point `names` at it, in one transaction.

        An existing image keeps its creation time and stays pinned once pinned; its blob list
        grows (a second manifest for the same config may reference other blobs).
        """
        with self._db.transaction() as cur:
            row = cur.execute(
                "SELECT blobs, pinned, created_ns FROM image_images WHERE id = ?", (record.id,)
            ).fetchone()
            if row is None:
                cur.execute(
                    "INSERT INTO image_images (id, manifest_digest, config, chain_ids, blobs, "
                    "size, pinned, created_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        record.id,
                        record.manifest_digest,
                        record.config,
                        json.dumps(list(record.chain_ids)),
                        json.dumps(sorted(set(record.blobs))),
                        record.size,
                        int(record.pinned),
                        record.created_ns,
                    ),
                )
            else:
                blobs = sorted(set(json.loads(row["blobs"])) | set(record.blobs))
                cur.execute(
                    "UPDATE image_images SET manifest_digest = ?, blobs = ?, pinned = ? "
                    "WHERE id = ?",
                    (
                        record.manifest_digest,
                        json.dumps(blobs),
                        int(bool(row["pinned"]) or record.pinned),
                        record.id,
                    ),
                )
            for name in names:
                previous = cur.execute(
                    "SELECT image_id FROM image_names WHERE name = ?", (name,)
                ).fetchone()
                if previous is not None and previous["image_id"] != record.id:
                    log.info("name %s moves from %s to %s", name, previous["image_id"], record.id)
                cur.execute(
                    "INSERT INTO image_names (name, image_id) VALUES (?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id",
                    (name, record.id),
                )

    def get(self, image_id: str) -> ImageRecord | None:
        rows = self._db.query("SELECT * FROM image_images WHERE id = ?", (image_id,))
        if not rows:
            return None
        names = self._db.query(
            "SELECT name FROM image_names WHERE image_id = ? ORDER BY name", (image_id,)
        )
        return _record(rows[0], (n["name"] for n in names))

    def all(self) -> list[ImageRecord]:
        names: dict[str, list[str]] = {}
        for row in self._db.query("SELECT name, image_id FROM image_names ORDER BY name"):
            names.setdefault(row["image_id"], []).append(row["name"])
        rows = self._db.query("SELECT * FROM image_images ORDER BY created_ns, id")
        return [_record(row, names.get(row["id"], ())) for row in rows]

    def resolve_name(self, name: str) -> str | None:
        rows = self._db.query("SELECT image_id FROM image_names WHERE name = ?", (name,))
        return str(rows[0]["image_id"]) if rows else None

    def ids_with_prefix(self, prefix: str) -> list[str]:
        """Image ids starting with `prefix` ("sha256:" plus some hex)."""
        # GLOB instead of LIKE: '_' and '%' are not special, and the match is case-sensitive.
        rows = self._db.query("SELECT id FROM image_images WHERE id GLOB ?", (prefix + "*",))
        return [str(r["id"]) for r in rows]

    def delete(self, image_id: str) -> None:
        """Remove the image and every name pointing at it (the names go by ON DELETE CASCADE
        too; deleting them explicitly keeps this correct without foreign keys switched on)."""
        with self._db.transaction() as cur:
            cur.execute("DELETE FROM image_names WHERE image_id = ?", (image_id,))
            cur.execute("DELETE FROM image_images WHERE id = ?", (image_id,))

    def referenced(self) -> tuple[set[str], set[str]]:
        """(chain ids, blob digests) that some image still needs."""
        layers: set[str] = set()
        blobs: set[str] = set()
        for row in self._db.query("SELECT chain_ids, blobs FROM image_images"):
            layers.update(json.loads(row["chain_ids"]))
            blobs.update(json.loads(row["blobs"]))
        return layers, blobs


def _record(row: sqlite3.Row, names: Iterable[str]) -> ImageRecord:
    return ImageRecord(
        id=row["id"],
        manifest_digest=row["manifest_digest"],
        config=row["config"],
        chain_ids=tuple(json.loads(row["chain_ids"])),
        blobs=tuple(json.loads(row["blobs"])),
        size=row["size"],
        pinned=bool(row["pinned"]),
        created_ns=row["created_ns"],
        names=tuple(names),
    )
