"""`Undo`: the part of contextlib.ExitStack that create uses, without contextlib.

NOTE: contextlib costs 3 ms to import (collections, functools, types, operator, reprlib...), a
tenth of a `cri-oci create`. Same contract as ExitStack for what it has: `callback(fn, *args,
**kwargs)` registers an undo step, `pop_all()` keeps them from running (success), and leaving the
`with` block runs what is left in reverse order, every one of them even when some raise; the last
exception raised propagates, with the one it replaced as its __context__ (ExitStack leaves that
None when the `with` body itself did not raise).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType
    from typing import Any


class Undo:
    __slots__ = ("_steps",)

    def __init__(self) -> None:
        self._steps: list[tuple[Callable[..., object], tuple[Any, ...], dict[str, Any]]] = []

    def callback(self, fn: Callable[..., object], /, *args: Any, **kwargs: Any) -> None:
        self._steps.append((fn, args, kwargs))

    def pop_all(self) -> Undo:
        """A new Undo with the steps; this one is left with none."""
        moved = Undo()
        moved._steps, self._steps = self._steps, []
        return moved

    def close(self) -> None:
        self.__exit__(None, None, None)

    def __enter__(self) -> Undo:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        raised = error
        while self._steps:
            fn, args, kwargs = self._steps.pop()
            try:
                fn(*args, **kwargs)
            except BaseException as e:  # noqa: BLE001 - every step runs, as under ExitStack
                if raised is not None and e is not raised:
                    e.__context__ = raised
                raised = e
        if raised is not None and raised is not error:
            context = raised.__context__
            try:
                raise raised
            except BaseException:
                raised.__context__ = context  # not the body's error, which a raise here sets
                raise
