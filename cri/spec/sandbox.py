"""The OCI spec of a pod's pause container, which owns the pod's IPC, UTS and PID namespaces and
sits in its network namespace."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cri.api.runtime.v1 import api_pb2 as v1
from cri.errors import InvalidArgument
from cri.image import ImageConfig
from cri.spec import defaults
from cri.spec.container import merge_env
from cri.spec.seccomp import seccomp_for
from cri.spec.userns import pod_mappings
from cri.spec.users import resolve_user

# kubelet's value for the pause container: the last process the OOM killer should pick.
SANDBOX_OOM_SCORE_ADJ = -998


@dataclass(frozen=True, slots=True)
class SandboxSpecInput:
    sandbox_id: str
    config: v1.PodSandboxConfig
    image: ImageConfig
    rootfs: Path
    hostname: str
    netns_path: str  # "" for host network
    shm_dir: Path | None
    cgroups_path: str


def sandbox_spec(inp: SandboxSpecInput) -> dict[str, Any]:
    cfg = inp.config
    sc = cfg.linux.security_context
    opts = sc.namespace_options
    args = list(inp.image.entrypoint) + list(inp.image.cmd)
    if not args:
        raise InvalidArgument("the sandbox image has neither entrypoint nor cmd")
    user = resolve_user(
        inp.rootfs,
        image_user=inp.image.user,
        run_as_user=sc.run_as_user.value if sc.HasField("run_as_user") else None,
        run_as_username="",
        run_as_group=sc.run_as_group.value if sc.HasField("run_as_group") else None,
        supplemental_groups=tuple(sc.supplemental_groups),
    )
    userns = pod_mappings(opts)
    namespaces: list[dict[str, str]] = [{"type": "mount"}]
    if userns is not None:
        namespaces.append({"type": "user"})
    if opts.network != v1.NODE:
        namespaces.append({"type": "network", "path": inp.netns_path})
        namespaces.append({"type": "uts"})
    if opts.ipc != v1.NODE:
        namespaces.append({"type": "ipc"})
    if opts.pid != v1.NODE:
        namespaces.append({"type": "pid"})
    mounts = defaults.base_mounts()
    if inp.shm_dir is not None:
        mounts.append({"destination": "/dev/shm", "type": "bind", "source": str(inp.shm_dir),
                       "options": ["rbind", "rprivate", "rw"]})
    caps = list(defaults.DEFAULT_CAPABILITIES)
    linux: dict[str, Any] = {
        "namespaces": namespaces,
        "cgroupsPath": inp.cgroups_path,
        "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        "maskedPaths": list(defaults.MASKED_PATHS),
        "readonlyPaths": list(defaults.READONLY_PATHS),
        "sysctl": dict(cfg.linux.sysctls),
        "rootfsPropagation": "rslave",
    }
    if userns is not None:
        linux.update(userns)
    seccomp = seccomp_for(sc.seccomp if sc.HasField("seccomp") else None,
                          sc.seccomp_profile_path, sc.privileged, capabilities=caps)
    if seccomp is not None:
        linux["seccomp"] = seccomp
    return {
        "ociVersion": defaults.OCI_VERSION,
        "process": {
            "terminal": False,
            "user": {"uid": user.uid, "gid": user.gid,
                     "additionalGids": list(user.additional_gids)},
            "args": args,
            "env": merge_env(inp.image.env, {}),
            "cwd": inp.image.working_dir or "/",
            "capabilities": {k: list(caps) for k in ("bounding", "effective", "permitted")},
            "noNewPrivileges": True,
            "oomScoreAdj": defaults.clamp_oom_score_adj(SANDBOX_OOM_SCORE_ADJ),
        },
        "root": {"path": str(inp.rootfs), "readonly": True},
        "hostname": inp.hostname if opts.network != v1.NODE else "",
        "mounts": mounts,
        "annotations": {
            "io.kubernetes.cri.container-type": "sandbox",
            "io.kubernetes.cri.sandbox-id": inp.sandbox_id,
            "io.kubernetes.cri.sandbox-name": cfg.metadata.name,
            "io.kubernetes.cri.sandbox-namespace": cfg.metadata.namespace,
            "io.kubernetes.cri.sandbox-uid": cfg.metadata.uid,
        },
        "linux": linux,
    }
