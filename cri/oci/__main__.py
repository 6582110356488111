"""Entry point: `python -m cri.oci` (the runc-compatible CLI)."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
