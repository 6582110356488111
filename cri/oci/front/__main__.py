"""`python -m cri.oci.front`: print the path of the compiled `cri-oci` (compiling it if missing)."""

from __future__ import annotations

from . import BINARY, compile_front

if not BINARY.is_file():
    compile_front()
print(BINARY)
