"""Unpacked layers: `<root>/images/layers/<chain-id hex>/diff`, in overlayfs format.

Each layer is unpacked on its own (by `unpack.py`, in the pull helper), so the directories stack
as overlay `lowerdir`s, and a layer shared by several images (same chain id) is unpacked once.
This module is the store: where a layer lives, which are there, and removing them. The daemon
uses it; it never reads a tar itself.

Crash safety: a layer is unpacked under `.unpack-*` and renamed to its chain id only once
complete. Removal renames to `.remove-*` first. A crash leaves only dot-directories, which
`clean_temporary` deletes at start-up.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cri.errors import Internal
from cri.image.digest import ALGORITHM, hex_of, is_digest

log = logging.getLogger(__name__)

UNPACK_PREFIX = ".unpack-"
_REMOVE_PREFIX = ".remove-"


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)).

    (OCI image spec, config.md "Layer ChainID".)
    """
    out: list[str] = []
    for diff_id in diff_ids:
        if not out:
            out.append(diff_id)
        else:
            joined = f"{out[-1]} {diff_id}".encode()
            out.append(f"{ALGORITHM}:{hashlib.sha256(joined).hexdigest()}")
    return out


class LayerError(Internal):
    """A layer that cannot be applied (corrupt, hostile or not what the config says)."""


class LayerStore:
    def __init__(self, root: Path) -> None:
        """`root` is `<root>/images/layers`."""
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def dir(self, chain_id: str) -> Path:
        return self.root / hex_of(chain_id)

    def diff_dir(self, chain_id: str) -> Path:
        return self.dir(chain_id) / "diff"

    def has(self, chain_id: str) -> bool:
        return self.diff_dir(chain_id).is_dir()

    def chain_ids(self) -> set[str]:
        found = set()
        for entry in os.scandir(self.root):
            chain_id = f"{ALGORITHM}:{entry.name}"
            if is_digest(chain_id):
                found.add(chain_id)
        return found

    def remove(self, chain_id: str) -> None:
        final = self.dir(chain_id)
        if not final.exists():
            return
        # Rename first so that a crash mid-delete never leaves a half-empty layer in place.
        doomed = Path(tempfile.mkdtemp(prefix=_REMOVE_PREFIX, dir=self.root))
        os.rename(final, doomed / "layer")
        remove_tree(doomed)
        log.info("removed layer %s", chain_id)

    def clean_temporary(self) -> None:
        """Delete what an interrupted unpack or removal left. Only safe before pulls start."""
        for entry in os.scandir(self.root):
            if entry.name.startswith((UNPACK_PREFIX, _REMOVE_PREFIX)):
                log.info("removing interrupted layer directory %s", entry.path)
                remove_tree(Path(entry.path))


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
