"""Pod network namespaces made by a thread of the daemon (cri/network/netns.py)."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import pytest

from cri.network import remove_netns
from cri.network.netns import create_netns


def test_a_pinned_namespace_with_loopback_up_and_the_daemon_left_where_it_was(
    tmp_path: Path,
) -> None:
    ours = os.stat("/proc/thread-self/ns/net").st_ino
    threads = threading.active_count()
    path = tmp_path / "ns"
    create_netns(path)
    try:
        assert os.stat(path).st_ino != ours  # a namespace of its own, pinned by the mount
        assert os.stat("/proc/thread-self/ns/net").st_ino == ours
        assert os.stat("/proc/self/ns/net").st_ino == ours
        assert threading.active_count() == threads  # the thread that made it has ended
        links = subprocess.run(["nsenter", f"--net={path}", "ip", "-o", "link"], check=True,
                               capture_output=True, text=True).stdout.splitlines()
        assert len(links) == 1 and ": lo:" in links[0] and "UP" in links[0]
    finally:
        remove_netns(path)
    assert not path.exists()


def test_an_existing_path_is_refused_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "ns"
    path.write_text("someone's")
    with pytest.raises(OSError, match="creating network namespace"):
        create_netns(path)
    assert path.read_text() == "someone's"  # not ours to remove
