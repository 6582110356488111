"""The event broker and the exit watcher on their own: ordering, fan-out, slow subscribers,
exits of real processes."""

from __future__ import annotations

import subprocess
import threading
import time

import pytest

from cri.events import CREATED, DELETED, STARTED, STOPPED, EventBroker, LifecycleEvent, Overflowed
from cri.task.exit_watcher import ExitWatcher
from cri.task.runner import pid_start_time


def rendered(event: LifecycleEvent) -> str:
    return f"{event.object_id}:{event.kind.name}"


@pytest.fixture
def broker() -> EventBroker[str]:
    b: EventBroker[str] = EventBroker(rendered, bound=5)
    b.start()
    yield b
    b.stop()


def test_every_subscriber_gets_every_event_in_order(broker: EventBroker[str]) -> None:
    one, two = broker.subscribe(), broker.subscribe()
    for kind in (CREATED, STARTED, STOPPED, DELETED):
        broker.publish(LifecycleEvent(kind, "c1", "p1"))
    for sub in (one, two):
        assert [sub.get(timeout=2) for _ in range(4)] == [
            "c1:CREATED", "c1:STARTED", "c1:STOPPED", "c1:DELETED"]
        assert sub.get(timeout=0.1) is None


def test_a_slow_subscriber_is_cut_off_without_blocking(broker: EventBroker[str]) -> None:
    slow, quick = broker.subscribe(), broker.subscribe()
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.extend(quick.get(timeout=2) or ""
                                                        for _ in range(20)))
    reader.start()
    started = time.monotonic()
    for i in range(20):
        broker.publish(LifecycleEvent(STARTED, f"c{i}", "p"))
        time.sleep(0.005)
    assert time.monotonic() - started < 1  # publishing never waits for anyone
    reader.join(5)
    assert got == [f"c{i}:STARTED" for i in range(20)]
    assert [slow.get(timeout=1) for _ in range(5)] == [f"c{i}:STARTED" for i in range(5)]
    with pytest.raises(Overflowed):
        slow.get(timeout=1)
    assert slow not in broker.subscribers()


def test_nothing_is_rendered_without_subscribers() -> None:
    calls: list[LifecycleEvent] = []
    broker: EventBroker[str] = EventBroker(lambda e: calls.append(e) or "x")
    broker.start()
    broker.publish(LifecycleEvent(CREATED, "c", "p"))
    time.sleep(0.1)
    broker.stop()
    assert calls == []


def test_closing_ends_iteration(broker: EventBroker[str]) -> None:
    sub = broker.subscribe()
    threading.Timer(0.2, sub.close).start()
    started = time.monotonic()
    assert list(sub) == []
    assert time.monotonic() - started < 2


def test_exit_watcher_sees_a_process_end() -> None:
    seen: list[tuple[str, float]] = []
    done = threading.Event()
    watcher = ExitWatcher(lambda key: (seen.append((key, time.monotonic())), done.set()))
    watcher.start()
    try:
        proc = subprocess.Popen(["sleep", "0.3"])
        assert watcher.watch("task", proc.pid, pid_start_time(proc.pid))
        assert watcher.watching() == {"task"}
        started = time.monotonic()
        assert done.wait(5)
        assert seen[0][0] == "task" and seen[0][1] - started < 1
        assert watcher.watching() == set()
        proc.wait()
        # A pid that is gone, or whose start time is someone else's, is not watched.
        assert not watcher.watch("gone", proc.pid, pid_start_time(proc.pid))
        other = subprocess.Popen(["sleep", "5"])
        assert not watcher.watch("reused", other.pid, 12345)
        assert watcher.watch("other", other.pid, pid_start_time(other.pid))
        watcher.forget("other")
        other.kill()
        other.wait()
        time.sleep(0.1)
        assert [k for k, _ in seen] == ["task"]
    finally:
        watcher.stop()
