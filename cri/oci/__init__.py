"""An OCI runtime (runtime-spec 1.x, Linux): a library for the shim and daemon, and a runc-like CLI.

create(root, id, bundle, stdin=, stdout=, stderr=, pid_file=, console_socket=, preserve_fds=,
       listen_fds=) -> init pid            (forks; the caller must be single-threaded)
start(root, id)                            (no fork; runs poststart hooks with subprocess)
state(root, id) -> State
kill(root, id, signal, all=False)          (no fork)
delete(root, id, force=False)              (no fork; runs poststop hooks with subprocess)
pause(root, id) / resume(root, id)         (no fork; the cgroup freezer)
update(root, id, resources) -> merged resources                          (no fork)
list_containers(root) -> list[State]
exec_process(root, id, process, stdin=, stdout=, stderr=, detach=, pid_file=, console_socket=,
             preserve_fds=, die_with_caller=) -> exit code | pid
features() -> runc-style features JSON
"""

from __future__ import annotations

import sys as _sys

# NOTE: no typing, no types: this package is imported by every CLI call (see cli.py).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .create import create
    from .delete import delete
    from .errors import (
        ContainerExists,
        ContainerNotFound,
        InvalidSpec,
        InvalidState,
        OciError,
        Unsupported,
    )
    from .exec import exec_process
    from .features import features
    from .kill import kill
    from .pause import pause, resume
    from .start import start
    from .state import State, Status, list_containers, state
    from .update import update

DEFAULT_ROOT = "/run/cri/oci"

#: public name -> defining submodule; loaded on first access so the CLI imports only what it runs.
_LAZY = {
    "create": "create",
    "start": "start",
    "state": "state",
    "list_containers": "state",
    "State": "state",
    "Status": "state",
    "kill": "kill",
    "delete": "delete",
    "exec_process": "exec",
    "pause": "pause",
    "resume": "pause",
    "update": "update",
    "features": "features",
    "OciError": "errors",
    "ContainerNotFound": "errors",
    "ContainerExists": "errors",
    "InvalidSpec": "errors",
    "InvalidState": "errors",
    "Unsupported": "errors",
}


if TYPE_CHECKING:
    from types import ModuleType as _ModuleType
else:
    _ModuleType = type(_sys)


class _Package(_ModuleType):
    """The package module, guarding its public functions against their own modules.

    NOTE: create(), start(), state(), kill() and delete() live in modules of the same names, and
    importing a submodule makes the import system do setattr(package, "state", <module>), which
    would shadow the function. This class ignores that one assignment, so `cri.oci.state` is
    always the function; modules inside the package import names (`from .state import load`),
    never `from . import state`.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if (
            name in _LAZY
            and isinstance(value, _ModuleType)
            and value.__name__ == f"{__name__}.{name}"
        ):
            return
        super().__setattr__(name, value)

    def __getattr__(self, name: str) -> Any:
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        __import__(f"{__name__}.{module}")
        value = getattr(_sys.modules[f"{__name__}.{module}"], name)
        super().__setattr__(name, value)
        return value


_sys.modules[__name__].__class__ = _Package

__all__ = [
    "DEFAULT_ROOT",
    "ContainerExists",
    "ContainerNotFound",
    "InvalidSpec",
    "InvalidState",
    "OciError",
    "State",
    "Status",
    "Unsupported",
    "create",
    "delete",
    "exec_process",
    "features",
    "kill",
    "pause",
    "resume",
    "list_containers",
    "start",
    "state",
    "update",
]
