"""RunPodSandbox: reserve the name, then network namespace, shm, pod files, rootfs, pause task.

Every step registers its undo on an ExitStack; only full success keeps them (`pop_all`), so a
failure at any step leaves no mount, namespace, cgroup, process or record behind.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import socket
import time
from concurrent.futures import Future
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from cri.api.runtime.v1 import api_pb2 as v1
from cri.background import in_background
from cri.config import BUILTIN_PAUSE_IMAGE
from cri.errors import FailedPrecondition, Internal, InvalidArgument, NotFound
from cri.image import Image
from cri.network import create_netns, remove_netns
from cri.network.cni import PluginError
from cri.network.manager import NetworkNotReady, capabilities
from cri.sandbox.model import READY, Sandbox, SandboxStatus, sandbox_name
from cri.spec import SandboxSpecInput, sandbox_spec
from cri.spec.userns import pod_mappings
from cri.spec.userns import prepare_rootfs as prepare_userns_rootfs
from cri.storage import RootfsLayout, mount_rootfs, unmount_rootfs
from cri.storage.mounts import mount, unmount
from cri.task import TaskRunner
from cri.task.runner import pid_start_time

if TYPE_CHECKING:
    from cri.sandbox.service import SandboxService

log = logging.getLogger(__name__)

SHM_SIZE = 64 * 1024 * 1024


def validate(config: v1.PodSandboxConfig) -> None:
    md = config.metadata
    for field, value in (("name", md.name), ("namespace", md.namespace), ("uid", md.uid)):
        if not value:
            raise InvalidArgument(f"sandbox config metadata.{field} must not be empty")
        if "/" in value or "\x00" in value:
            raise InvalidArgument(f"sandbox config metadata.{field} {value!r} is malformed")
    opts = config.linux.security_context.namespace_options
    pod_mappings(opts)
    for key in config.linux.sysctls:
        check_sysctl(key, host_network=opts.network == v1.NODE, host_ipc=opts.ipc == v1.NODE)
    try:
        capabilities(config, "")
    except ValueError as exc:
        raise InvalidArgument(f"bandwidth annotation: {exc}") from None


_IPC_SYSCTLS = ("kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced",
                "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem")


def check_sysctl(key: str, *, host_network: bool, host_ipc: bool) -> None:
    """Only sysctls the pod's own namespaces hold (kubelet's safe and unsafe lists alike):
    net.* in its network namespace, the SysV IPC and mqueue ones in its IPC namespace."""
    name = key.replace("/", ".")
    if name.startswith("net."):
        if host_network:
            raise InvalidArgument(f"sysctl {key} would change the node's network namespace "
                                  "(the pod uses the host network)")
        return
    if name in _IPC_SYSCTLS or name.startswith("fs.mqueue."):
        if host_ipc:
            raise InvalidArgument(f"sysctl {key} would change the node's IPC namespace "
                                  "(the pod uses the host IPC)")
        return
    raise InvalidArgument(f"sysctl {key} is not namespaced: it would change the whole node")


def sandbox_image(svc: SandboxService) -> Image:
    ref = svc.config.sandbox_image
    image = svc.images.get(ref)
    if image is not None:
        return image
    if ref == BUILTIN_PAUSE_IMAGE:
        raise NotFound("the built-in pause image is not registered: no pause binary was found "
                       "(reinstall the package, or set pause_binary or sandbox_image)")
    return svc.images.pull(ref, pinned=True)


def write_pod_files(data_dir: Path, config: v1.PodSandboxConfig, hostname: str,
                    host_network: bool) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "hostname").write_text(hostname + "\n")
    if host_network:
        shutil.copyfile("/etc/hosts", data_dir / "hosts")
    else:
        (data_dir / "hosts").write_text(
            "127.0.0.1\tlocalhost\n"
            "::1\tlocalhost ip6-localhost ip6-loopback\n"
            "fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\n"
            "fe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n"
        )
    dns = config.dns_config
    if dns.servers or dns.searches or dns.options:
        lines = [f"search {' '.join(dns.searches)}"] if dns.searches else []
        lines += [f"nameserver {server}" for server in dns.servers]
        if dns.options:
            lines.append(f"options {' '.join(dns.options)}")
        (data_dir / "resolv.conf").write_text("\n".join(lines) + "\n")
    elif os.path.exists("/etc/resolv.conf"):
        shutil.copyfile("/etc/resolv.conf", data_dir / "resolv.conf")
    else:
        (data_dir / "resolv.conf").write_text("")


def setup_network(svc: SandboxService, sandbox: Sandbox, state_dir: Path) -> tuple[str, ...]:
    if not svc.network.uses_cni:
        return ()
    try:
        return svc.network.setup(sandbox.id, sandbox.netns_path, sandbox.config, state_dir)
    except NetworkNotReady as exc:
        raise FailedPrecondition(f"the pod network is not ready: {exc}") from None
    except PluginError as exc:
        raise Internal(f"setting up the pod network: {exc}") from None


def _network_in_parallel(svc: SandboxService, config: v1.PodSandboxConfig) -> bool:
    """Whether the network's ADD may run beside the pause container's creation: with CNI, a
    network that is ready (checked first: a pod the network cannot take makes no container),
    and no net.* sysctls, which the executor applies at creation and which may name the
    interfaces the ADD makes (net.ipv4.conf.eth0.*)."""
    if not svc.network.uses_cni:
        return False
    try:
        svc.network.current()
    except NetworkNotReady as exc:
        raise FailedPrecondition(f"the pod network is not ready: {exc}") from None
    return not any(key.replace("/", ".").startswith("net.") for key in config.linux.sysctls)


def _teardown_after(network: Future[tuple[str, ...]], svc: SandboxService, sandbox_id: str,
                    state_dir: Path) -> None:
    if network.exception() is None:  # a failed ADD has deleted what it made, as it can
        svc.network.teardown(sandbox_id, state_dir)


def run_sandbox(svc: SandboxService, config: v1.PodSandboxConfig, runtime_handler: str) -> str:
    validate(config)
    try:
        handler = svc.config.handler(runtime_handler)
    except KeyError:
        raise InvalidArgument(f"no runtime handler {runtime_handler!r} is configured") from None
    image = sandbox_image(svc)
    sandbox_id = secrets.token_hex(32)
    opts = config.linux.security_context.namespace_options
    host_network = opts.network == v1.NODE
    parent = config.linux.cgroup_parent or svc.config.cgroup_parent
    sandbox = Sandbox(
        id=sandbox_id,
        name=sandbox_name(config.metadata),
        config=config,
        runtime_handler=runtime_handler,
        created_at=time.time_ns(),
        netns_path="" if host_network else str(svc.paths.netns(sandbox_id)),
        cgroups_path=f"{parent.rstrip('/')}/{sandbox_id}",
        image_id=image.id,
        image_layers=image.chain_ids,
        status=SandboxStatus(),
    )
    data_dir = svc.paths.sandbox_data(sandbox_id)
    state_dir = svc.paths.sandbox_state(sandbox_id)
    runner = TaskRunner(svc.paths.oci_root, handler, svc.shim_server)
    with ExitStack() as undo:
        svc.store.reserve(sandbox)
        undo.callback(svc.store.release, sandbox_id)
        undo.callback(shutil.rmtree, data_dir, ignore_errors=True)
        undo.callback(shutil.rmtree, state_dir, ignore_errors=True)
        state_dir.mkdir(parents=True)

        network: Future[tuple[str, ...]] | None = None
        ips: tuple[str, ...] = ()
        if not host_network:
            create_netns(Path(sandbox.netns_path))
            undo.callback(remove_netns, Path(sandbox.netns_path))
            if _network_in_parallel(svc, config):
                # NOTE: the CNI chain (30 ms and more of plugins) runs while the pause container
                # is made: the pause needs only the pinned namespace, not what is in it. Undone
                # after the ADD has finished, whichever way it went.
                network = in_background("pod-network", setup_network, svc, sandbox, state_dir)
                undo.callback(_teardown_after, network, svc, sandbox_id, state_dir)
            else:
                ips = setup_network(svc, sandbox, state_dir)
                undo.callback(svc.network.teardown, sandbox_id, state_dir)

        shm_dir: Path | None = None
        if opts.ipc != v1.NODE:
            shm_dir = state_dir / "shm"
            shm_dir.mkdir()
            mount("shm", shm_dir, "tmpfs", 0x2 | 0x4 | 0x8,  # nosuid, nodev, noexec
                  f"mode=1777,size={SHM_SIZE}")
            undo.callback(unmount, shm_dir)

        hostname = config.hostname or socket.gethostname()
        write_pod_files(data_dir, config, hostname, host_network)

        layout = RootfsLayout(data_dir=data_dir / "rootfs", mount_point=state_dir / "rootfs")
        rootfs = mount_rootfs(layout, svc.images.layer_dirs(image))
        undo.callback(unmount_rootfs, layout)

        spec = sandbox_spec(SandboxSpecInput(
            sandbox_id=sandbox_id, config=config, image=image.config, rootfs=rootfs,
            hostname=hostname, netns_path=sandbox.netns_path, shm_dir=shm_dir,
            cgroups_path=sandbox.cgroups_path,
        ))
        if "uidMappings" in spec["linux"]:
            prepare_userns_rootfs(rootfs, spec)
        (state_dir / "config.json").write_text(json.dumps(spec))  # compact, as create.py

        pid = runner.create_and_start(sandbox_id, state_dir, state_dir / "task", log_path=None)
        undo.callback(runner.delete, sandbox_id, force=True)
        if network is not None:
            ips = network.result()

        start = pid_start_time(pid)
        status = svc.store.update_status(
            sandbox_id, lambda s: SandboxStatus(state=READY, pid=pid, pid_start=start, ips=ips))
        undo.pop_all()
    svc.watch_exit(replace(sandbox, status=status))
    log.info("sandbox %s (%s) ready, pause pid %d", sandbox_id, sandbox.name, pid)
    return sandbox_id
