"""The shim's steady state, compiled: `cri-shim-loop` (loop.c), which the Python shim execs once
the container is created and reported, so a running container costs a few hundred KiB instead of
an interpreter. `Monitor._loop` in cri/shim/monitor.py stays the reference; the tests run both.
Built at install time next to its source, as the pause program and `cri-oci` are.

    python -m cri.shim.loop          # print the binary's path (compiling it if it is missing)
"""

from __future__ import annotations

import os
from pathlib import Path

from cri.static_c import compile_static

SOURCE = Path(__file__).with_name("loop.c")
BINARY = Path(__file__).with_name("cri-shim-loop")
# "python": the shim keeps its Python loop (the reference), as when the binary is not built.
ENV_LOOP = "CRI_SHIM_LOOP"


def compile_loop(output: Path = BINARY, *, strict: bool = False) -> Path:
    """Compile the loop. Static, as `cri-oci` is: it starts without the dynamic loader and maps
    no shared libraries, which is most of what its memory would be. `strict` (the tests):
    warnings are errors; not at install time, where a newer compiler's warning must not fail it."""
    flags = ["-O2", "-Wall", "-Wextra", *(["-Werror"] if strict else [])]
    return compile_static(SOURCE, output, flags, program="cri-shim-loop")


def built() -> bool:
    return os.access(BINARY, os.X_OK)


def loop_binary() -> Path | None:
    """The compiled loop the shim should exec, or None for the Python loop (not built, or
    CRI_SHIM_LOOP=python)."""
    if os.environ.get(ENV_LOOP) == "python":
        return None
    return BINARY if built() else None
