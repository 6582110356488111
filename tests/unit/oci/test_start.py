"""`start` against a stand-in init: a forked child that plays the init's side of exec.fifo."""

from __future__ import annotations

import os
import time
from pathlib import Path

from cri.oci.start import start
from cri.oci.state import Record, proc_stat, save


def _stand_in(root: Path, cid: str, hold: float, linger: float = 5) -> tuple[int, Path]:
    """A child that opens exec.fifo for writing (blocking until `start` reads), writes the byte,
    keeps the write end `hold` seconds as the init does until its execve, then lingers."""
    cdir = root / cid
    cdir.mkdir(parents=True)
    fifo = cdir / "exec.fifo"
    os.mkfifo(fifo)
    marks = cdir / "marks"
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the stand-in
        try:
            fd = os.open(fifo, os.O_WRONLY)
            os.write(fd, b"0")
            time.sleep(hold)
            marks.write_text("closed")
            os.close(fd)
            time.sleep(linger)
        finally:
            os._exit(0)
    stat = proc_stat(pid)
    assert stat is not None
    save(root, Record(id=cid, pid=pid, pid_start=stat[1], bundle="/b", rootfs="/r", created="t"))
    return pid, marks


def test_start_returns_once_the_init_closed_the_fifo(tmp_path: Path) -> None:
    """The init keeps exec.fifo's write end open until its execve: `start` (and its poststart
    hooks) wait for that EOF, not just for the byte."""
    pid, marks = _stand_in(tmp_path, "c1", hold=0.3)
    try:
        began = time.monotonic()
        start(tmp_path, "c1")
        assert marks.read_text() == "closed"
        assert time.monotonic() - began >= 0.3
        assert not (tmp_path / "c1" / "exec.fifo").exists()
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)


def test_start_succeeds_when_the_init_dies_after_the_byte(tmp_path: Path) -> None:
    """A user process that exits at once (or an execve that fails) is a stopped container, not a
    failed `start`."""
    pid, marks = _stand_in(tmp_path, "c2", hold=0, linger=0)
    try:
        start(tmp_path, "c2")
        assert marks.read_text() == "closed"
    finally:
        os.waitpid(pid, 0)
