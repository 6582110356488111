"""`@record`: what `@dataclass(frozen=True, slots=True)` gives the executor, at a fraction of the
start-up cost.

`import dataclasses` costs about 14 ms with its teardown (it pulls in inspect, and with it ast,
dis, tokenize, re, enum...), and each class costs another 0.5 to 1 ms while dataclasses writes and
compiles its methods. The CLI defines some 25 such classes on the way to a `create`, so records
were a quarter of its run time. This decorator builds the same kind of class from the class's
annotations with generic methods instead of generated ones:

- an `__init__` taking the fields in order, positionally or by name, with defaults and
  `field(default_factory=...)`;
- `__slots__`, value `__eq__` and `__hash__`, a dataclass-style `__repr__`;
- frozen by default: assignment raises `FrozenInstanceError` (an AttributeError, as dataclasses');
  `@mutable_record` for a mutable one;
- `replace(obj, **changes)` and `asdict(obj)` (shallow: values are not copied or converted).

Not supported (none of the executor's records uses them): inheritance of fields, `__post_init__`,
`InitVar`/`ClassVar` fields, ordering, `field()` options other than `default_factory`, methods
that use `super()` or `__class__` (the class is rebuilt with slots, as dataclasses does).
mypy sees a dataclass (`dataclass_transform`).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform

    T = TypeVar("T")
else:

    def dataclass_transform(**_: object) -> Callable[[T], T]:
        return lambda f: f


class FrozenInstanceError(AttributeError):
    pass


class _Factory:
    __slots__ = ("factory",)

    def __init__(self, factory: Callable[[], object]) -> None:
        self.factory = factory


_MISSING = object()
_setattr = object.__setattr__


def field(*, default_factory: Callable[[], Any]) -> Any:
    """A default made per instance (a fresh dict, list...), as dataclasses.field."""
    return _Factory(default_factory)


def _make_init(cls_name: str, names: tuple[str, ...], defaults: dict[str, object]) -> Any:
    count = len(names)

    def __init__(self: object, *args: object, **kwargs: object) -> None:
        if len(args) > count:
            raise TypeError(
                f"{cls_name}() takes {count} positional arguments but {len(args)} were given"
            )
        for name, value in zip(names, args, strict=False):
            _setattr(self, name, value)
        for name in names[len(args) :]:
            if name in kwargs:
                value = kwargs.pop(name)
            else:
                value = defaults.get(name, _MISSING)
                if value is _MISSING:
                    raise TypeError(f"{cls_name}() missing required argument: {name!r}")
                if type(value) is _Factory:
                    value = value.factory()
            _setattr(self, name, value)
        if kwargs:
            name = next(iter(kwargs))
            raise TypeError(f"{cls_name}() got an unexpected or repeated argument {name!r}")

    return __init__


def _values(self: Any) -> tuple[object, ...]:
    return tuple(getattr(self, name) for name in self.__record_fields__)


def _eq(self: Any, other: object) -> bool:
    if other.__class__ is not self.__class__:
        unknown: bool = NotImplemented
        return unknown
    same: bool = _values(self) == _values(other)
    return same


def _hash(self: Any) -> int:
    return hash(_values(self))


def _repr(self: Any) -> str:
    fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__record_fields__)
    return f"{self.__class__.__qualname__}({fields})"


def _frozen_setattr(self: object, name: str, value: object) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: object, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


def _getstate(self: Any) -> tuple[object, ...]:
    return _values(self)


def _setstate(self: Any, state: tuple[object, ...]) -> None:
    for name, value in zip(self.__record_fields__, state, strict=True):
        _setattr(self, name, value)


def _build(cls: type[T], frozen: bool) -> type[T]:
    body = dict(cls.__dict__)
    names = tuple(body.get("__annotations__", {}))
    defaults: dict[str, object] = {}
    for name in names:
        if name in body:
            defaults[name] = body.pop(name)
        elif defaults:
            raise TypeError(f"{cls.__name__}: non-default field {name!r} follows a default")
    body.pop("__dict__", None)
    body.pop("__weakref__", None)
    body["__slots__"] = names
    body["__record_fields__"] = names
    body["__init__"] = _make_init(cls.__name__, names, defaults)
    body["__repr__"] = _repr
    body["__eq__"] = _eq
    body["__getstate__"] = _getstate
    body["__setstate__"] = _setstate
    if frozen:
        body["__hash__"] = _hash
        body["__setattr__"] = _frozen_setattr
        body["__delattr__"] = _frozen_delattr
    else:
        body["__hash__"] = None  # mutable and compared by value: unhashable, as dataclasses
    metaclass: Any = type(cls)
    new: type[T] = metaclass(cls.__name__, cls.__bases__, body)
    new.__qualname__ = cls.__qualname__
    return new


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def record(cls: type[T], /) -> type[T]:
    """Class decorator for a frozen record: see the module's docstring."""
    return _build(cls, frozen=True)


@dataclass_transform(frozen_default=False, field_specifiers=(field,))
def mutable_record(cls: type[T], /) -> type[T]:
    """Class decorator for a record whose fields can be assigned."""
    return _build(cls, frozen=False)


def replace(obj: T, /, **changes: Any) -> T:
    """A copy of the record `obj` with some fields changed (dataclasses.replace)."""
    values = {name: getattr(obj, name) for name in obj.__record_fields__}  # type: ignore[attr-defined]
    for name in changes:
        if name not in values:
            raise TypeError(f"{type(obj).__name__} has no field {name!r}")
    values.update(changes)
    return type(obj)(**values)


def asdict(obj: object) -> dict[str, Any]:
    """The record's fields by name, values as they are (dataclasses.asdict copies them deeply)."""
    return {name: getattr(obj, name) for name in obj.__record_fields__}  # type: ignore[attr-defined]


def fields(obj_or_class: object) -> tuple[str, ...]:
    """The field names, in order."""
    names: tuple[str, ...] = obj_or_class.__record_fields__  # type: ignore[attr-defined]
    return names
