"""JSON for the CLI's hot paths: the json package's own C scanner and encoder, without the package.

`import json` costs about 6 ms with its teardown, nearly all of it `re` (json.decoder and
json.encoder compile regular expressions for their pure-Python fallbacks, and re brings enum and
functools). `_json`, the C accelerator json uses whenever it is present, needs none of that: this
module drives it the way json.loads/json.dumps do, and falls back to json where it is missing.

Same results as json.loads(text) and json.dumps(obj) / json.dumps(obj, indent=N) for what the
executor reads and writes (the tests compare them); errors are ValueErrors (json's
JSONDecodeError, whose module is imported only then).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_make_scanner: Any
try:
    from _json import encode_basestring_ascii as _quote
    from _json import make_encoder as _make_encoder
    from _json import make_scanner as _make_scanner
except ImportError:  # pragma: no cover - CPython always has it
    _make_scanner = None


class _Context:
    """The attributes json.decoder.JSONDecoder gives the C scanner, with json.loads' defaults."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = float  # NaN, Infinity, -Infinity: float() reads all three


def _default(obj: object) -> Any:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


if _make_scanner is not None:
    _scan = _make_scanner(_Context())
    # json.dumps(obj): ensure_ascii, allow_nan, no sort, separators (", ", ": "), a cycle check.
    _encode_args = (_default, _quote, None, ": ", ", ", False, False, True)


def loads(text: str) -> Any:
    """json.loads for a str."""
    if _make_scanner is None:  # pragma: no cover
        import json

        return json.loads(text)
    # JSONDecoder.decode: whitespace around the value is allowed, anything else after it is not
    start = len(text) - len(text.lstrip(" \t\n\r"))
    try:
        value, end = _scan(text, start)
    except StopIteration as e:
        _fail("Expecting value", text, e.value)
    rest = len(text) - len(text[end:].lstrip(" \t\n\r"))
    if rest != len(text):
        _fail("Extra data", text, rest)
    return value


def _fail(message: str, text: str, pos: int) -> Any:
    from json import JSONDecodeError

    raise JSONDecodeError(message, text, pos) from None


def dumps(obj: object, *, indent: int | None = None) -> str:
    """json.dumps(obj) or json.dumps(obj, indent=indent)."""
    if _make_scanner is None:  # pragma: no cover
        import json

        return json.dumps(obj, indent=indent)
    if indent is not None:
        try:
            return _indented(obj, indent, 0)
        except _NotPlain:
            import json

            return json.dumps(obj, indent=indent)
    return "".join(_make_encoder({}, *_encode_args)(obj, 0))


class _NotPlain(Exception):
    """A key json.dumps would convert (an int, a bool, None): left to json."""


def _indented(obj: object, indent: int, level: int) -> str:
    """json.dumps' layout with an indent: one item a line, "," then the newline, ": " in pairs."""
    inner = "\n" + " " * (indent * (level + 1))
    outer = "\n" + " " * (indent * level)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = []
        for key, value in obj.items():
            if not isinstance(key, str):
                raise _NotPlain
            items.append(f"{inner}{_quote(key)}: {_indented(value, indent, level + 1)}")
        return "{" + ",".join(items) + outer + "}"
    if isinstance(obj, (list, tuple)):
        if not obj:
            return "[]"
        items = [inner + _indented(value, indent, level + 1) for value in obj]
        return "[" + ",".join(items) + outer + "]"
    return dumps(obj)
