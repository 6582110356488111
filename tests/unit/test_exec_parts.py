"""ExecSync's parts on their own: bounded output collection and killing a process tree, on real
pipes and real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from cri.task import exec_output, process_tree
from cri.task.exec_output import TRUNCATED, BoundedBuffer


def test_bounded_buffer_keeps_the_limit_and_marks_the_rest() -> None:
    buffer = BoundedBuffer(limit=5)
    for part in (b"abc", b"defg", b"hij"):
        buffer.add(part)
    assert (buffer.value(), buffer.kept, buffer.dropped) == (b"abcde" + TRUNCATED, 5, 5)
    exact = BoundedBuffer(limit=3)
    exact.add(b"abc")
    assert exact.value() == b"abc"  # at the limit, nothing was cut


def test_collect_reads_both_pipes_past_the_limit_without_stalling() -> None:
    # 1 MiB on stdout while stderr also writes: a reader of one pipe at a time would deadlock
    proc = subprocess.Popen(
        ["sh", "-c", "head -c 1048576 /dev/zero; echo err >&2; head -c 70000 /dev/zero >&2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    out = exec_output.collect({"stdout": proc.stdout.fileno(), "stderr": proc.stderr.fileno()},
                              time.monotonic() + 10, limit=1000)
    proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    assert out is not None
    assert out["stdout"].value() == b"\0" * 1000 + TRUNCATED
    assert out["stdout"].dropped == 1048576 - 1000
    assert out["stderr"].value().startswith(b"err\n\0")


def test_collect_gives_up_at_the_deadline() -> None:
    read_fd, write_fd = os.pipe()
    try:
        started = time.monotonic()
        assert exec_output.collect({"stdout": read_fd}, started + 0.2) is None
        assert time.monotonic() - started < 2
    finally:
        os.close(read_fd)
        os.close(write_fd)


def test_parent_of_reads_past_a_command_name_with_parentheses(tmp_path: Path) -> None:
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "stat").write_bytes(b"42 (a) b (c) S 7 42 42 0 -1 4194560\n")
    assert process_tree.parent_of(42, str(tmp_path)) == 7
    assert process_tree.parent_of(43, str(tmp_path)) is None


def test_descendants_follow_every_generation() -> None:
    pairs = [(1, 0), (10, 1), (11, 10), (12, 11), (13, 10), (20, 1), (21, 20)]
    assert process_tree.descendants(10, pairs) == {10, 11, 12, 13}
    assert process_tree.descendants(99, pairs) == {99}


def test_kill_tree_takes_the_grandchildren_too() -> None:
    # sh runs a subshell that runs sleep: three generations, none of them a process group leader
    proc = subprocess.Popen(["sh", "-c", "(sleep 300 & sleep 301 & wait) & wait"])
    deadline = time.monotonic() + 5
    while True:
        tree = process_tree.descendants(proc.pid, (
            (pid, process_tree.parent_of(pid)) for pid in process_tree.all_pids()))
        if len(tree) >= 4 or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert len(tree) == 4  # sh, the subshell, two sleeps
    assert process_tree.kill_tree(proc.pid) == tree
    assert proc.wait(5) == -signal.SIGKILL
    for pid in tree - {proc.pid}:
        deadline = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)  # reaped by init once killed
        assert not _alive(pid)


def _alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
