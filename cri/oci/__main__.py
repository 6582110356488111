"""Entry point: `python -m cri.oci` (the runc-compatible CLI)."""

from __future__ import annotations

from .cli import run_and_exit

run_and_exit()
