"""Install-time build step: compile the static pause binary into the package.

Everything else lives in pyproject.toml; this file exists only because the pause program is C.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


def _load_pause_module():  # type: ignore[no-untyped-def]
    path = Path(__file__).parent / "cri" / "sandbox" / "pause" / "__init__.py"
    spec = importlib.util.spec_from_file_location("_cri_pause_build", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class BuildWithPause(build_py):
    def run(self) -> None:
        pause = _load_pause_module()
        # Compiled next to its source so that both regular and editable installs carry it.
        pause.compile_pause(pause.PACKAGED_BINARY)
        super().run()


setup(cmdclass={"build_py": BuildWithPause})
