"""The built-in pause program: its C source, how it is compiled, and where it is found."""

from __future__ import annotations

from pathlib import Path

from cri.static_c import compile_static

SOURCE = Path(__file__).with_name("pause.c")
PACKAGED_BINARY = Path(__file__).with_name("pause")


def compile_pause(output: Path) -> Path:
    """Compile the static pause binary (needs a C compiler and static libc: gcc, libc6-dev)."""
    return compile_static(SOURCE, output, ["-Os", "-Wall", "-Werror"], program="pause")


def find_pause_binary(configured: Path | None) -> Path | None:
    """The configured binary, else the one installed with the package."""
    for candidate in (configured, PACKAGED_BINARY):
        if candidate is not None and candidate.is_file():
            return candidate
    return None
