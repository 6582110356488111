"""The compiled front end's exec (cri/oci/front/exec.c) against the Python CLI's: the process it
starts sees the same identity, limits, privileges, namespaces, cgroups, environment and filter,
and ends with the same status; every case it does not do plainly is handed to Python."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import needs_root
from test_front import (  # noqa: F401 - fixtures
    NO_PATH,
    _front,
    _python,
    _run,
    created,
    no_python_front,
)

from cri import oci

pytestmark = needs_root

# What the exec'd process observes of itself, pids aside (they differ from one exec to the
# next): the session it leads is checked apart.
PROBE = (
    "grep -E '^(Uid|Gid|Groups|Cap...|NoNewPrivs|Seccomp|Seccomp_filters)' /proc/self/status; "
    "pwd; env | sort; umask; ulimit -n; ulimit -Hn; cat /proc/self/oom_score_adj; "
    "for n in cgroup ipc mnt net pid uts; do readlink /proc/self/ns/$n; done; "
    "cat /proc/self/cgroup; echo to-stderr >&2; "
    "read -r stat < /proc/self/stat; set -- $stat; [ \"$1\" = \"$6\" ] && echo session-leader"
)

DENY_TOUCH = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [{"names": ["utimensat", "openat"], "action": "SCMP_ACT_ERRNO",
                  "args": [{"index": 2, "value": 0o100, "valueTwo": 0o100,
                            "op": "SCMP_CMP_MASKED_EQ"}]}],
}


def _process(spec_process: dict[str, Any], **changes: Any) -> dict[str, Any]:
    process = json.loads(json.dumps(spec_process))
    process.update(changes)
    return process


def _both(front: list[str], root: Path, cid: str, process: dict[str, Any], tmp_path: Path,
          ) -> tuple[tuple[int, str, str], tuple[int, str, str]]:
    """The exec through the front end without Python, then through the Python CLI."""
    results = []
    for name, run in (("front", lambda *a: _run(front, root, *a, env=NO_PATH)),
                      ("python", lambda *a: _python(root, *a))):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(process))
        pid_file = tmp_path / f"{name}.pid"
        p = run("exec", "--pid-file", str(pid_file), "--process", str(path), cid)
        results.append((p.returncode, p.stdout, p.stderr))
        if p.returncode == 0:
            assert pid_file.read_text().isdigit()
    return results[0], results[1]


@pytest.fixture
def running(created: Callable[..., int], oci_root: Path, cid: str,  # noqa: F811
            ) -> Callable[..., dict[str, Any]]:
    """running(edit=None) -> the process object of a started `sleep` container `cid`."""
    def start(edit: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        spec: dict[str, Any] = {}

        def keep(s: dict[str, Any]) -> None:
            if edit is not None:
                edit(s)
            spec.update(s)

        created(["sleep", "1000"], keep)
        oci.start(oci_root, cid)
        assert (oci_root / cid / "exec.brief").is_file()
        process: dict[str, Any] = spec["process"]
        return process

    return start


def test_the_container_process_with_other_args(
    running: Callable[..., dict[str, Any]], no_python_front: list[str],  # noqa: F811
    oci_root: Path, cid: str, tmp_path: Path,
) -> None:
    process = _process(running(), args=["sh", "-c", PROBE])
    front, python = _both(no_python_front, oci_root, cid, process, tmp_path)
    assert front == python
    assert front[0] == 0 and "session-leader" in front[1] and front[2] == "to-stderr\n"
    assert "NoNewPrivs:\t1" in front[1]  # runc spec's default


def test_identity_limits_and_privileges_of_the_process_file(
    running: Callable[..., dict[str, Any]], no_python_front: list[str],  # noqa: F811
    oci_root: Path, cid: str, tmp_path: Path,
) -> None:
    caps = ["CAP_KILL", "net_bind_service", "CHOWN"]
    process = _process(
        running(), args=["sh", "-c", PROBE], cwd="/tmp", noNewPrivileges=False,
        env=["PATH=/bin", "A=1", "B=2", "A=3"],  # no HOME: the container's /etc/passwd says
        user={"uid": 1000, "gid": 1000, "additionalGids": [10, 20], "umask": 0o27},
        capabilities={"bounding": caps, "effective": caps, "permitted": caps,
                      "inheritable": ["CAP_KILL"], "ambient": ["CAP_KILL"]},
        rlimits=[{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024}],
        oomScoreAdj=500,
    )
    front, python = _both(no_python_front, oci_root, cid, process, tmp_path)
    assert front == python
    out = front[1]
    assert front[0] == 0, front
    for line in ("Uid:\t1000\t1000\t1000\t1000", "Groups:\t10 20", "NoNewPrivs:\t0",
                 "CapAmb:\t0000000000000020", "/tmp", "A=3", "B=2", "HOME=/home/user",
                 "0027", "512", "1024", "500"):
        assert line in [x.strip() for x in out.splitlines()], (line, out)


def test_the_container_seccomp_filter(
    running: Callable[..., dict[str, Any]], no_python_front: list[str],  # noqa: F811
    oci_root: Path, cid: str, tmp_path: Path,
) -> None:
    """The filter the container was created with (seccomp.bpf), with and without no_new_privs."""
    def deny(spec: dict[str, Any]) -> None:
        spec["linux"]["seccomp"] = DENY_TOUCH

    container_process = running(deny)
    assert (oci_root / cid / "seccomp.bpf").stat().st_size > 0
    for nnp in (True, False):
        process = _process(container_process, noNewPrivileges=nnp, args=[
            "sh", "-c", "grep Seccomp /proc/self/status; touch /tmp/new && echo made"])
        front, python = _both(no_python_front, oci_root, cid, process, tmp_path)
        assert front == python
        assert "Seccomp:\t2" in front[1] and "made" not in front[1]


@pytest.mark.parametrize(("script", "code"), [("exit 7", 7), ("kill -9 $$", 137), ("true", 0)])
def test_the_exit_status(
    running: Callable[..., dict[str, Any]], no_python_front: list[str],  # noqa: F811
    oci_root: Path, cid: str, tmp_path: Path, script: str, code: int,
) -> None:
    process = _process(running(), args=["sh", "-c", script])
    front, python = _both(no_python_front, oci_root, cid, process, tmp_path)
    assert front == python and front[0] == code


@pytest.mark.parametrize(
    "change",
    [
        {"args": ["no-such-command"]},  # fails before its execve: Python says why
        {"args": ["/bin/no-such-command"]},
        {"cwd": "/no/such/dir"},
        {"terminal": True},
        {"apparmorProfile": "unconfined"},
        {"capabilities": {"bounding": ["CAP_SYS_RESOURCE"], "effective": ["CAP_SYS_RESOURCE"],
                          "permitted": ["CAP_SYS_RESOURCE"]}},  # this host's root lacks it
        {"capabilities": {"effective": ["CAP_NO_SUCH"]}},
        {"rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1 << 30, "hard": 1 << 30}]},
        {"user": {"uid": 0, "gid": 0, "username": "root"}},
        {"args": "not a list"},
        {"cwd": "relative"},
        {"env": ["NOEQUALS"]},
    ],
)
def test_what_it_hands_over_answers_as_python_does(
    running: Callable[..., dict[str, Any]], oci_root: Path, cid: str, tmp_path: Path,
    no_python_front: list[str],  # noqa: F811
    change: dict[str, Any],
) -> None:
    process = _process(running(), args=["true"])
    process.update(change)
    path = tmp_path / "process.json"
    path.write_text(json.dumps(process))
    argv = ("exec", "--process", str(path), cid)
    ours, python = _front(oci_root, *argv), _python(oci_root, *argv)
    assert (ours.returncode, ours.stdout, ours.stderr) == (
        python.returncode, python.stdout, python.stderr)
    # handed over, not done: without an interpreter it cannot run at all
    alone = _run(no_python_front, oci_root, *argv, env=NO_PATH)
    assert alone.returncode != 0 and "python3" in alone.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ("exec", "{cid}", "true"),  # no --process: the container's process with ARGS
        ("exec", "--process", "{file}", "{cid}", "extra"),
        ("exec", "--detach", "--process", "{file}", "{cid}"),
        ("exec", "--tty", "--process", "{file}", "{cid}"),
        ("exec", "--process", "{file}", "nope"),
        ("exec", "--process", "/no/such/file", "{cid}"),
    ],
)
def test_command_lines_it_hands_over(
    running: Callable[..., dict[str, Any]], oci_root: Path, cid: str, tmp_path: Path,
    no_python_front: list[str], argv: tuple[str, ...],  # noqa: F811
) -> None:
    path = tmp_path / "process.json"
    path.write_text(json.dumps(_process(running(), args=["true"])))
    args = [a.format(cid=cid, file=path) for a in argv]
    alone = _run(no_python_front, oci_root, *args, env=NO_PATH)
    assert alone.returncode != 0 and "python3" in alone.stderr


def test_a_container_without_an_exec_brief_is_left_to_python(
    running: Callable[..., dict[str, Any]], no_python_front: list[str],  # noqa: F811
    oci_root: Path, cid: str, tmp_path: Path,
) -> None:
    """As one made before exec.brief was: nothing says whether it has a filter."""
    process = _process(running(), args=["true"])
    os.unlink(oci_root / cid / "exec.brief")
    path = tmp_path / "process.json"
    path.write_text(json.dumps(process))
    alone = _run(no_python_front, oci_root, "exec", "--process", str(path), cid, env=NO_PATH)
    assert alone.returncode != 0 and "python3" in alone.stderr
    assert _python(oci_root, "exec", "--process", str(path), cid).returncode == 0


def test_the_process_file_is_read_as_json_loads_reads_it(
    running: Callable[..., dict[str, Any]], no_python_front: list[str],  # noqa: F811
    oci_root: Path, cid: str, tmp_path: Path,
) -> None:
    """Escapes, non-ASCII text and a repeated key (the last one counts) in the process file."""
    process = _process(running(), args=["sh", "-c", "env | sort; pwd"],
                       env=["PATH=/bin", 'E=caf\u00e9 \U0001f600 "q" \\ \t/ end'])
    text = json.dumps(process, ensure_ascii=True)[:-1] + ', "cwd": "/tmp", "cwd": "/\\/etc"}'
    results = []
    for name, run in (("front", lambda *a: _run(no_python_front, oci_root, *a, env=NO_PATH)),
                      ("python", lambda *a: _python(oci_root, *a))):
        path = tmp_path / f"{name}.json"
        path.write_text(text)
        p = run("exec", "--process", str(path), cid)
        results.append((p.returncode, p.stdout, p.stderr))
    assert results[0] == results[1]
    assert results[0][0] == 0 and "/etc\n" in results[0][1]
    assert 'E=caf\u00e9 \U0001f600 "q" \\ \t/ end' in results[0][1]
