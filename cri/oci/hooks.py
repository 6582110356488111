"""OCI hooks (runtime-spec config.md#posix-platform-hooks): who runs which, where, and with what.

    kind             run by     namespaces   when                                    on failure
    prestart         create     runtime's    = createRuntime (deprecated)            create fails
    createRuntime    create     runtime's    namespaces and mounts made, before      create fails
                                             pivot_root (the init waits meanwhile)
    createContainer  the init   container's  then, before pivot_root; cwd = rootfs   create fails
    startContainer   the init   container's  after `start`, before the user execve   init dies
    poststart        start      runtime's    the user process started                logged only
    poststop         delete     runtime's    the container is gone                   logged only

The runtime's create-time and poststart hooks run from the bundle directory (runc create chdirs
there, and runc 1.1 runs poststart from create); poststop from where `delete` was called (runc).
Each hook gets the container state (specs.State JSON: ociVersion, id, status, pid, bundle,
annotations, with pid and annotations omitted when empty, like runc) on stdin. Hooks run the
program at `path` with `args` as its argv (argv = [path] when args is empty), `env` as its
whole environment (the runtime's own when env is absent, as Go's exec.Cmd does for runc) and an
optional timeout in seconds. The init's hooks without `env` get the container process's environment
instead (runc's init has already switched to it: createContainer sees process.env, startContainer
that plus HOME). Inside the init, `status` is "creating"/"created" and `pid` is the
init's pid as seen from its own pid namespace, as runc reports it there.

NOTE: hooks are started with `subprocess` (fork + exec), which the daemon allows: only a bare
fork() without exec is forbidden there.
"""

from __future__ import annotations

import os

from . import lazylog
from .errors import OciError
from .jsonio import dumps
from .signals import SIGKILL
from .spec import Hook

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

log = lazylog.getLogger(__name__)

#: what the creator runs while the init waits, in this order (runc's)
RUNTIME_CREATE = ("prestart", "createRuntime")


class HookFailed(OciError):
    pass


def hook_state(
    *,
    oci_version: str,
    container_id: str,
    status: str,
    pid: int,
    bundle: str,
    annotations: Mapping[str, str],
) -> dict[str, Any]:
    """specs.State as runc marshals it (omitempty on pid and annotations)."""
    state: dict[str, Any] = {"ociVersion": oci_version, "id": container_id, "status": status}
    if pid:
        state["pid"] = pid
    state["bundle"] = bundle
    if annotations:
        state["annotations"] = dict(annotations)
    return state


def _environment(env: Iterable[str]) -> dict[str, str]:
    result = {}
    for entry in env:
        key, _, value = entry.partition("=")
        result[key] = value
    return result


def _text(data: bytes) -> str:
    return data.decode(errors="replace").strip()


def run_hook(
    hook: Hook,
    state: Mapping[str, Any],
    *,
    kind: str,
    index: int,
    cwd: str | None = None,
    default_env: Mapping[str, str] | None = None,
) -> None:
    """Run one hook to completion; HookFailed on a non-zero exit, a timeout or a failed exec.

    Without `env` in the hook it gets `default_env`, or else our own environment.
    """
    import subprocess

    argv = list(hook.args) or [hook.path]
    if hook.env is not None:
        env: Mapping[str, str] | None = _environment(hook.env)
    else:
        env = None if default_env is None else dict(default_env)
    where = f"error running {kind} hook #{index} ({hook.path})"
    try:
        proc = subprocess.Popen(
            argv,
            executable=hook.path,
            env=env,
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            close_fds=True,
            # its own process group, so a timeout kills what it started too (a shell's `sleep`
            # would otherwise keep the output pipes, and us, waiting)
            process_group=0,
        )
    except OSError as e:
        raise HookFailed(f"{where}: {e.strerror or e}") from None
    with proc:
        try:
            out, err = proc.communicate(dumps(state).encode(), timeout=hook.timeout)
        except subprocess.TimeoutExpired:
            import contextlib  # here only: 3 ms to import

            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.communicate(timeout=1)  # what a daemon outside the group holds, we drop
            raise HookFailed(
                f"{where}: hook ran past specified timeout of {hook.timeout}s"
            ) from None
    if proc.returncode != 0:
        how = (
            f"signal {-proc.returncode}"
            if proc.returncode < 0
            else f"exit status {proc.returncode}"
        )
        raise HookFailed(f"{where}: {how}, stdout: {_text(out)}, stderr: {_text(err)}")
    log.debug("%s hook #%d (%s) done", kind, index, hook.path)


def run_hooks(
    hooks: Mapping[str, tuple[Hook, ...]],
    kinds: Iterable[str],
    state: Mapping[str, Any],
    *,
    fatal: bool = True,
    cwd: str | None = None,
    default_env: Mapping[str, str] | None = None,
) -> None:
    """Run every hook of `kinds` in order; stop at the first failure unless not `fatal`.

    Non-fatal (poststart, poststop): a failure is logged and the remaining hooks still run, as
    the runtime-spec requires.
    """
    for kind in kinds:
        for index, hook in enumerate(hooks.get(kind, ())):
            try:
                run_hook(hook, state, kind=kind, index=index, cwd=cwd, default_env=default_env)
            except HookFailed as e:
                if fatal:
                    raise
                log.warning("%s", e, extra={"container_id": state.get("id")})


def has_any(hooks: Mapping[str, tuple[Hook, ...]], kinds: Iterable[str]) -> bool:
    return any(hooks.get(kind) for kind in kinds)
