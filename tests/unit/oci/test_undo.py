"""undo.Undo against contextlib.ExitStack, for what create uses of it."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from cri.oci.undo import Undo


def _scenario(stack_type: Any, fail_body: bool, fail_steps: tuple[int, ...]) -> list[object]:
    seen: list[object] = []

    def step(n: int) -> None:
        seen.append(n)
        if n in fail_steps:
            raise OSError(f"step {n}")

    try:
        with stack_type() as stack:
            for n in (1, 2, 3):
                stack.callback(step, n)
            if fail_body:
                raise ValueError("body")
    except BaseException as e:  # noqa: BLE001
        seen.append((type(e).__name__, str(e), repr(e.__context__)))
    return seen


@pytest.mark.parametrize("fail_body", [False, True])
@pytest.mark.parametrize("fail_steps", [(), (2,), (1, 3)])
def test_like_exit_stack(fail_body: bool, fail_steps: tuple[int, ...]) -> None:
    ours = _scenario(Undo, fail_body, fail_steps)
    theirs = _scenario(contextlib.ExitStack, fail_body, fail_steps)
    if not fail_body and len(fail_steps) > 1:
        # ExitStack leaves the last error's context None there; we keep the one it replaced
        assert ours[-1] == ("OSError", "step 1", "OSError('step 3')")
        assert theirs[-1] == ("OSError", "step 1", "None")
        ours, theirs = ours[:-1], theirs[:-1]
    assert ours == theirs


def test_pop_all_keeps_the_steps_from_running() -> None:
    ran: list[int] = []
    with Undo() as undo:
        undo.callback(ran.append, 1)
        kept = undo.pop_all()
    assert ran == []
    kept.close()
    assert ran == [1]
