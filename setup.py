"""Install-time build step: compile the C programs into the package, next to their sources:
the static pause binary, the executor's command line (`cri-oci`) and the shim's loop
(`cri-shim-loop`).

Everything else lives in pyproject.toml; this file exists only because those programs are C.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

# The programs' modules import cri.static_c (standard library only); `cri` itself imports nothing.
sys.path.insert(0, str(Path(__file__).parent))


def _load_module(relative: str):  # type: ignore[no-untyped-def]
    # by path: importing the `cri` package here would need its dependencies at build time
    path = Path(__file__).parent / relative / "__init__.py"
    spec = importlib.util.spec_from_file_location("_cri_build_" + path.parent.name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildWithPrograms(build_py):
    def run(self) -> None:
        # Compiled next to their sources so that both regular and editable installs carry them.
        pause = _load_module("cri/sandbox/pause")
        pause.compile_pause(pause.PACKAGED_BINARY)
        # sys.executable: pip runs this with the interpreter it installs for (the venv's)
        front = _load_module("cri/oci/front")
        front.compile_front(front.BINARY, sys.executable)
        loop = _load_module("cri/shim/loop")
        loop.compile_loop(loop.BINARY)
        super().run()


setup(cmdclass={"build_py": BuildWithPrograms})
