"""The OCI spec of an application container: CRI ContainerConfig + its pod + its image."""

from __future__ import annotations

import logging
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cri.api.runtime.v1 import api_pb2 as v1
from cri.errors import InvalidArgument
from cri.image import ImageConfig
from cri.spec import defaults
from cri.spec.apparmor import apparmor_for
from cri.spec.seccomp import seccomp_for
from cri.spec.users import resolve_user

log = logging.getLogger(__name__)

_PROPAGATION = {
    v1.PROPAGATION_PRIVATE: "rprivate",
    v1.PROPAGATION_HOST_TO_CONTAINER: "rslave",
    v1.PROPAGATION_BIDIRECTIONAL: "rshared",
}


@dataclass(frozen=True, slots=True)
class PodEnvironment:
    """What a container borrows from its pod sandbox."""

    pause_pid: int
    netns_path: str  # "" when the pod uses the host network
    host_network: bool
    host_ipc: bool
    host_pid: bool
    hostname_file: Path
    hosts_file: Path
    resolv_conf: Path
    shm_dir: Path | None  # None when the pod shares the host's IPC (then /dev/shm is the host's)
    # The pod's own user namespace's mappings (the pause container's), or None for the host's.
    userns: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ContainerSpecInput:
    container_id: str
    config: v1.ContainerConfig
    sandbox_config: v1.PodSandboxConfig
    image: ImageConfig
    rootfs: Path
    pod: PodEnvironment
    cgroups_path: str
    target_pid: int | None = None  # init pid of the TARGET pid-namespace container
    # container path -> host path of each image volume, mounted by the container domain
    image_volumes: Mapping[str, str] = field(default_factory=dict)


def merge_args(image: ImageConfig, command: tuple[str, ...], args: tuple[str, ...]) -> list[str]:
    """Kubernetes' rule: command replaces ENTRYPOINT (and drops CMD); args replace CMD."""
    if command:
        return list(command) + list(args)
    if args:
        return list(image.entrypoint) + list(args)
    return list(image.entrypoint) + list(image.cmd)


def merge_env(image_env: tuple[str, ...], envs: Mapping[str, str]) -> list[str]:
    merged: dict[str, str] = {}
    for item in image_env:
        key, _, value = item.partition("=")
        merged[key] = value
    merged.update(envs)
    merged.setdefault("PATH", defaults.DEFAULT_PATH)
    return [f"{k}={v}" for k, v in merged.items()]


def _capabilities(sc: v1.LinuxContainerSecurityContext) -> dict[str, list[str]]:
    if sc.privileged:
        caps = defaults.all_capabilities()
        return {k: list(caps) for k in ("bounding", "effective", "permitted")}
    caps = list(defaults.DEFAULT_CAPABILITIES)
    known = defaults.known_capabilities()
    grantable = set(defaults.all_capabilities())

    def normal(name: str) -> str:
        name = name.upper()
        return name if name.startswith("CAP_") or name == "ALL" else f"CAP_{name}"

    adds = [normal(c) for c in sc.capabilities.add_capabilities]
    drops = [normal(c) for c in sc.capabilities.drop_capabilities]
    for name in adds + drops:
        if name != "ALL" and name not in known:
            raise InvalidArgument(f"unknown capability {name!r}")
    if "ALL" in adds:
        caps = defaults.all_capabilities()
    else:
        caps += [c for c in adds if c not in caps and c in grantable]
        withheld = [c for c in adds if c not in grantable]
        if withheld:
            log.warning("capabilities %s requested but this host cannot grant them", withheld)
    if "ALL" in drops:
        caps = [c for c in adds if c != "ALL"]
    else:
        caps = [c for c in caps if c not in drops]
    ambient = [normal(c) for c in sc.capabilities.add_ambient_capabilities]
    result = {k: list(caps) for k in ("bounding", "effective", "permitted")}
    if ambient:
        result["inheritable"] = list(ambient)
        result["ambient"] = list(ambient)
    return result


def _namespaces(inp: ContainerSpecInput) -> list[dict[str, str]]:
    pod = inp.pod
    opts = inp.config.linux.security_context.namespace_options
    proc = f"/proc/{pod.pause_pid}/ns"
    namespaces: list[dict[str, str]] = [{"type": "mount"}]
    if pod.userns is not None:
        namespaces.append({"type": "user", "path": f"{proc}/user"})
    if not pod.host_network:
        namespaces.append({"type": "network", "path": pod.netns_path})
        namespaces.append({"type": "uts", "path": f"{proc}/uts"})
    if not pod.host_ipc:
        namespaces.append({"type": "ipc", "path": f"{proc}/ipc"})
    if opts.pid == v1.POD:
        namespaces.append({"type": "pid", "path": f"{proc}/pid"})
    elif opts.pid == v1.TARGET:
        if inp.target_pid is None:
            raise InvalidArgument("pid namespace TARGET needs a running target container")
        namespaces.append({"type": "pid", "path": f"/proc/{inp.target_pid}/ns/pid"})
    elif opts.pid == v1.CONTAINER:
        namespaces.append({"type": "pid"})
    return namespaces


def _mounts(inp: ContainerSpecInput) -> list[dict[str, Any]]:
    cfg = inp.config
    sc = cfg.linux.security_context
    mounts = defaults.base_mounts()
    if sc.privileged:
        # Privileged containers see the host's devices and a writable sysfs/cgroupfs.
        for base in mounts:
            if base["destination"] in ("/sys", "/sys/fs/cgroup"):
                base["options"] = [o for o in base["options"] if o != "ro"] + ["rw"]
    pod = inp.pod
    if pod.shm_dir is not None:
        mounts.append({"destination": "/dev/shm", "type": "bind", "source": str(pod.shm_dir),
                       "options": ["rbind", "rprivate", "rw"]})
    else:
        mounts.append({"destination": "/dev/shm", "type": "bind", "source": "/dev/shm",
                       "options": ["rbind", "rprivate", "rw"]})
    user_paths = {m.container_path for m in cfg.mounts}
    for dest, source in (("/etc/hostname", pod.hostname_file), ("/etc/hosts", pod.hosts_file),
                         ("/etc/resolv.conf", pod.resolv_conf)):
        if dest not in user_paths:
            ro = "ro" if sc.readonly_rootfs else "rw"
            mounts.append({"destination": dest, "type": "bind", "source": str(source),
                           "options": ["rbind", "rprivate", ro]})
    for m in cfg.mounts:
        if not m.container_path.startswith("/"):
            raise InvalidArgument(f"mount container_path {m.container_path!r} is not absolute")
        if m.image.image:
            volume = inp.image_volumes.get(m.container_path)
            if volume is None:
                raise InvalidArgument(f"image volume {m.container_path!r} is not mounted")
            mounts.append({"destination": m.container_path, "type": "bind", "source": volume,
                           "options": ["rbind", "rprivate", "ro", "nosuid", "nodev"]})
            continue
        if not m.host_path:
            raise InvalidArgument(f"mount for {m.container_path!r} has no host_path")
        if not Path(m.host_path).exists():
            raise InvalidArgument(f"mount host_path {m.host_path!r} does not exist")
        options = ["rbind", _PROPAGATION.get(m.propagation, "rprivate")]
        options.append("ro" if m.readonly else "rw")
        if m.recursive_read_only:
            if not m.readonly:
                raise InvalidArgument("recursive_read_only needs readonly")
            options.append("rro")
        mounts.append({"destination": m.container_path, "type": "bind", "source": m.host_path,
                       "options": options})
    return mounts


def _rootfs_propagation(cfg: v1.ContainerConfig) -> str:
    """A bidirectional mount needs a shared root to propagate through (containerd's rule)."""
    modes = {m.propagation for m in cfg.mounts}
    return "rshared" if v1.PROPAGATION_BIDIRECTIONAL in modes else "rslave"


def _host_devices() -> list[dict[str, Any]]:
    """Every device node of the host, for privileged containers (as containerd gives them)."""
    import os
    import stat

    devices: list[dict[str, Any]] = []
    for directory, subdirs, files in os.walk("/dev"):
        # Per-container instances, not host devices.
        subdirs[:] = [d for d in subdirs if os.path.join(directory, d) not in
                      ("/dev/pts", "/dev/shm", "/dev/mqueue")]
        for name in sorted(files):
            path = os.path.join(directory, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                if path in ("/dev/console", "/dev/ptmx"):
                    continue
                devices.append({"path": path, "type": "c" if stat.S_ISCHR(st.st_mode) else "b",
                                "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev),
                                "fileMode": stat.S_IMODE(st.st_mode), "uid": st.st_uid,
                                "gid": st.st_gid})
    return devices


def _resources(cfg: v1.ContainerConfig) -> dict[str, Any]:
    resources: dict[str, Any] = {"devices": [{"allow": False, "access": "rwm"}]}
    resources.update(oci_resources(cfg.linux.resources))
    return resources


def oci_resources(r: v1.LinuxContainerResources) -> dict[str, Any]:
    """CRI resources as OCI `linux.resources` (without devices); zero means "not set"."""
    resources: dict[str, Any] = {}
    cpu: dict[str, Any] = {}
    if r.cpu_shares:
        cpu["shares"] = r.cpu_shares
    if r.cpu_quota:
        cpu["quota"] = r.cpu_quota
    if r.cpu_period:
        cpu["period"] = r.cpu_period
    if r.cpuset_cpus:
        cpu["cpus"] = r.cpuset_cpus
    if r.cpuset_mems:
        cpu["mems"] = r.cpuset_mems
    if cpu:
        resources["cpu"] = cpu
    if r.memory_limit_in_bytes:
        memory: dict[str, Any] = {"limit": r.memory_limit_in_bytes}
        if r.memory_swap_limit_in_bytes:
            memory["swap"] = r.memory_swap_limit_in_bytes
        resources["memory"] = memory
    if r.hugepage_limits:
        resources["hugepageLimits"] = [
            {"pageSize": h.page_size, "limit": h.limit} for h in r.hugepage_limits
        ]
    if r.unified:
        resources["unified"] = dict(r.unified)
    return resources


def _devices(cfg: v1.ContainerConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    import os
    import stat

    devices: list[dict[str, Any]] = []
    rules: list[dict[str, Any]] = []
    for d in cfg.devices:
        try:
            st = os.stat(d.host_path)
        except OSError as exc:
            raise InvalidArgument(f"device {d.host_path!r}: {exc.strerror}") from None
        if stat.S_ISCHR(st.st_mode):
            kind = "c"
        elif stat.S_ISBLK(st.st_mode):
            kind = "b"
        else:
            raise InvalidArgument(f"{d.host_path!r} is not a device")
        major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
        devices.append({"path": d.container_path or d.host_path, "type": kind, "major": major,
                        "minor": minor, "fileMode": stat.S_IMODE(st.st_mode), "uid": 0, "gid": 0})
        rules.append({"allow": True, "type": kind, "major": major, "minor": minor,
                      "access": d.permissions or "rwm"})
    return devices, rules


def _default_device_rules() -> list[dict[str, Any]]:
    # null, zero, full, random, urandom, tty, ptmx, pts: what every container may open.
    rules: list[dict[str, Any]] = []
    for kind, major, minor in (("c", 1, 3), ("c", 1, 5), ("c", 1, 7), ("c", 1, 8), ("c", 1, 9),
                               ("c", 5, 0), ("c", 5, 2), ("c", 136, None)):
        rule: dict[str, Any] = {"allow": True, "type": kind, "major": major, "access": "rwm"}
        if minor is not None:
            rule["minor"] = minor
        rules.append(rule)
    return rules


def stop_signal(cfg: v1.ContainerConfig, image: ImageConfig) -> int:
    """The signal StopContainer sends first: config, then image STOPSIGNAL, then SIGTERM."""
    if cfg.stop_signal:
        name = v1.Signal.Name(cfg.stop_signal)
        return int(getattr(signal, name, signal.SIGTERM))
    value = image.stop_signal.strip().upper()
    if not value:
        return int(signal.SIGTERM)
    if value.isdigit():
        return int(value)
    if not value.startswith("SIG"):
        value = "SIG" + value
    return int(getattr(signal, value, signal.SIGTERM))


def container_spec(inp: ContainerSpecInput) -> dict[str, Any]:
    cfg = inp.config
    sc = cfg.linux.security_context
    args = merge_args(inp.image, tuple(cfg.command), tuple(cfg.args))
    if not args:
        raise InvalidArgument("no command: the config and the image give neither command nor args")
    user = resolve_user(
        inp.rootfs,
        image_user=inp.image.user,
        run_as_user=sc.run_as_user.value if sc.HasField("run_as_user") else None,
        run_as_username=sc.run_as_username,
        run_as_group=sc.run_as_group.value if sc.HasField("run_as_group") else None,
        supplemental_groups=tuple(sc.supplemental_groups),
        strict_groups=sc.supplemental_groups_policy == v1.Strict,
    )
    env = merge_env(inp.image.env, {kv.key: _text(kv.value) for kv in cfg.envs})
    if inp.sandbox_config.hostname or not inp.pod.host_network:
        env.append(f"HOSTNAME={_hostname(inp.sandbox_config)}")
    devices, device_rules = _devices(cfg)
    resources = _resources(cfg)
    if sc.privileged:
        resources["devices"] = [{"allow": True, "access": "rwm"}]
        named = {d["path"] for d in devices}
        devices += [d for d in _host_devices() if d["path"] not in named]
    else:
        resources["devices"] += _default_device_rules() + device_rules
    process: dict[str, Any] = {
        "terminal": cfg.tty,
        "user": {"uid": user.uid, "gid": user.gid,
                 "additionalGids": list(user.additional_gids)},
        "args": args,
        "env": env,
        "cwd": cfg.working_dir or inp.image.working_dir or "/",
        "capabilities": _capabilities(sc),
        "noNewPrivileges": sc.no_new_privs,
    }
    oom = cfg.linux.resources.oom_score_adj
    if oom:
        process["oomScoreAdj"] = defaults.clamp_oom_score_adj(oom)
    linux: dict[str, Any] = {
        "namespaces": _namespaces(inp),
        "cgroupsPath": inp.cgroups_path,
        "resources": resources,
        "devices": devices,
        "rootfsPropagation": _rootfs_propagation(cfg),
    }
    if not sc.privileged:
        linux["maskedPaths"] = list(sc.masked_paths) or list(defaults.MASKED_PATHS)
        linux["readonlyPaths"] = list(sc.readonly_paths) or list(defaults.READONLY_PATHS)
    # HasField: RuntimeDefault is enum value 0, so an unset profile would read as RuntimeDefault.
    seccomp = seccomp_for(
        sc.seccomp if sc.HasField("seccomp") else None,
        sc.seccomp_profile_path,
        sc.privileged,
        capabilities=process["capabilities"]["bounding"],
    )
    if seccomp is not None:
        linux["seccomp"] = seccomp
    # HasField, as for seccomp: an unset profile is "nothing asked", not RuntimeDefault.
    apparmor = apparmor_for(
        sc.apparmor if sc.HasField("apparmor") else None, sc.apparmor_profile, sc.privileged
    )
    if apparmor is not None:
        process["apparmorProfile"] = apparmor
    sysctls = dict(inp.sandbox_config.linux.sysctls)
    if sysctls:
        linux["sysctl"] = sysctls
    annotations = dict(cfg.annotations)
    annotations.update({
        "io.kubernetes.cri.container-type": "container",
        "io.kubernetes.cri.container-name": cfg.metadata.name,
        "io.kubernetes.cri.sandbox-name": inp.sandbox_config.metadata.name,
        "io.kubernetes.cri.sandbox-namespace": inp.sandbox_config.metadata.namespace,
        "io.kubernetes.cri.sandbox-uid": inp.sandbox_config.metadata.uid,
    })
    return {
        "ociVersion": defaults.OCI_VERSION,
        "process": process,
        "root": {"path": str(inp.rootfs), "readonly": sc.readonly_rootfs},
        "hostname": "",
        "mounts": _mounts(inp),
        "annotations": annotations,
        "linux": linux,
    }


def _text(value: str | bytes) -> str:
    # KeyValue.value is bytes since cri-api 1.36.2 (binary env values); JSON specs carry text,
    # so undecodable bytes travel as surrogate escapes and the executor encodes them back.
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value


def _hostname(sandbox_config: v1.PodSandboxConfig) -> str:
    import socket

    return sandbox_config.hostname or socket.gethostname()
