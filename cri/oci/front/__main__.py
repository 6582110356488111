"""`python -m cri.oci.front`: print the path of the compiled `cri-oci` (compiling it if missing)."""

from __future__ import annotations

from . import installed_binary

print(installed_binary())
