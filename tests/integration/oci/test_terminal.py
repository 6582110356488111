"""process.terminal through --console-socket, under our executor and runc (the oracle)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    RUNC,
    console_listener,
    needs_root,
    read_pty,
    receive_pty,
    runc,
    set_cgroups_path,
)

from cri import oci
from cri.oci.console import NO_SOCKET, NO_TTY

pytestmark = needs_root
REPO = Path(__file__).resolve().parents[3]

PROBE = (
    "tty; stty size; stat -c '%t:%T %a %u %g' /dev/console; "
    "read -r _ _ _ _ pgrp sid tty _ < /proc/$$/stat; "
    "[ $pgrp = $$ ] && [ $sid = $$ ] && echo session leader, tty $tty; "
    "readlink /proc/self/fd/0; readlink /proc/self/fd/2"
)


def _terminal(spec: dict[str, Any]) -> None:
    spec["process"]["terminal"] = True
    spec["process"]["consoleSize"] = {"height": 33, "width": 101}


def _ours(root: Path, cid: str, bundle: Path, tmp_path: Path) -> tuple[str, str]:
    with console_listener(tmp_path) as (path, listener):
        pid = oci.create(root, cid, bundle, console_socket=path)
        try:
            master, payload = receive_pty(listener)
            try:
                oci.start(root, cid)
                out = read_pty(master)
            finally:
                os.close(master)
            os.waitpid(pid, 0)
        finally:
            with contextlib.suppress(oci.ContainerNotFound):
                oci.delete(root, cid, force=True)
    return payload, out


def _runc(root: Path, cid: str, bundle: Path, tmp_path: Path) -> tuple[str, str]:
    with console_listener(tmp_path) as (path, listener):
        try:
            runc(
                root,
                "create",
                "--bundle",
                str(bundle),
                "--console-socket",
                str(path),
                cid,
                stdin=subprocess.DEVNULL,
            )
            master, payload = receive_pty(listener)
            try:
                runc(root, "start", cid)
                out = read_pty(master)
            finally:
                os.close(master)
        finally:
            runc(root, "delete", "--force", cid, check=False)
    return payload, out


def test_terminal_matches_runc(make_bundle: Callable[..., Path], tmp_path: Path, cid: str) -> None:
    def edit(spec: dict[str, Any]) -> None:
        set_cgroups_path(spec, cid)
        _terminal(spec)

    ours = _ours(tmp_path / "ours", cid, make_bundle(["sh", "-c", PROBE], edit), tmp_path)
    theirs = _runc(tmp_path / "runc", cid, make_bundle(["sh", "-c", PROBE], edit), tmp_path)
    assert ours == theirs
    payload, out = ours
    assert payload == "/dev/ptmx"
    lines = out.splitlines()
    assert lines[0] == "/dev/pts/0"
    assert lines[1] == "33 101"
    assert lines[2] == "88:0 620 0 5"  # /dev/console is the slave (136 = 0x88)
    assert lines[3] == f"session leader, tty {136 << 8}"  # controlling tty pts/0
    assert lines[4:] == ["/dev/pts/0", "/dev/pts/0"]


def test_console_socket_rules_match_runc(
    make_bundle: Callable[..., Path], tmp_path: Path, cid: str
) -> None:
    tty_bundle = make_bundle(["tty"], _terminal)
    with pytest.raises(oci.OciError, match=NO_SOCKET):
        oci.create(tmp_path / "ours", cid, tty_bundle)
    p = runc(tmp_path / "runc", "create", "--bundle", str(tty_bundle), cid, check=False)
    assert p.returncode != 0 and NO_SOCKET in p.stderr

    plain = make_bundle(["true"])
    with console_listener(tmp_path) as (path, _):
        with pytest.raises(oci.OciError, match=NO_TTY):
            oci.create(tmp_path / "ours", cid, plain, console_socket=path)
        p = runc(
            tmp_path / "runc",
            "create",
            "--bundle",
            str(plain),
            "--console-socket",
            str(path),
            cid,
            check=False,
        )
    assert p.returncode != 0 and NO_TTY in p.stderr
    assert not (tmp_path / "ours" / cid).exists()


def test_exec_tty_matches_runc(make_bundle: Callable[..., Path], tmp_path: Path, cid: str) -> None:
    def edit(spec: dict[str, Any]) -> None:
        set_cgroups_path(spec, cid)

    probe = {
        "args": ["sh", "-c", PROBE],
        "cwd": "/",
        "env": ["PATH=/bin"],
        "terminal": True,
        "consoleSize": {"height": 20, "width": 70},
    }
    ours_root, runc_root = tmp_path / "ours", tmp_path / "runc"
    pid = oci.create(ours_root, cid, make_bundle(["sleep", "100"], edit))
    try:
        oci.start(ours_root, cid)
        with console_listener(tmp_path) as (path, listener):
            exec_pid = oci.exec_process(
                ours_root,
                cid,
                probe,
                stdin=None,
                stdout=None,
                stderr=None,
                detach=True,
                console_socket=path,
            )
            master, payload = receive_pty(listener)
        try:
            ours = read_pty(master)
        finally:
            os.close(master)
        assert os.waitpid(exec_pid, 0)[1] == 0
    finally:
        oci.delete(ours_root, cid, force=True)
        os.waitpid(pid, 0)

    process_file = tmp_path / "process.json"
    import json

    process_file.write_text(json.dumps(probe))
    # the container inherits runc's stdio: no pipes, or run -d would wait for their EOF
    subprocess.run(
        [
            RUNC,
            "--root",
            str(runc_root),
            "run",
            "-d",
            "--bundle",
            str(make_bundle(["sleep", "100"], edit)),
            cid,
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
        timeout=60,
    )
    try:
        with console_listener(tmp_path) as (path, listener):
            runc(
                runc_root,
                "exec",
                "-d",
                "--console-socket",
                str(path),
                "--process",
                str(process_file),
                cid,
            )
            master, runc_payload = receive_pty(listener)
        try:
            theirs = read_pty(master)
        finally:
            os.close(master)
    finally:
        runc(runc_root, "delete", "--force", cid, check=False)
    assert (payload, ours) == (runc_payload, theirs)
    lines = ours.splitlines()
    assert lines[0] == "/dev/pts/0" and lines[1] == "20 70"
    assert lines[2].startswith("stat:")  # no /dev/console for an exec'd process (or the init)
    assert lines[3] == f"session leader, tty {136 << 8}"


def _cli(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cri.oci", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        timeout=60,
        **kw,
    )


def test_cli_console_socket_and_exec_tty(
    make_bundle: Callable[..., Path], tmp_path: Path, cid: str
) -> None:
    def edit(spec: dict[str, Any]) -> None:
        set_cgroups_path(spec, cid)
        _terminal(spec)
        spec["process"]["args"] = ["sh", "-c", "tty; read line; echo got $line; sleep 100"]

    root = tmp_path / "ours"
    bundle = make_bundle([], edit)
    try:
        with console_listener(tmp_path) as (path, listener):
            p = _cli(
                "--root",
                str(root),
                "create",
                "--bundle",
                str(bundle),
                "--console-socket",
                str(path),
                cid,
                stdin=subprocess.DEVNULL,
            )
            assert p.returncode == 0, p.stderr
            master, _ = receive_pty(listener)
        try:
            assert _cli("--root", str(root), "start", cid).returncode == 0
            os.write(master, b"hello\n")
            import select

            out = b""
            while b"got hello" not in out:
                assert select.select([master], [], [], 10)[0]
                out += os.read(master, 4096)
            assert b"/dev/pts/0" in out
            # a foreground exec -t without a console socket: the CLI proxies the pty itself
            p = _cli(
                "--root",
                str(root),
                "exec",
                "-t",
                cid,
                "sh",
                "-c",
                "tty; exit 3",
                stdin=subprocess.DEVNULL,
            )
            assert p.returncode == 3, p.stderr
            assert p.stdout.replace("\r\n", "\n") == "/dev/pts/1\n"
        finally:
            os.close(master)
    finally:
        _cli("--root", str(root), "delete", "--force", cid)


def _on_a_terminal(argv: list[str], typed: bytes, env: dict[str, str]) -> tuple[int, str]:
    """Run argv with a new pty as its stdio and controlling terminal (runc's `exec -t` without
    -d wants one: it opens /dev/tty), type `typed`, collect everything until it exits."""
    import select

    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(
            ["setsid", "-c", *argv], stdin=slave, stdout=slave, stderr=slave, env=env
        )
    finally:
        os.close(slave)
    out = b""
    try:
        os.write(master, typed)
        while True:
            ready, _, _ = select.select([master], [], [], 30)
            assert ready, out
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the runtime and everything on the pty exited
                break
            if not data:
                break
            out += data
    finally:
        os.close(master)
    return proc.wait(timeout=30), out.decode(errors="replace").replace("\r\n", "\n")


def test_foreground_exec_tty_matches_runc(
    make_bundle: Callable[..., Path], tmp_path: Path, cid: str
) -> None:
    """`exec -t` without --console-socket and without -d: the runtime copies the pty itself."""
    script = "tty; stty size; read line; echo in=$line; exit 5"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    results = {}
    for who in ("ours", "runc"):
        root = tmp_path / who
        bundle = make_bundle(["sleep", "100"], lambda s: set_cgroups_path(s, cid))
        if who == "ours":
            argv = [sys.executable, "-m", "cri.oci", "--root", str(root)]
            create = [*argv, "create", "--bundle", str(bundle), cid]
        else:
            argv = [RUNC, "--root", str(root)]
            create = [*argv, "run", "-d", "--bundle", str(bundle), cid]
        quiet = subprocess.DEVNULL
        subprocess.run(create, stdin=quiet, stdout=quiet, stderr=quiet, env=env, check=True)
        try:
            if who == "ours":
                subprocess.run([*argv, "start", cid], check=True, env=env, timeout=60)
            results[who] = _on_a_terminal(
                [*argv, "exec", "-t", cid, "sh", "-c", script], b"typed\n", env
            )
        finally:
            subprocess.run([*argv, "delete", "--force", cid], env=env, timeout=60)
    # the same lines; when the typed line is echoed by the container's pty depends on timing
    (code, out), (runc_code, runc_out) = results["ours"], results["runc"]
    assert (code, sorted(out.splitlines())) == (runc_code, sorted(runc_out.splitlines()))
    assert code == 5
    assert "/dev/pts/0\n" in out and "in=typed\n" in out
