"""Compiling the package's C programs (the pause program, `cri-oci`, `cri-shim-loop`), at install
time and in the tests.

Standard library only: setup.py loads the programs' modules by path, before the package's
dependencies are installed.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path


def compile_static(source: Path, output: Path, flags: Sequence[str], *, program: str,
                   also: Sequence[Path] = ()) -> Path:
    """`cc -static -s FLAGS -o output source [ALSO...]`, written beside `output` and renamed into
    place, so a running copy of the program is never overwritten half-way."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError(f"no C compiler found: install gcc and libc6-dev to build {program}")
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    subprocess.run([compiler, "-static", "-s", *flags, "-o", str(tmp), str(source),
                    *(str(extra) for extra in also)], check=True)
    tmp.replace(output)
    return output
