"""The shim with real containers: runc as the OCI runtime, and the in-tree executor once present.

Needs root. Every container is force-deleted and every shim killed at teardown, pass or fail.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest

from cri.logs import LogLine, parse_line
from cri.shim import (
    ExitStatus,
    ShimClient,
    ShimRequestError,
    ShimStartError,
    ShimStartTimeout,
    ShimUnavailable,
    read_exit_file,
    read_shim_pid,
    start_shim,
)
from cri.shim.forkserver import ForkServer
from cri.shim.loop import ENV_LOOP, compile_loop

RUNC = shutil.which("runc") or "/usr/sbin/runc"
BUSYBOX = "/bin/busybox"
REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="containers need root"),
    pytest.mark.skipif(not Path(BUSYBOX).exists(), reason="needs a static /bin/busybox"),
]


def _in_tree_available() -> bool:
    if importlib.util.find_spec("cri.oci") is None:
        return False
    import cri.oci

    return hasattr(cri.oci, "create")


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A busybox root filesystem: the static binary and a hard link per applet."""
    root = tmp_path_factory.mktemp("rootfs")
    for d in ("bin", "proc", "dev", "sys", "tmp", "etc"):
        (root / d).mkdir()
    shutil.copy2(BUSYBOX, root / "bin/busybox")
    applets = subprocess.run(
        [BUSYBOX, "--list"], capture_output=True, text=True, check=True
    ).stdout.split()
    for applet in applets:
        if applet != "busybox" and not (root / "bin" / applet).exists():
            os.link(root / "bin/busybox", root / "bin" / applet)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def spec_template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    if not Path(RUNC).exists():
        pytest.skip("runc is not installed")
    d = tmp_path_factory.mktemp("spec")
    subprocess.run([RUNC, "spec"], cwd=d, check=True)
    spec: dict[str, object] = json.loads((d / "config.json").read_text())
    return spec


class Oci:
    """One OCI runtime over one root: runc through its command line, the in-tree executor as the
    library the daemon calls (start, kill, delete and state do not fork)."""

    def __init__(self, name: str, root: Path) -> None:
        self.name = name
        self.root = root
        self.binary: str | None = RUNC if name == "runc" else None

    def _runc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        assert self.binary is not None
        return subprocess.run(
            [self.binary, "--root", str(self.root), *args],
            capture_output=True,
            text=True,
            check=check,
            timeout=30,
        )

    def start(self, container_id: str) -> None:
        if self.binary is not None:
            self._runc("start", container_id)
        else:
            import cri.oci

            cri.oci.start(self.root, container_id)

    def kill(self, container_id: str, sig: int) -> None:
        if self.binary is not None:
            self._runc("kill", container_id, str(sig))
        else:
            import cri.oci

            cri.oci.kill(self.root, container_id, sig)

    def delete(self, container_id: str) -> None:
        """Force-delete; a container the runtime does not know is fine."""
        if self.binary is not None:
            self._runc("delete", "--force", container_id, check=False)
            return
        import cri.oci

        with contextlib.suppress(cri.oci.ContainerNotFound):
            cri.oci.delete(self.root, container_id, force=True)

    def exists(self, container_id: str) -> bool:
        if self.binary is not None:
            return self._runc("state", container_id, check=False).returncode == 0
        import cri.oci

        try:
            cri.oci.state(self.root, container_id)
        except cri.oci.ContainerNotFound:
            return False
        return True


@dataclass
class Container:
    id: str
    bundle: Path
    state_dir: Path
    log_path: Path
    oci: Oci
    pid: int = 0
    extra: list[str] = field(default_factory=list)
    server: ForkServer | None = None

    def create(self, *, log: bool = True, stdin: bool = False, timeout: float = 30.0) -> Container:
        self.pid = start_shim(
            self.id,
            bundle=self.bundle,
            oci_root=self.oci.root,
            state_dir=self.state_dir,
            log_path=self.log_path if log else None,
            stdin=stdin,
            runtime=self.oci.binary,
            timeout=timeout,
            server=self.server,
        )
        return self

    def start(self) -> None:
        self.oci.start(self.id)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        self.oci.kill(self.id, int(sig))

    def wait_exit(self, timeout: float = 10.0) -> ExitStatus:
        status = wait_for(lambda: read_exit_file(self.state_dir), timeout)
        assert status is not None, f"no exit file after {timeout}s"
        return status

    def records(self, path: Path | None = None) -> list[LogLine]:
        data = (path or self.log_path).read_bytes()
        return [parse_line(line) for line in data.splitlines(keepends=True)]

    def output(self, stream: str, path: Path | None = None) -> bytes:
        return b"".join(
            r.content + (b"" if r.partial else b"\n")
            for r in self.records(path)
            if r.stream == stream
        )


def wait_for(fn: Callable[[], T], timeout: float) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(0.02)


@pytest.fixture(scope="session")
def compiled_loop() -> Path:
    # strict: a warning in loop.c fails the tests (not the installation)
    return compile_loop(strict=True)


@pytest.fixture(scope="session")
def fork_server(compiled_loop: Path) -> Iterator[ForkServer]:
    server = ForkServer()
    server.start()
    wait_for(lambda: server.running, 30.0)
    yield server
    server.close()


@dataclass(frozen=True)
class ShimMode:
    loop: str  # "compiled-loop" or "python-loop"
    server: ForkServer | None  # None: started cold


# NOTE: the fork server's shims see its environment, not a test's, so the Python loop (chosen by
# CRI_SHIM_LOOP) is tried on cold shims only.
@pytest.fixture(autouse=True, params=["forked/compiled-loop", "cold/compiled-loop",
                                      "cold/python-loop"])
def shim_mode(request: pytest.FixtureRequest, fork_server: ForkServer,
              monkeypatch: pytest.MonkeyPatch) -> ShimMode:
    """Every test runs on both loops: cri-shim-loop (what installs use) and the Python one it
    is checked against; and on shims forked from the fork server (what the daemon does) and
    started as new processes (its fallback)."""
    start, loop = str(request.param).split("/")
    if loop == "python-loop":
        monkeypatch.setenv(ENV_LOOP, "python")
    else:
        monkeypatch.delenv(ENV_LOOP, raising=False)
    return ShimMode(loop, fork_server if start == "forked" else None)


@pytest.fixture(
    params=[
        "runc",
        pytest.param(
            "in-tree",
            marks=pytest.mark.skipif(
                not _in_tree_available(), reason="the in-tree executor (cri.oci) is not there yet"
            ),
        ),
    ]
)
def oci(request: pytest.FixtureRequest, tmp_path: Path) -> Oci:
    root = tmp_path / "oci-root"
    root.mkdir()
    return Oci(request.param, root)


@pytest.fixture
def make_container(
    oci: Oci, rootfs: Path, spec_template: dict[str, object], tmp_path: Path,
    shim_mode: ShimMode,
) -> Iterator[Callable[..., Container]]:
    made: list[Container] = []

    def make(
        script: str, *, root_path: Path | None = None, deep: bool = False, host_pid: bool = False
    ) -> Container:
        cid = f"shimtest-{uuid.uuid4().hex[:12]}"
        base = tmp_path / cid
        bundle = base / "bundle"
        # deep: a state dir whose socket path does not fit in sun_path (108 bytes).
        state_dir = base / ("d" * 100 if deep else "") / "state"
        logs = base / "logs"
        for d in (bundle, state_dir, logs):
            d.mkdir(parents=True)
        spec = json.loads(json.dumps(spec_template))
        spec["root"] = {"path": str(root_path or rootfs), "readonly": True}
        spec["process"]["terminal"] = False
        spec["process"]["args"] = ["sh", "-c", script]
        if host_pid:
            namespaces = spec["linux"]["namespaces"]
            spec["linux"]["namespaces"] = [ns for ns in namespaces if ns["type"] != "pid"]
        (bundle / "config.json").write_text(json.dumps(spec))
        container = Container(cid, bundle, state_dir, logs / "0.log", oci,
                              server=shim_mode.server)
        made.append(container)
        return container

    yield make

    stuck = []
    for c in made:
        shim_pid = read_shim_pid(c.state_dir)
        c.oci.delete(c.id)
        # The shim exits by itself once its container is gone; give it its drain grace.
        if shim_pid is not None and not _wait_shim_gone(shim_pid, c.id, 5.0):
            os.kill(shim_pid, signal.SIGKILL)
            stuck.append(c.id)
        # Shown by pytest only if the test failed.
        shim_log = c.state_dir / "shim.log"
        if shim_log.exists():
            print(f"--- {shim_log}\n{shim_log.read_text(errors='replace')}")
        shutil.rmtree(tmp_path / c.id, ignore_errors=True)
    assert not stuck, f"shims still running 5 s after their container was deleted: {stuck}"


def _wait_shim_gone(pid: int, container_id: str, timeout: float) -> bool:
    return wait_for(lambda: not _is_shim(pid, container_id), timeout)


def _is_shim(pid: int, container_id: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return container_id.encode() in cmdline and state != "Z"


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def _processes_working_in(path: Path) -> list[int]:
    """A forked shim has the fork server's command line, but works in its state dir."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "cwd") == str(path):
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def _cgroups_named(name: str) -> list[Path]:
    return [p for p in Path("/sys/fs/cgroup").glob(f"**/*{name}*") if p.is_dir()]


# --- tests --------------------------------------------------------------------------------------


def test_output_lands_in_the_cri_log(make_container: Callable[..., Container]) -> None:
    c = make_container("echo out1; echo err1 >&2; echo out2; printf 'no newline'").create()
    assert c.pid > 0
    assert ShimClient(c.state_dir).ping() == c.pid
    c.start()
    status = c.wait_exit()
    assert (status.exit_code, status.signal, status.oom_killed) == (0, None, False)
    assert abs(status.finished_at - time.time_ns()) < 60 * 10**9
    assert c.output("stdout") == b"out1\nout2\nno newline\n"  # the tail is flushed as F at EOF
    assert c.output("stderr") == b"err1\n"
    assert all(not r.partial for r in c.records())
    assert (c.log_path.stat().st_mode & 0o777) == 0o640
    # The shim has gone, and took its socket with it.
    assert wait_for(lambda: not (c.state_dir / "shim.sock").exists(), 5.0)
    with pytest.raises(ShimUnavailable):
        ShimClient(c.state_dir).ping()


def test_the_shim_runs_the_loop_it_was_given(
    make_container: Callable[..., Container], shim_mode: ShimMode, compiled_loop: Path
) -> None:
    c = make_container("sleep 30").create()
    shim_pid = read_shim_pid(c.state_dir)
    assert shim_pid is not None
    c.start()
    expected = (str(compiled_loop) if shim_mode.loop == "compiled-loop"
                else os.path.realpath(sys.executable))
    # the exec follows the sync report, so it may still be under way
    assert wait_for(lambda: os.readlink(f"/proc/{shim_pid}/exe") == expected, 5.0)
    assert ShimClient(c.state_dir).ping() == c.pid  # the same shim, still serving
    c.kill()
    assert c.wait_exit().exit_code == 137


def test_long_lines_are_split(make_container: Callable[..., Container]) -> None:
    c = make_container("head -c 40000 /dev/zero | tr '\\0' x; echo; echo short").create()
    c.start()
    assert c.wait_exit().exit_code == 0
    records = [(r.partial, len(r.content)) for r in c.records() if r.stream == "stdout"]
    assert records == [(True, 16384), (True, 16384), (False, 40000 - 2 * 16384), (False, 5)]


def test_nonzero_exit_code(make_container: Callable[..., Container]) -> None:
    c = make_container("exit 3").create()
    c.start()
    status = c.wait_exit()
    assert (status.exit_code, status.signal) == (3, None)
    exit_file = json.loads((c.state_dir / "exit").read_text())
    assert exit_file == {
        "exit_code": 3,
        "finished_at": status.finished_at,
        "signal": None,
        "oom_killed": False,
    }


def test_sigkill_gives_137(make_container: Callable[..., Container]) -> None:
    c = make_container("echo started; exec sleep 1000").create()
    c.start()
    assert wait_for(lambda: c.log_path.read_bytes(), 5.0)
    # Shows that the "no cgroup left" checks look in the right place.
    assert _cgroups_named(c.id)
    c.kill(signal.SIGKILL)
    status = c.wait_exit()
    assert (status.exit_code, status.signal) == (137, signal.SIGKILL)


def test_container_killed_before_start_is_reported(
    make_container: Callable[..., Container],
) -> None:
    c = make_container("echo never").create()
    c.oci.delete(c.id)
    status = c.wait_exit()
    assert status.exit_code == 137
    assert c.log_path.read_bytes() == b""


def test_exit_is_reported_when_an_escaped_process_holds_the_output(
    make_container: Callable[..., Container],
) -> None:
    # Without a pid namespace the background sleep survives its parent, holding stdout open.
    c = make_container("sleep 30 & echo parent-done; exit 5", host_pid=True).create()
    c.start()
    started = time.monotonic()
    status = c.wait_exit(timeout=10.0)
    assert status.exit_code == 5
    # The ~2 s grace, not the 30 s sleep (with slack for a loaded test host).
    assert time.monotonic() - started < 10.0
    assert c.output("stdout") == b"parent-done\n"


def test_reopen_log_after_rotation(make_container: Callable[..., Container]) -> None:
    c = make_container("i=0; while true; do echo line$i; i=$((i+1)); sleep 0.05; done").create()
    c.start()
    assert wait_for(lambda: c.log_path.read_bytes().count(b"\n") >= 2, 5.0)
    rotated = c.log_path.with_name("0.log.20240501-120000")
    c.log_path.rename(rotated)
    ShimClient(c.state_dir).reopen_log()
    assert c.log_path.exists()
    assert (c.log_path.stat().st_mode & 0o777) == 0o640
    assert wait_for(lambda: c.log_path.read_bytes().count(b"\n") >= 2, 5.0)
    c.kill()
    c.wait_exit()
    old = [int(r.content[4:]) for r in c.records(rotated)]
    new = [int(r.content[4:]) for r in c.records()]
    # Nothing lost, nothing twice, and the new file continues where the old one stopped.
    assert old + new == list(range(len(old) + len(new)))


def test_control_socket_in_a_deep_state_dir(make_container: Callable[..., Container]) -> None:
    c = make_container("sleep 1000", deep=True).create()
    assert len(str(c.state_dir / "shim.sock")) > 108
    assert ShimClient(c.state_dir).ping() == c.pid
    ShimClient(c.state_dir).reopen_log()


def test_reopen_log_without_log_path_is_an_error(
    make_container: Callable[..., Container],
) -> None:
    c = make_container("sleep 1000").create(log=False)
    with pytest.raises(ShimRequestError, match="no log path"):
        ShimClient(c.state_dir).reopen_log()


def test_output_is_drained_without_log_path(make_container: Callable[..., Container]) -> None:
    # 4 MiB is far more than a pipe holds: the container would block if nobody read it.
    c = make_container("head -c 4194304 /dev/zero; echo done >&2").create(log=False)
    c.start()
    assert c.wait_exit().exit_code == 0
    assert not c.log_path.exists()


def test_stdin_is_kept_open_only_when_asked(make_container: Callable[..., Container]) -> None:
    without = make_container("cat; echo eof").create()
    with_stdin = make_container("cat; echo eof").create(stdin=True)
    without.start()
    with_stdin.start()
    assert without.wait_exit().exit_code == 0
    assert without.output("stdout") == b"eof\n"
    time.sleep(0.3)
    assert read_exit_file(with_stdin.state_dir) is None  # cat still waits for input
    with_stdin.kill()
    assert with_stdin.wait_exit().exit_code == 137


def test_shim_outlives_the_process_that_started_it(
    make_container: Callable[..., Container],
) -> None:
    c = make_container("echo from-detached-shim")
    # A throwaway "daemon" starts the shim and exits at once.
    starter = textwrap.dedent(
        f"""
        from pathlib import Path
        from cri.shim import start_shim
        print(start_shim({c.id!r}, bundle=Path({str(c.bundle)!r}),
                         oci_root=Path({str(c.oci.root)!r}), state_dir=Path({str(c.state_dir)!r}),
                         log_path=Path({str(c.log_path)!r}), runtime={c.oci.binary!r}))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", starter],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    pid = int(out.stdout)
    shim_pid = read_shim_pid(c.state_dir)
    assert shim_pid is not None and _is_shim(shim_pid, c.id)
    stat = Path(f"/proc/{shim_pid}/stat").read_text().rsplit(")", 1)[1].split()
    ppid, pgid, sid = int(stat[1]), int(stat[2]), int(stat[3])
    assert sid == shim_pid and pgid == shim_pid  # its own session
    assert ppid != os.getpid()
    assert ShimClient(c.state_dir).ping() == pid
    c.start()
    assert c.wait_exit().exit_code == 0
    assert c.output("stdout") == b"from-detached-shim\n"


def test_start_shim_leaves_no_zombie(make_container: Callable[..., Container]) -> None:
    c = make_container("true").create()
    # The started process exited right after forking the shim, and start_shim reaped it.
    children = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()
    zombies = [
        p
        for p in children
        if Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    ]
    assert zombies == []
    c.start()
    c.wait_exit()


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        ("missing-rootfs", "rootfs"),
        # Fails inside the init, after namespaces and cgroups exist: those must be undone too.
        ("missing-executable", "no-such-program"),
    ],
)
def test_create_failure_reports_and_leaves_nothing(
    make_container: Callable[..., Container], tmp_path: Path, failure: str, message: str
) -> None:
    if failure == "missing-rootfs":
        c = make_container("echo unreachable", root_path=tmp_path / "no-such-rootfs")
    else:
        c = make_container("unused")
        spec = json.loads((c.bundle / "config.json").read_text())
        spec["process"]["args"] = ["/no-such-program"]
        (c.bundle / "config.json").write_text(json.dumps(spec))
    with pytest.raises(ShimStartError, match=message) as err:
        c.create()
    assert not isinstance(err.value, ShimStartTimeout)
    # The shim exits right after reporting; give it a moment to be gone from /proc.
    assert wait_for(lambda: not _processes_mentioning(c.id)
                    and not _processes_working_in(c.state_dir), 5.0)
    assert not c.oci.exists(c.id)
    assert _cgroups_named(c.id) == []
    assert sorted(p.name for p in c.state_dir.iterdir()) == ["shim.log"]
    assert not c.log_path.exists()


def test_existing_container_id_is_refused_and_left_alone(
    make_container: Callable[..., Container],
) -> None:
    first = make_container("sleep 1000").create()
    second = make_container("true")
    second.id = first.id
    with pytest.raises(ShimStartError, match="already exists"):
        second.create()
    assert first.oci.exists(first.id)
    assert ShimClient(first.state_dir).ping() == first.pid


def test_bad_sync_timeout_kills_the_shim(tmp_path: Path, shim_mode: ShimMode) -> None:
    # A "runtime" that never finishes creating.
    runtime = tmp_path / "hang"
    runtime.write_text("#!/bin/sh\nexec sleep 1000\n")
    runtime.chmod(0o755)
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    cid = f"shimtest-{uuid.uuid4().hex[:12]}"
    started = time.monotonic()
    with pytest.raises(ShimStartTimeout):
        start_shim(
            cid,
            bundle=tmp_path,
            oci_root=tmp_path,
            state_dir=state_dir,
            runtime=str(runtime),
            timeout=1.0,
            server=shim_mode.server,
        )
    assert time.monotonic() - started < 10
    # The shim and the runtime it ran were killed together (one process group).
    assert wait_for(lambda: not _processes_mentioning(cid)
                    and not _processes_working_in(state_dir), 5.0)


def test_shim_argument_errors_are_reported(tmp_path: Path) -> None:
    with pytest.raises(ShimStartError, match="No such file|cannot daemonize"):
        start_shim(
            "x",
            bundle=tmp_path,
            oci_root=tmp_path,
            state_dir=tmp_path / "missing",
            runtime=RUNC,
        )


# --- the fork server ----------------------------------------------------------------------------


def test_a_dead_fork_server_is_replaced_and_shims_start_cold_meanwhile(
    make_container: Callable[..., Container], shim_mode: ShimMode,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = ForkServer()
    server.start()
    assert wait_for(lambda: server.running, 30.0)
    try:
        first_pid = server.pid
        assert first_pid is not None
        c = make_container("sleep 30")
        c.server = server
        c.create()
        assert ShimClient(c.state_dir).ping() == c.pid
        os.kill(first_pid, signal.SIGKILL)
        wait_for(lambda: not _is_alive(first_pid), 5.0)
        # The order finds the server gone: this shim starts cold, and a new server comes up.
        d = make_container("sleep 30")
        d.server = server
        with caplog.at_level(logging.WARNING, logger="cri.shim.forkserver"):
            d.create()
        assert "fork server is gone" in caplog.text
        assert ShimClient(d.state_dir).ping() == d.pid
        assert wait_for(lambda: server.running and server.pid not in (None, first_pid), 30.0)
        e = make_container("sleep 30")
        e.server = server
        e.create()
        assert ShimClient(e.state_dir).ping() == e.pid
        for x in (c, d, e):
            x.kill()
            assert x.wait_exit().exit_code == 137
    finally:
        server.close()


def test_the_fork_server_exits_when_its_daemon_lets_go(shim_mode: ShimMode) -> None:
    server = ForkServer()
    server.start()
    assert wait_for(lambda: server.running, 30.0)
    pid = server.pid
    assert pid is not None and _is_alive(pid)
    server.close()
    assert not _is_alive(pid)  # close() reaps it
    assert not server.running


def test_the_fork_server_survives_a_bad_order(shim_mode: ShimMode) -> None:
    server = ForkServer()
    server.start()
    assert wait_for(lambda: server.running, 30.0)
    try:
        sync_r, sync_w = os.pipe()
        assert server._sock is not None
        socket.send_fds(server._sock, [b"not json"], [sync_w])
        os.close(sync_w)
        assert os.read(sync_r, 100) == b""  # EOF: no shim, no sync line
        os.close(sync_r)
        assert server.pid is not None and _is_alive(server.pid)
    finally:
        server.close()


def _is_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_the_fork_server_runs_the_executors_command_line(
    fork_server: ForkServer, shim_mode: ShimMode, tmp_path: Path
) -> None:
    """What ExecSync uses: `cri-oci ARGS` forked, its stdio ours, its exit code reported."""
    def run(args: list[str]) -> tuple[int, bytes, bytes]:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        null = os.open(os.devnull, os.O_RDONLY)
        proc = fork_server.run_oci(args, null, out_w, err_w)
        for fd in (null, out_w, err_w):
            os.close(fd)
        with os.fdopen(out_r, "rb") as out, os.fdopen(err_r, "rb") as err:
            stdout, stderr = out.read(), err.read()
        return proc.wait(10), stdout, stderr

    code, stdout, _ = run(["--version"])
    assert (code, stdout.split(b"\n")[0]) == (0, b"cri-oci version 0.1.0")
    code, _, stderr = run(["--root", str(tmp_path), "state", "no-such-container"])
    assert code != 0 and b"no-such-container" in stderr


def test_a_forked_command_line_that_is_killed_reads_as_killed(
    fork_server: ForkServer, shim_mode: ShimMode, tmp_path: Path
) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    null = os.open(os.devnull, os.O_RDWR)
    # `exec` of a process file that never comes: the command line blocks opening the fifo
    proc = fork_server.run_oci(["--root", str(tmp_path), "exec", "--process", str(fifo), "x"],
                               null, null, null)
    os.close(null)
    assert proc.poll() is None
    with pytest.raises(subprocess.TimeoutExpired):
        proc.wait(0.1)
    proc.kill()
    assert proc.wait(5) == -signal.SIGKILL
    # gone, and reaped by the server (its subreaper), not left a zombie for the node's init
    assert wait_for(lambda: not Path(f"/proc/{proc.pid}").exists(), 5.0)
