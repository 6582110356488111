"""Real containers from a busybox rootfs, run under our executor and under runc (the oracle)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

BUSYBOX = "/bin/busybox"
RUNC = shutil.which("runc") or "/usr/sbin/runc"
APPLETS = [
    "sh",
    "echo",
    "cat",
    "ls",
    "id",
    "hostname",
    "sleep",
    "mount",
    "true",
    "false",
    "grep",
    "pwd",
    "env",
    "readlink",
    "kill",
    "ps",
    "cut",
    "sort",
    "wc",
    "ulimit",
    "tty",
    "stty",
    "ionice",
    "uname",
    "nproc",
    "touch",
    "sed",
]

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists(BUSYBOX), reason="needs root and /bin/busybox"
)


def build_rootfs(path: Path) -> None:
    (path / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, path / "bin" / "busybox")
    for applet in APPLETS:
        os.link(path / "bin" / "busybox", path / "bin" / applet)
    for d in ("proc", "sys", "dev", "etc", "tmp", "home/user"):
        (path / d).mkdir(parents=True, exist_ok=True)
    (path / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n"
    )
    (path / "etc" / "group").write_text("root:x:0:\nuser:x:1000:\n")


@pytest.fixture(scope="session")
def base_spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("spec")
    subprocess.run([RUNC, "spec"], cwd=d, check=True)
    spec: dict[str, Any] = json.loads((d / "config.json").read_text())
    spec["process"]["terminal"] = False
    return spec


@pytest.fixture
def make_bundle(tmp_path: Path, base_spec: dict[str, Any]) -> Callable[..., Path]:
    """make_bundle(args, edit=fn(spec)) -> bundle dir with a fresh busybox rootfs."""
    counter = [0]

    def make(args: list[str], edit: Callable[[dict[str, Any]], None] | None = None) -> Path:
        counter[0] += 1
        bundle = tmp_path / f"bundle{counter[0]}"
        build_rootfs(bundle / "rootfs")
        spec = json.loads(json.dumps(base_spec))
        spec["process"]["args"] = args
        if edit is not None:
            edit(spec)
        (bundle / "config.json").write_text(json.dumps(spec, indent=1))
        return bundle

    return make


@pytest.fixture
def oci_root(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def cid() -> Iterator[str]:
    yield "t-" + uuid.uuid4().hex[:12]


def runc(root: Path, *args: str, check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(
        [RUNC, "--root", str(root), *args], capture_output=True, text=True, timeout=60, **kw
    )
    if check:
        assert p.returncode == 0, (args, p.stdout, p.stderr)
    return p


def runc_create(
    root: Path, cid: str, bundle: Path, *extra: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`runc create` with its stdio (inherited by the container) on a file, not a pipe: a pipe
    would keep subprocess waiting for the container to exit. stdout and stderr: that file."""
    out = bundle / f"{cid}.runc.out"
    with open(out, "w") as f:
        p = subprocess.run(
            [RUNC, "--root", str(root), "create", "--bundle", str(bundle), *extra, cid],
            stdin=subprocess.DEVNULL,
            stdout=f,
            stderr=f,
            timeout=60,
        )
    text = out.read_text()
    if check:
        assert p.returncode == 0, text
    return subprocess.CompletedProcess(p.args, p.returncode, text, text)


@contextlib.contextmanager
def console_listener(directory: Path) -> Iterator[tuple[Path, socket.socket]]:
    """A listening console socket, as containerd's: (path, listener). No thread: create()'s
    connect completes on the backlog and the master waits in the socket until accept()."""
    path = directory / f"console-{uuid.uuid4().hex[:8]}.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(path))
        listener.listen(4)
        listener.settimeout(20)
        yield path, listener
    finally:
        listener.close()
        path.unlink(missing_ok=True)


def receive_pty(listener: socket.socket) -> tuple[int, str]:
    """(master fd, payload) of the next console message."""
    from cri.oci.console import receive_master

    conn, _ = listener.accept()
    with conn:
        return receive_master(conn)


def read_pty(master: int, timeout: float = 20.0) -> str:
    """Everything written to the pty until every slave is closed (EIO), \r\n -> \n."""
    import select
    import time

    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.1)
        if not ready:
            continue
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        out += data
    return out.decode(errors="replace").replace("\r\n", "\n")


def ours_cli() -> list[str]:
    """Our executor's command line as installed: the compiled front end (cri/oci/front/), which
    does plain start, kill and delete itself and hands the rest to the Python CLI. Built by
    `pip install`; built here, with this interpreter, where it is missing."""
    from cri.oci.front import installed_binary

    return [str(installed_binary())]


def exec_output(root: Path, cid: str, process: dict[str, Any], **kw: Any) -> tuple[int, str]:
    """oci.exec_process with stdout and stderr on one pipe: (exit code, what it wrote)."""
    from cri import oci

    r, w = os.pipe()
    try:
        code = oci.exec_process(root, cid, process, stdin=None, stdout=w, stderr=w, **kw)
    finally:
        os.close(w)
    with os.fdopen(r) as f:
        return code, f.read()


def set_cgroups_path(spec: dict[str, Any], cid: str) -> None:
    spec["linux"]["cgroupsPath"] = f"/cri-test-oci/{cid}"


def run_ours(
    root: Path, cid: str, bundle: Path, *, kill_with: int | None = None
) -> tuple[int, str, str]:
    """create + start + wait; returns (exit code, stdout, stderr); always deletes."""
    import signal

    from cri import oci
    from cri.oci.exec import exit_code

    out = os.open(bundle / f"{cid}.out", os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC)
    err = os.open(bundle / f"{cid}.err", os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC)
    try:
        pid = oci.create(root, cid, bundle, stdout=out, stderr=err)
        oci.start(root, cid)
        if kill_with is not None:
            import time

            time.sleep(0.3)
            oci.kill(root, cid, kill_with)
        _, status = os.waitpid(pid, 0)
        code = exit_code(status)
        assert oci.state(root, cid).status is oci.Status.STOPPED
    finally:
        os.close(out)
        os.close(err)
        with contextlib.suppress(oci.ContainerNotFound):
            oci.delete(root, cid, force=True)
        del signal
    return code, (bundle / f"{cid}.out").read_text(), (bundle / f"{cid}.err").read_text()


def run_runc(
    root: Path, cid: str, bundle: Path, *, kill_with: str | None = None
) -> tuple[int, str, str]:
    try:
        if kill_with is None:
            p = subprocess.run(
                [RUNC, "--root", str(root), "run", "--bundle", str(bundle), cid],
                capture_output=True,
                text=True,
                timeout=60,
            )
            return p.returncode, p.stdout, p.stderr
        proc = subprocess.Popen(
            [RUNC, "--root", str(root), "run", "--bundle", str(bundle), cid],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        import time

        for _ in range(100):
            st = subprocess.run(
                [RUNC, "--root", str(root), "state", cid], capture_output=True, text=True
            )
            if st.returncode == 0 and json.loads(st.stdout)["status"] == "running":
                break
            time.sleep(0.05)
        time.sleep(0.3)
        subprocess.run([RUNC, "--root", str(root), "kill", cid, kill_with], check=True)
        out, err = proc.communicate(timeout=30)
        return proc.returncode, out, err
    finally:
        subprocess.run([RUNC, "--root", str(root), "delete", "--force", cid], capture_output=True)
