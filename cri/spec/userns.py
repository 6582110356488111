"""Pod user namespaces (NamespaceOption.userns_options, KEP-127): the pod's pause container
makes one with kubelet's mapping; the pod's containers join it.

Rules (containerd 2.x's and CRI-O's): NODE is the host's (no namespace); POD needs exactly one
uid and one gid mapping, each mapping container id 0; CONTAINER and TARGET are not supported;
host network, IPC and PID cannot be combined with one (the API server forbids those too).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from cri.api.runtime.v1 import api_pb2 as v1
from cri.errors import InvalidArgument
from cri.spec.users import secure_join

MODES = {v1.POD: "POD", v1.CONTAINER: "CONTAINER", v1.NODE: "NODE", v1.TARGET: "TARGET"}


def pod_mappings(opts: v1.NamespaceOption) -> dict[str, list[dict[str, int]]] | None:
    """{"uidMappings": [...], "gidMappings": [...]} for the pause container's spec, or None
    when the pod uses the host's user namespace. InvalidArgument for what cannot be done."""
    if not opts.HasField("userns_options") or opts.userns_options.mode == v1.NODE:
        if opts.HasField("userns_options") and (opts.userns_options.uids
                                                or opts.userns_options.gids):
            raise InvalidArgument("user namespace mode NODE takes no mappings")
        return None
    userns = opts.userns_options
    if userns.mode != v1.POD:
        raise InvalidArgument(f"user namespace mode {MODES.get(userns.mode, userns.mode)} is "
                              "not supported: use POD or NODE")
    for name, ns in (("network", opts.network), ("ipc", opts.ipc), ("pid", opts.pid)):
        if ns == v1.NODE:
            raise InvalidArgument(f"a pod user namespace cannot be combined with the host's "
                                  f"{name} namespace")
    out: dict[str, list[dict[str, int]]] = {}
    for key, mappings in (("uidMappings", userns.uids), ("gidMappings", userns.gids)):
        kind = key[:3]
        if len(mappings) != 1:
            raise InvalidArgument(f"a pod user namespace needs exactly one {kind} mapping, got "
                                  f"{len(mappings)}")
        (m,) = mappings
        if m.container_id != 0:
            raise InvalidArgument(f"the {kind} mapping must map container id 0, not "
                                  f"{m.container_id}")
        if m.length == 0:
            raise InvalidArgument(f"the {kind} mapping is empty")
        out[key] = [{"containerID": m.container_id, "hostID": m.host_id, "size": m.length}]
    return out


def join(pause_pid: int) -> dict[str, Any]:
    return {"type": "user", "path": f"/proc/{pause_pid}/ns/user"}


def prepare_rootfs(rootfs: Path, spec: dict[str, Any]) -> None:
    """Ready a rootfs for a container whose root is an unprivileged uid on the host: every
    mount target made here, as the host's root (the container's root may not create entries in
    directories the host's root owns), and the root directory given to the mapped root.

    NOTE: the image's files keep their owners, so they show as nobody inside (readable and
    executable, not writable). Idmapped mounts of the layers would map them; this is the
    chown-free minimum that runs any image."""
    uid = _host_id(spec["linux"].get("uidMappings") or [])
    gid = _host_id(spec["linux"].get("gidMappings") or [])
    for m in spec.get("mounts", []):
        target = secure_join(rootfs, m["destination"])
        source = m.get("source", "")
        is_file = "bind" in (m.get("options") or []) or m.get("type") == "bind"
        is_file = is_file and bool(source) and os.path.isfile(source)
        try:
            if is_file:
                target.parent.mkdir(parents=True, exist_ok=True)
                if not target.exists():
                    target.touch(mode=0o644)
            elif not target.exists():
                target.mkdir(mode=0o755, parents=True)
        except OSError:
            continue  # the executor reports what it cannot mount, with its reason
    cwd = spec.get("process", {}).get("cwd")
    if cwd:
        with contextlib.suppress(OSError):
            secure_join(rootfs, cwd).mkdir(mode=0o755, parents=True, exist_ok=True)
    if uid is not None and gid is not None:
        os.chown(rootfs, uid, gid)


def _host_id(mappings: list[dict[str, int]]) -> int | None:
    for m in mappings:
        if m.get("containerID") == 0:
            return int(m["hostID"])
    return None
