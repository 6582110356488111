"""Deferred deletion: a removal moves what it removes into a trash dir and returns at once.

Unmounting a container's root filesystem costs milliseconds (overlayfs syncs its upper layer at
the last unmount), and so does deleting a tree. RemoveContainer and RemovePodSandbox need
neither to be done before they answer, only to be certain to happen. So they rename the
object's directories (mounts and all: a mount follows its directory through a rename) into
`<root>/trash` or `<state>/trash`, whichever is on the same file system. One thread then
unmounts whatever is mounted there, deepest first, and deletes it.

Crash safety: what is in a trash dir is garbage by definition. At start-up the trash is swept
before anything new goes in; a rename is atomic, so an object is either in place (and its
record still says it exists) or in the trash.

Whoever needs the deletions done (image collection, which must not remove layers a trashed
rootfs still stacks; the daemon's stop) calls `drain`.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import secrets
import shutil
import threading
from collections.abc import Sequence
from pathlib import Path

from cri.storage.mounts import unmount

log = logging.getLogger(__name__)

TRASH_DIR = "trash"


class Trash:
    def __init__(self, bases: Sequence[Path]) -> None:
        """`bases` are the trees whose objects may be trashed (the daemon's root and state)."""
        self._dirs = [(base.resolve(), base.resolve() / TRASH_DIR) for base in bases]
        self._queue: queue.Queue[Path | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Sweep what an earlier run left, then serve; the sweep runs on the trash's thread."""
        for _, trash in self._dirs:
            trash.mkdir(parents=True, exist_ok=True, mode=0o700)
            for entry in sorted(trash.iterdir()):
                self._queue.put(entry)
        self._thread = threading.Thread(target=self._serve, name="trash", daemon=True)
        self._thread.start()

    def discard(self, path: Path) -> None:
        """Move `path` (if it exists) to the trash, to be unmounted and deleted soon."""
        resolved = path.resolve()
        trash = next((t for base, t in self._dirs if resolved.is_relative_to(base)), None)
        if trash is None:
            raise ValueError(f"{path} is under none of the trash's bases")
        doomed = trash / f"{resolved.name}.{secrets.token_hex(4)}"
        try:
            os.rename(resolved, doomed)
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            clean(resolved)  # on a file system of its own: no rename, delete it here
            return
        if self._thread is None:  # not started (a unit under test): clean up in place
            clean(doomed)
        else:
            self._queue.put(doomed)

    def drain(self) -> None:
        """Return once everything trashed so far is unmounted and deleted."""
        if self._thread is not None:
            self._queue.join()

    def close(self) -> None:
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join()
        self._thread = None

    def _serve(self) -> None:
        while True:
            path = self._queue.get()
            try:
                if path is None:
                    return
                clean(path)
            except Exception:  # noqa: BLE001 - one stuck tree must not stop the others
                log.exception("cannot clean %s from the trash", path)
            finally:
                self._queue.task_done()


def clean(path: Path) -> None:
    for mount_point in sorted(mounts_under(path), key=lambda p: -p.count("/")):  # deepest first
        unmount(Path(mount_point))
    shutil.rmtree(path, ignore_errors=True)


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below `path`."""
    prefix = str(path)
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = _unescape(line.split(" ", 5)[4])
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return found


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)
