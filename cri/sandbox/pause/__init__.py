"""The built-in pause program: its C source, how it is compiled, and where it is found."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

SOURCE = Path(__file__).with_name("pause.c")
PACKAGED_BINARY = Path(__file__).with_name("pause")


def compile_pause(output: Path) -> Path:
    """Compile the static pause binary (needs a C compiler and static libc: gcc, libc6-dev)."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("no C compiler found: install gcc and libc6-dev to build pause")
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    subprocess.run(
        [compiler, "-static", "-Os", "-s", "-Wall", "-Werror", "-o", str(tmp), str(SOURCE)],
        check=True,
    )
    tmp.replace(output)
    return output


def find_pause_binary(configured: Path | None) -> Path | None:
    """The configured binary, else the one installed with the package."""
    for candidate in (configured, PACKAGED_BINARY):
        if candidate is not None and candidate.is_file():
            return candidate
    return None
