"""How the daemon starts its own Python helper programs (shim, OCI CLI, netns pinning).

The daemon never forks without exec, so every helper is a fresh interpreter. It must import the
same `cri` package as the daemon even when that is a source checkout, not an installed one.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_PACKAGE_PARENT = str(Path(__file__).resolve().parents[1])


def module_argv(module: str, *args: str, site: bool = True) -> list[str]:
    """`python -m module args`. site=False: without `site` (its scan of site-packages costs
    about 8 ms here), for helpers that need nothing but the standard library and this package,
    which helper_env's PYTHONPATH names."""
    return [sys.executable, *([] if site else ["-S"]), "-m", module, *args]


def oci_cli_argv(*args: str) -> list[str]:
    """The executor's Python CLI as the compiled front end runs it (`-SE launcher.py`): no
    `site` scan and no runpy, 3 to 5 ms less than `-m cri.oci` for each ExecSync (probes). The
    launcher finds this package from its own path; the CLI needs nothing else."""
    return [sys.executable, "-SE", str(Path(_PACKAGE_PARENT, "cri", "oci", "launcher.py")), *args]


def helper_env() -> dict[str, str]:
    env = dict(os.environ)
    path = env.get("PYTHONPATH", "")
    if _PACKAGE_PARENT not in path.split(os.pathsep):
        env["PYTHONPATH"] = _PACKAGE_PARENT + (os.pathsep + path if path else "")
    return env
