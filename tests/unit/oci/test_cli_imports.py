"""Start-up cost of the CLI: what each command imports, through the installed launcher's path.

A `cri-oci start` costs about as much as the interpreter's own start-up, so one stray import of
typing, logging or dataclasses (10 ms each, with their teardown) makes it several times slower.
These tests run the launcher (`python -SE cri/oci/cri-oci`) and list the modules loaded at exit.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
LAUNCHER = REPO / "cri" / "oci" / "cri-oci"

#: modules that cost milliseconds each to import and tear down
HEAVY = (
    "dataclasses",
    "enum",
    "inspect",
    "json",
    "logging",
    "pathlib",
    "re",
    "shutil",
    "subprocess",
    "traceback",
    "typing",
    "argparse",
)

# Runs the launcher's code with the command's argv, then reports sys.modules at exit.
_PROBE = """
import atexit, os, sys
def report():
    os.write(FD, " ".join(sorted(sys.modules)).encode())
atexit.register(report)
sys.argv = [LAUNCHER, *ARGS]
code = compile(open(LAUNCHER).read(), LAUNCHER, "exec")
sys.path.insert(0, os.path.dirname(LAUNCHER))
exec(code, {"__name__": "__main__", "__file__": LAUNCHER})
"""


def loaded_modules(*args: str) -> set[str]:
    r, w = os.pipe()
    probe = (
        _PROBE.replace("LAUNCHER", repr(str(LAUNCHER)))
        .replace("ARGS", repr(list(args)))
        .replace("FD", str(w))
    )
    proc = subprocess.run(
        [sys.executable, "-SE", "-c", probe],
        pass_fds=(w,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    os.close(w)
    with os.fdopen(r, "rb") as f:
        names = set(f.read().decode().split())
    assert names, proc.stderr.decode()
    return names


@pytest.mark.parametrize("args", [("--version",), ("--help",)])
def test_commands_import_nothing_heavy(args: tuple[str, ...]) -> None:
    heavy = sorted(set(HEAVY) & loaded_modules(*args))
    assert heavy == [], f"cri-oci {' '.join(args)} imports {heavy}"


def test_launcher_imports_the_checkout() -> None:
    out = subprocess.run(
        [sys.executable, "-SE", str(LAUNCHER), "--version"],
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    )
    assert out.stdout.startswith("cri-oci version")
