"""The executor's compiled command line, `cri-oci` (front.c): start, kill, delete and exec
(exec.c) without a Python interpreter in the common case; everything else is handed to the
Python CLI (`cri/oci/launcher.py`). Built at install time, next to its source, as the pause
program is.

    python -m cri.oci.front          # print the binary's path (install.sh links it onto PATH)
"""

from __future__ import annotations

import sys
from pathlib import Path

from cri.static_c import compile_static

SOURCE = Path(__file__).with_name("front.c")
#: the other translation units: exec without Python, and the JSON reader it parses --process with
SOURCES = (Path(__file__).with_name("exec.c"), Path(__file__).with_name("json.c"))
BINARY = Path(__file__).with_name("cri-oci")


def compile_front(
    output: Path = BINARY, python: str = sys.executable, *, strict: bool = False
) -> Path:
    """Compile the front end; `python` is the interpreter it hands other commands to (the one
    installing the package: a venv's python keeps working after the venv is moved only if
    python3 on PATH can import the standard library, which is all the CLI needs).

    NOTE: static, because a static binary starts without the dynamic loader (0.3 ms of a 1 ms
    `start`). It must stay inside the package (cri/oci/front/): it finds launcher.py from its own
    path, symlinks resolved. `strict` (the tests): warnings are errors; not at install time,
    where another compiler's new warning must not fail the installation.
    """
    if '"' in python or "\\" in python:
        raise RuntimeError(f"cannot embed the interpreter path {python!r}")
    flags = ["-O2", "-Wall", "-Wextra", *(["-Werror"] if strict else []),
             f'-DCRI_OCI_PYTHON="{python}"']
    return compile_static(SOURCE, output, flags, program="cri-oci", also=SOURCES)


def installed_binary() -> Path:
    """The binary installed with the package; compiled here, with this interpreter, where it
    is missing (a checkout that was never `pip install`ed)."""
    return BINARY if BINARY.is_file() else compile_front(BINARY, sys.executable)
