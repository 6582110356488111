"""records.py (dataclass-like records) and jsonio.py (json through _json) against the standard
library they stand in for."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
from typing import Any

import pytest

from cri.oci import jsonio
from cri.oci.records import FrozenInstanceError, asdict, field, mutable_record, record, replace


@record
class Point:
    x: int
    y: int = 0
    tags: dict[str, str] = field(default_factory=dict)

    def norm1(self) -> int:
        return abs(self.x) + abs(self.y)


@record
class Pair:
    a: int
    b: int


@dataclasses.dataclass(frozen=True, slots=True)
class DataPair:
    a: int
    b: int


@mutable_record
class Slot:
    path: str = ""
    env: dict[str, str] | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class DataPoint:
    x: int
    y: int = 0
    tags: dict[str, str] = dataclasses.field(default_factory=dict)


def test_record_behaves_like_a_frozen_slotted_dataclass() -> None:
    p = Point(1, tags={"a": "b"})
    d = DataPoint(1, tags={"a": "b"})
    assert (p.x, p.y, p.tags) == (d.x, d.y, d.tags)
    assert repr(p) == repr(d).replace("DataPoint", "Point")
    assert p == Point(x=1, y=0, tags={"a": "b"}) and p != Point(2)
    assert p != d  # type: ignore[comparison-overlap]  # other classes never compare equal
    assert hash(Pair(1, 2)) == hash(Pair(1, 2)) == hash(DataPair(1, 2))
    with pytest.raises(TypeError):
        hash(p)  # a dict field: unhashable, as the dataclass
    assert Point(1).tags is not Point(1).tags  # a fresh default per instance
    assert p.norm1() == 1
    assert not hasattr(p, "__dict__") and Point.__dict__["__slots__"] == ("x", "y", "tags")
    with pytest.raises(FrozenInstanceError):
        p.x = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del p.y
    assert replace(p, y=5) == Point(1, 5, {"a": "b"})
    assert asdict(p) == dataclasses.asdict(d)
    assert pickle.loads(pickle.dumps(p)) == p
    assert copy.copy(p) == p


@pytest.mark.parametrize(
    "call",
    [
        lambda: Point(),  # type: ignore[call-arg]  # missing
        lambda: Point(1, 2, {}, 4),  # type: ignore[call-arg]  # too many
        lambda: Point(1, z=3),  # type: ignore[call-arg]  # unknown
        lambda: Point(1, x=1),  # type: ignore[misc]  # repeated
        lambda: replace(Point(1), z=1),
    ],
)
def test_record_rejects_bad_arguments(call: Any) -> None:
    with pytest.raises(TypeError):
        call()


def test_mutable_record() -> None:
    s = Slot()
    s.path = "/bin/true"
    assert s == Slot("/bin/true") and s.env is None
    with pytest.raises(TypeError):
        hash(s)


def test_field_order_is_checked() -> None:
    with pytest.raises(TypeError, match="non-default"):

        @record
        class Bad:
            a: int = 1
            b: int  # type: ignore[misc]


SAMPLES: list[Any] = [
    {},
    [],
    {"id": "c1", "pid": 12, "nested": {"a": [1, 2.5, None, True, False]}, "e": [], "o": {}},
    {"unicode": "é ☃ \U0001f600", "ctrl": 'a\nb\t"\\\x01', "big": 2**70, "neg": -3.25e-7},
    [1, [2, [3, {}]], "x"],
    "plain",
    42,
    None,
]


@pytest.mark.parametrize("value", SAMPLES)
def test_jsonio_matches_json(value: Any) -> None:
    assert jsonio.dumps(value) == json.dumps(value)
    assert jsonio.dumps(value, indent=2) == json.dumps(value, indent=2)
    assert jsonio.dumps(value, indent=4) == json.dumps(value, indent=4)
    text = json.dumps(value, indent=1)
    assert jsonio.loads(text) == json.loads(text)
    assert jsonio.loads(f" \n{text}\t\n") == value


def test_jsonio_special_values() -> None:
    assert jsonio.loads("[NaN, Infinity, -Infinity, 1e400]")[1:3] == [float("inf"), -float("inf")]
    assert jsonio.dumps({1: "int key"}, indent=2) == json.dumps({1: "int key"}, indent=2)
    with pytest.raises(TypeError):
        jsonio.dumps({"x": object()})
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError):
        jsonio.dumps(loop)


@pytest.mark.parametrize("text", ["", "  ", "{", '{"a": 1} x', "[1,]", '{"a" 1}', "nul", '"\x01"'])
def test_jsonio_rejects_what_json_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        json.loads(text)
    with pytest.raises(ValueError):
        jsonio.loads(text)
