"""The object table: names reserved once, status changed only inside a transaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from cri.errors import AlreadyExists, NotFound
from cri.store import Database
from cri.store.table import ObjectTable


@pytest.fixture
def table(tmp_path: Path) -> ObjectTable:
    return ObjectTable(Database(tmp_path / "db"), "things", "thing")


def test_names_are_reserved(table: ObjectTable) -> None:
    table.insert("a1", "name", "", {"m": 1}, {"s": 0})
    with pytest.raises(AlreadyExists):
        table.insert("b2", "name", "", {}, {})
    assert [r.id for r in table.list()] == ["a1"]


def test_resolve_by_prefix(table: ObjectTable) -> None:
    table.insert("abc123", "one", "p", {}, {})
    table.insert("abd456", "two", "p", {}, {})
    assert table.resolve("abc").id == "abc123"
    with pytest.raises(NotFound, match="ambiguous"):
        table.resolve("ab")
    with pytest.raises(NotFound):
        table.resolve("zz")
    with pytest.raises(NotFound):
        table.resolve("a%")
    assert {r.id for r in table.list("p")} == {"abc123", "abd456"}


def test_status_update_rolls_back_when_fn_raises(table: ObjectTable) -> None:
    table.insert("a1", "name", "", {}, {"n": 1})
    table.update_status("a1", lambda s: {"n": s["n"] + 1})

    def boom(status: object) -> dict[str, int]:
        raise ValueError("no")

    with pytest.raises(ValueError):
        table.update_status("a1", boom)
    row = table.get("a1")
    assert row is not None and row.status == {"n": 2}
    with pytest.raises(NotFound):
        table.update_status("missing", lambda s: s)


def test_state_survives_reopening(tmp_path: Path) -> None:
    ObjectTable(Database(tmp_path / "db"), "things", "thing").insert("a", "n", "", {"k": "v"}, {})
    again = ObjectTable(Database(tmp_path / "db"), "things", "thing")
    row = again.get("a")
    assert row is not None and row.metadata == {"k": "v"}
