"""One call on a thread of its own, its outcome as a Future: for a step that may overlap the
next ones of the same operation (a pod's CNI ADD or DEL beside its pause task's create or kill).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


def in_background(name: str, fn: Callable[..., T], *args: Any) -> Future[T]:
    future: Future[T] = Future()

    def run() -> None:
        try:
            future.set_result(fn(*args))
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future
