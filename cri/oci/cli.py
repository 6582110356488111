"""`python -m cri.oci`: the runc command-line contract (the subset containerd and CRI-O use).

    [--root DIR] [--log FILE] [--log-format text|json] [--debug] COMMAND ...
    create --bundle B [--pid-file P] [--console-socket S] [--preserve-fds N] [--no-pivot]
           [--no-new-keyring] ID
    start ID | state ID | delete [--force] ID | kill ID [SIGNAL] [--all]
    pause ID | resume ID | list | ps [--format table|json] ID [PS ARGS...] | features
    exec [--process FILE] [--detach] [--pid-file P] [--cwd D] [--env K=V]... [--tty]
         [--console-socket S] [--preserve-fds N] ID [ARGS...]
    update [--resources FILE|-] [--memory M] [--memory-swap M] [--memory-reservation M]
           [--cpu-shares N] [--cpu-quota N] [--cpu-period N] [--cpuset-cpus C]
           [--cpuset-mems M] [--pids-limit N] [--blkio-weight N] ID

Socket activation as runc: with LISTEN_FDS=N and LISTEN_PID=<this pid>, `create` passes fds
3..3+N-1 to the container with LISTEN_FDS=N LISTEN_PID=1; --preserve-fds follows them.

The parser is hand-written: argparse costs more start-up time than the whole `state` command.
Errors go to stderr and, with --log, to the log file (JSON lines with --log-format json, which is
where containerd looks for the reason a command failed).
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path
    from typing import Any, NoReturn

# NOTE: start-up cost is most of what a `cri-oci start` or `kill` costs: this module imports only
# os and sys; json, pathlib and each command's modules are imported by the branch that needs them
# (tests/unit/oci/test_cli_imports.py keeps it so).

DEFAULT_ROOT = "/run/cri/oci"


class UsageError(Exception):
    pass


class Args:
    """Parsed flags of one command: values by long name, booleans, repeated values, positionals."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.lists: dict[str, list[str]] = {}
        self.flags: set[str] = set()
        self.positional: list[str] = []


def parse(
    argv: Sequence[str],
    valued: set[str],
    boolean: set[str],
    repeated: frozenset[str] | set[str] = frozenset(),
    *,
    stop_at_positional: int = -1,
) -> Args:
    """Parse --name value, --name=value, -x; after `stop_at_positional` positionals, the rest
    is positional."""
    args = Args()
    i = 0
    while i < len(argv):
        a = argv[i]
        if stop_at_positional >= 0 and len(args.positional) >= stop_at_positional:
            args.positional.extend(argv[i:])
            break
        if a == "--":
            args.positional.extend(argv[i + 1 :])
            break
        if a.startswith("-") and a != "-":
            name, eq, value = a.lstrip("-").partition("=")
            if name in valued or name in repeated:
                if not eq:
                    i += 1
                    if i >= len(argv):
                        raise UsageError(f"flag needs an argument: {a}")
                    value = argv[i]
                if name in repeated:
                    args.lists.setdefault(name, []).append(value)
                else:
                    args.values[name] = value
            elif name in boolean:
                if eq and value.lower() in ("false", "0"):
                    args.flags.discard(name)
                else:
                    args.flags.add(name)
            else:
                raise UsageError(f"flag provided but not defined: {a}")
        else:
            args.positional.append(a)
        i += 1
    return args


def _one_id(args: Args, command: str) -> str:
    if len(args.positional) != 1:
        raise UsageError(f'"{command}" requires exactly 1 argument (the container id)')
    return args.positional[0]


def _write_log(path: str | None, fmt: str, level: str, msg: str) -> None:
    if not path:
        return
    import json
    import time

    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    line = (
        json.dumps({"level": level, "msg": msg, "time": stamp})
        if fmt == "json"
        else f'time="{stamp}" level={level} msg="{msg}"'
    )
    with open(path, "a") as f:
        f.write(line + "\n")


def _setup_logging(path: str | None, fmt: str, debug: bool) -> None:
    import logging

    handler: logging.Handler = (
        logging.FileHandler(path) if path else logging.StreamHandler(sys.stderr)
    )
    if fmt == "json":
        handler.setFormatter(
            logging.Formatter('{"level":"%(levelname)s","msg":"%(message)s","time":"%(asctime)s"}')
        )
    else:
        handler.setFormatter(
            logging.Formatter("time=%(asctime)s level=%(levelname)s msg=%(message)s")
        )
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.WARNING)


def _state_json(st: Any) -> dict[str, Any]:
    result: dict[str, Any] = st.to_json()
    return result


def run(argv: Sequence[str]) -> int:
    g = parse(
        argv,
        {"root", "log", "log-format", "criu", "rootless"},
        {"debug", "systemd-cgroup", "help", "h", "version", "v"},
        stop_at_positional=1,
    )
    if "version" in g.flags or "v" in g.flags:
        print("cri-oci version 0.1.0\nspec: 1.0.2")
        return 0
    if not g.positional or "help" in g.flags or "h" in g.flags:
        print(__doc__)
        return 0 if g.positional or "help" in g.flags or "h" in g.flags else 1
    if "systemd-cgroup" in g.flags:
        raise UsageError("--systemd-cgroup is not supported")
    root = g.values.get("root", DEFAULT_ROOT)
    log_path = g.values.get("log")
    log_format = g.values.get("log-format", "text")
    command, rest = g.positional[0], g.positional[1:]
    if "debug" in g.flags:
        _setup_logging(log_path, log_format, True)
    else:
        # warnings and errors only, written by lazylog as this handler would, without logging
        from .lazylog import JSON, TEXT, emit_to

        fd = -1
        if log_path:
            fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o666)
        emit_to(fd, JSON if log_format == "json" else TEXT)
    try:
        return _dispatch(command, rest, root)
    except UsageError:
        raise
    except Exception as e:
        from .errors import OciError

        if not isinstance(e, (OciError, OSError)):
            raise
        _write_log(log_path, log_format, "error", str(e))
        print(f"cri-oci: {e}", file=sys.stderr)
        return 1


def _dispatch(command: str, rest: list[str], root: str) -> int:
    # NOTE: the library takes str roots too; pathlib is imported only by commands that need it.
    if command == "state":
        from .jsonio import dumps
        from .statefile import state_json

        a = parse(rest, set(), set())
        print(dumps(state_json(root, _one_id(a, command)), indent=2))
        return 0
    if command == "create":
        import gc

        # NOTE: the cyclic collector runs some six times during create's imports and spec
        # parsing (0.7 ms), to free next to nothing: this process exits (run_and_exit) or execs
        # (the init) within milliseconds, and its few cycles go with it.
        gc.disable()
        from .cgroups import warmup

        warmup.start()  # during the imports below (see warmup.py; create() stops it)
        from .create import create

        a = parse(
            rest,
            {"bundle", "b", "pid-file", "console-socket", "preserve-fds"},
            {"no-pivot", "no-new-keyring"},
        )
        cid = _one_id(a, command)
        from .fds import cli_fds, listen_fds

        bundle = a.values.get("bundle") or a.values.get("b") or "."
        pid_file = a.values.get("pid-file")
        console = a.values.get("console-socket")
        preserve = cli_fds(os.environ, os.getpid(), _count(a, "preserve-fds"), activation=True)
        create(
            root,
            cid,
            bundle,
            stdin=0,
            stdout=1,
            stderr=2,
            pid_file=pid_file or None,
            console_socket=console or None,
            preserve_fds=preserve,
            listen_fds=listen_fds(os.environ, os.getpid()),
        )
        return 0
    if command == "start":
        from .start import start

        start(root, _one_id(parse(rest, set(), set()), command))
        return 0
    if command == "kill":
        from .kill import kill
        from .signals import parse_signal

        a = parse(rest, set(), {"all", "a"})
        if not 1 <= len(a.positional) <= 2:
            raise UsageError('"kill" requires an id and an optional signal')
        sig = parse_signal(a.positional[1] if len(a.positional) == 2 else "SIGTERM")
        kill(root, a.positional[0], sig, all=bool({"all", "a"} & a.flags))
        return 0
    if command == "delete":
        from .delete import delete
        from .errors import ContainerNotFound

        a = parse(rest, set(), {"force", "f"})
        try:
            delete(root, _one_id(a, command), force=bool({"force", "f"} & a.flags))
        except ContainerNotFound:
            if {"force", "f"} & a.flags:
                return 0  # runc: delete --force of a missing container succeeds
            raise
        return 0
    if command == "list":
        import json

        from .state import list_containers

        a = parse(rest, {"format", "f"}, {"quiet", "q"})
        states = list_containers(root)
        if {"quiet", "q"} & a.flags:
            for st in states:
                print(st.id)
        elif (a.values.get("format") or a.values.get("f")) == "json":
            print(json.dumps([_state_json(st) for st in states]))
        else:
            print(f"{'ID':<20} {'PID':<8} {'STATUS':<10} {'BUNDLE':<40} {'CREATED':<32} OWNER")
            for st in states:
                pid = st.pid if st.status.value != "stopped" else 0
                print(
                    f"{st.id:<20} {pid:<8} {st.status.value:<10} {st.bundle:<40} "
                    f"{st.created:<32} root"
                )
        return 0
    if command == "ps":
        from pathlib import Path

        return _ps(rest, Path(root))
    if command in ("pause", "resume"):
        from .pause import pause, resume

        cid = _one_id(parse(rest, set(), set()), command)
        (pause if command == "pause" else resume)(root, cid)
        return 0
    if command == "update":
        from pathlib import Path

        return _update(rest, Path(root))
    if command == "features":
        import json

        from .features import features

        parse(rest, set(), set())
        print(json.dumps(features(), indent=4))
        return 0
    if command == "exec":
        return _exec(rest, root)
    raise UsageError(f"unknown command {command!r}")


def _count(a: Args, name: str) -> int:
    text = a.values.get(name, "0")
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"invalid value {text!r} for --{name}") from None
    if value < 0:
        raise UsageError(f"--{name} must not be negative")
    return value


def _ps(rest: list[str], root: Path) -> int:
    """runc ps: `ps -ef` (or the ARGS given after the id) filtered to the container's pids."""
    import json

    from . import cgroups
    from .state import load

    a = parse(rest, {"format", "f"}, set(), stop_at_positional=1)
    if not a.positional:
        raise UsageError('"ps" requires a container id')
    cid, ps_args = a.positional[0], a.positional[1:]
    record = load(root, cid)
    pids = cgroups.from_paths(record.cgroup_version, record.cgroup_paths).pids()
    fmt = a.values.get("format") or a.values.get("f") or "table"
    if fmt == "json":
        print(json.dumps(pids))
        return 0
    if fmt != "table":
        raise UsageError(f"invalid format option {fmt!r}")
    import subprocess

    p = subprocess.run(["ps", *(ps_args or ["-ef"])], capture_output=True, text=True)
    if p.returncode != 0:
        raise UsageError(f"ps: {p.stdout}{p.stderr}".strip())
    lines = p.stdout.splitlines()
    header = lines[0].split() if lines else []
    if "PID" not in header:
        raise UsageError("couldn't find PID field in ps output")
    column = header.index("PID")
    print(lines[0])
    wanted = set(pids)
    for line in lines[1:]:
        fields = line.split()
        if len(fields) > column and fields[column].isdigit() and int(fields[column]) in wanted:
            print(line)
    return 0


def _update(rest: list[str], root: Path) -> int:
    import json

    from .update import FLAGS, IGNORED_FLAGS, RDT_FLAGS, resources_from_flags, update

    a = parse(rest, {"resources", "r", *FLAGS, *IGNORED_FLAGS, *RDT_FLAGS}, set())
    cid = _one_id(a, "update")
    source = a.values.get("resources") or a.values.get("r")
    if source:
        # runc: with --resources, every other flag is ignored
        try:
            if source == "-":
                request = json.load(sys.stdin)
            else:
                with open(source) as f:
                    request = json.load(f)
        except ValueError as e:
            raise UsageError(f"--resources: invalid JSON: {e}") from None
    else:
        request = resources_from_flags({k: v for k, v in a.values.items() if k not in ("r",)})
    update(root, cid, request)
    return 0


def _exec(rest: list[str], root: str) -> int:
    # NOTE: a kubelet exec probe's hot path: no json or pathlib (see the module's NOTE)
    from .exec import exec_process
    from .jsonio import loads
    from .statefile import load

    a = parse(
        rest,
        {
            "process",
            "p",
            "pid-file",
            "cwd",
            "user",
            "u",
            "console-socket",
            "process-label",
            "apparmor",
            "preserve-fds",
        },
        {"detach", "d", "tty", "t", "no-new-privs"},
        {"env", "e", "cap", "c"},
        stop_at_positional=1,
    )
    if not a.positional:
        raise UsageError('"exec" requires a container id')
    cid, args = a.positional[0], a.positional[1:]
    process_file = a.values.get("process") or a.values.get("p")
    if process_file:
        with open(process_file) as f:
            proc: dict[str, Any] = loads(f.read())
    else:
        # runc: without --process, start from the container's own process, with ARGS instead.
        if not args:
            raise UsageError("exec needs ARGS or --process")
        record = load(root, cid)
        with open(os.path.join(record.bundle, "config.json")) as f:
            proc = dict(loads(f.read()).get("process") or {})
        proc["args"] = args
        proc["terminal"] = bool({"tty", "t"} & a.flags)
        env = list(proc.get("env") or []) + a.lists.get("env", []) + a.lists.get("e", [])
        proc["env"] = env
        if a.values.get("cwd"):
            proc["cwd"] = a.values["cwd"]
        user = a.values.get("user") or a.values.get("u")
        if user:
            uid, _, gid = user.partition(":")
            proc["user"] = {"uid": int(uid), "gid": int(gid or 0)}
        if "no-new-privs" in a.flags:
            proc["noNewPrivileges"] = True
        caps = a.lists.get("cap", []) + a.lists.get("c", [])
        if caps and proc.get("capabilities"):
            for key in ("bounding", "effective", "permitted", "inheritable", "ambient"):
                proc["capabilities"][key] = sorted(
                    set(proc["capabilities"].get(key) or []) | set(caps)
                )
    pid_file = a.values.get("pid-file")
    detach = bool({"detach", "d"} & a.flags)
    console = a.values.get("console-socket")
    from .fds import cli_fds

    preserve = cli_fds(os.environ, os.getpid(), _count(a, "preserve-fds"), activation=False)
    if proc.get("terminal") and not detach and not console:
        from .tty_proxy import exec_with_terminal

        return exec_with_terminal(root, cid, proc, pid_file=pid_file or None, preserve_fds=preserve)
    if console and not detach:
        from .console import NO_TTY
        from .errors import OciError

        raise OciError(NO_TTY)  # runc: a console socket only for a detached process
    code = exec_process(
        root,
        cid,
        proc,
        stdin=0,
        stdout=1,
        stderr=2,
        detach=detach,
        pid_file=pid_file or None,
        console_socket=console or None,
        preserve_fds=preserve,
    )
    return 0 if detach else code


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run(sys.argv[1:] if argv is None else argv)
    except UsageError as e:
        print(f"cri-oci: {e}", file=sys.stderr)
        return 2


def run_and_exit(argv: Sequence[str] | None = None) -> NoReturn:
    """main() for launchers (`cri-oci`, `python -m cri.oci`): then exit without the
    interpreter's teardown.

    NOTE: freeing every module and object at exit costs 2 to 5 ms, a third of a `cri-oci start`.
    What the teardown would do that matters is done here: atexit handlers (logging's flush and
    close among them), then flushing stdout and stderr, failing as Python would (exit status 120)
    when stdout cannot be written (a closed pipe). An exception from main() takes the normal way
    out, traceback and all.
    """
    code = main(argv)
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            if code == 0:
                code = 120
    os._exit(code)
