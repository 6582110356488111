"""Running one CNI plugin: the CNI_* environment, the config on stdin, the result or the
error object ({"code", "msg", "details"}) on stdout."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class PluginError(Exception):
    def __init__(self, plugin: str, command: str, message: str, code: int = 0) -> None:
        super().__init__(f"plugin {plugin} failed {command}: {message}")
        self.plugin = plugin
        self.code = code
        self.message = message


def invoke(plugin: Path, command: str, config: Mapping[str, Any], *, container_id: str,
           netns: str, ifname: str, args: str, bin_dirs: Sequence[Path],
           timeout: float) -> dict[str, Any]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": container_id,
        "CNI_NETNS": netns,
        "CNI_IFNAME": ifname,
        "CNI_ARGS": args,
        "CNI_PATH": os.pathsep.join(str(d) for d in bin_dirs),
    }
    started = time.monotonic()
    try:
        proc = subprocess.run([str(plugin)], input=json.dumps(config).encode(),
                              capture_output=True, env=env, timeout=timeout, cwd="/")
    except subprocess.TimeoutExpired:
        raise PluginError(plugin.name, command, f"no answer within {timeout:.0f} s") from None
    except OSError as exc:
        raise PluginError(plugin.name, command, str(exc)) from None
    log.debug("plugin %s %s: exit %d in %.1f ms", plugin.name, command, proc.returncode,
              (time.monotonic() - started) * 1000)
    if proc.returncode != 0:
        message, code = _error_of(proc.stdout, proc.stderr)
        raise PluginError(plugin.name, command, message, code)
    if command != "ADD":
        return {}
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        raise PluginError(plugin.name, command,
                          f"answered with something that is not JSON: {proc.stdout[:200]!r}"
                          ) from None
    if not isinstance(result, dict):
        raise PluginError(plugin.name, command, "answered with a result that is not an object")
    return result


def _error_of(stdout: bytes, stderr: bytes) -> tuple[str, int]:
    try:
        error = json.loads(stdout)
        message = str(error.get("msg") or "")
        if error.get("details"):
            message += f": {error['details']}"
        return message or stderr.decode(errors="replace").strip(), int(error.get("code", 0))
    except (ValueError, AttributeError, TypeError):
        text = (stderr or stdout).decode(errors="replace").strip()
        return text or "exited non-zero with no message", 0
