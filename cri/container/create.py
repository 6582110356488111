"""CreateContainer: reserve the name, mount the rootfs, write the OCI bundle. Nothing runs yet:
the task is created at StartContainer, so a container that is never started holds no process."""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from collections.abc import Mapping
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cri import handler_features
from cri.api.runtime.v1 import api_pb2 as v1
from cri.container.image_volumes import mount_image_volumes
from cri.container.model import Container, ContainerStatus, container_name
from cri.container.start import begin_task
from cri.errors import FailedPrecondition, InvalidArgument, NotFound
from cri.sandbox import READY
from cri.spec import ContainerSpecInput, container_spec
from cri.spec.users import secure_join
from cri.storage import mount_rootfs, unmount_rootfs
from cri.storage.rootfs import mount_idmapped_rootfs

if TYPE_CHECKING:
    from cri.container.service import ContainerService

log = logging.getLogger(__name__)


def log_path_of(sandbox_config: v1.PodSandboxConfig, config: v1.ContainerConfig) -> str:
    """kubelet gives a directory per pod and a path relative to it per container."""
    if not config.log_path:
        return ""
    if sandbox_config.log_directory:
        return str(Path(sandbox_config.log_directory) / config.log_path)
    if config.log_path.startswith("/"):
        return config.log_path
    raise InvalidArgument("log_path is relative but the sandbox has no log_directory")


def create_container(svc: ContainerService, sandbox_id: str, config: v1.ContainerConfig,
                     sandbox_config: v1.PodSandboxConfig) -> str:
    if not config.metadata.name:
        raise InvalidArgument("container config metadata.name must not be empty")
    if "/" in config.metadata.name:
        raise InvalidArgument(f"container name {config.metadata.name!r} is malformed")
    if not config.image.image:
        raise InvalidArgument("container config image.image must not be empty")
    sandbox = svc.sandboxes.get(sandbox_id)
    if sandbox.status.state != READY:
        raise FailedPrecondition(f"sandbox {sandbox.id} is not ready")
    check_recursive_read_only(svc, sandbox.runtime_handler, config)
    image = svc.images.get(config.image.image)
    if image is None:
        raise NotFound(f"image {config.image.image!r} not found: pull it first")
    # kubelet sends the sandbox config again; the recorded one is the truth.
    pod_config = sandbox.config
    container_id = secrets.token_hex(32)
    container = Container(
        id=container_id,
        name=container_name(config.metadata, pod_config.metadata),
        sandbox_id=sandbox.id,
        config=config,
        image_ref=config.image.image,
        image_id=image.id,
        image_layers=image.chain_ids,
        created_at=time.time_ns(),
        log_path=log_path_of(pod_config, config),
        runtime_handler=sandbox.runtime_handler,
        status=ContainerStatus(),
    )
    state_dir = svc.paths.container_state(container_id)
    layout = svc.rootfs_layout(container_id)
    config = v1.ContainerConfig.FromString(config.SerializeToString())  # ours to annotate
    with ExitStack() as undo:
        state_dir.mkdir(parents=True)
        undo.callback(_rmtree, state_dir)
        volumes = mount_image_volumes(svc, container_id, config, undo)
        container = replace(container, config=config,
                            image_layers=container.image_layers + volumes.layers)
        svc.store.reserve(container)
        undo.callback(svc.store.release, container_id)
        pod_env = svc.sandboxes.pod_environment(sandbox)
        if pod_env.userns is not None:
            root_uid = pod_env.userns["uidMappings"][0]["hostID"]
            root_gid = pod_env.userns["gidMappings"][0]["hostID"]
            rootfs = mount_idmapped_rootfs(layout, svc.images.layer_dirs(image),
                                           Path(f"/proc/{sandbox.status.pid}/ns/user"),
                                           root_uid, root_gid)
        else:
            rootfs = mount_rootfs(layout, svc.images.layer_dirs(image))
        undo.callback(unmount_rootfs, layout)
        target_pid = None
        if config.linux.security_context.namespace_options.pid == v1.TARGET:
            target = svc.get(config.linux.security_context.namespace_options.target_id)
            target_pid = target.status.pid
        spec = container_spec(ContainerSpecInput(
            container_id=container_id,
            config=config,
            sandbox_config=pod_config,
            image=image.config,
            rootfs=rootfs,
            pod=pod_env,
            cgroups_path=sandbox.container_cgroups_path(container_id),
            target_pid=target_pid,
            image_volumes=volumes.sources,
        ))
        make_working_dir(rootfs, spec["process"], pod_env.userns)
        # NOTE: compact: json indents in pure Python, 350 µs for this spec against 80 without
        (state_dir / "config.json").write_text(json.dumps(spec))
        undo.pop_all()
    svc.store.announce_created(container)
    if svc.config.create_tasks_early:
        begin_task(svc, container)
    log.info("container %s (%s) created in sandbox %s", container_id, container.name, sandbox.id)
    return container_id


def check_recursive_read_only(svc: ContainerService, handler_name: str,
                              config: v1.ContainerConfig) -> None:
    """containerd's rules: a recursive read-only mount is read-only, private, and only asked of
    a handler that can make one."""
    for m in config.mounts:
        if not m.recursive_read_only:
            continue
        if not m.readonly:
            raise InvalidArgument(f"mount {m.container_path!r}: recursive_read_only needs "
                                  "readonly")
        if m.propagation != v1.PROPAGATION_PRIVATE:
            raise InvalidArgument(f"mount {m.container_path!r}: recursive_read_only needs "
                                  "private propagation (a propagated mount could not stay "
                                  "read-only)")
        try:
            handler = svc.config.handler(handler_name)
        except KeyError:
            handler = svc.config.handler("")
        if not handler_features.recursive_read_only(handler):
            raise InvalidArgument(f"mount {m.container_path!r}: runtime handler "
                                  f"{handler_name!r} cannot make recursive read-only mounts")


def make_working_dir(rootfs: Path, process: dict[str, Any],
                     userns: Mapping[str, Any] | None = None) -> None:
    """A workingDir the image lacks is made in the container's writable layer, owned by the
    container's user, as CRI-O does: pod specs name directories their images never had, and a
    non-root process must be able to write in its own working directory. (The OCI runtime would
    make it too, but root's.)"""
    cwd = secure_join(rootfs, process["cwd"])
    if cwd.exists() or cwd.is_symlink():
        return
    try:
        cwd.mkdir(mode=0o755, parents=True)
        uid, gid = process["user"]["uid"], process["user"]["gid"]
        if userns is not None:  # the host ids that the container's ids are
            uid += userns["uidMappings"][0]["hostID"]
            gid += userns["gidMappings"][0]["hostID"]
        os.chown(cwd, uid, gid)
    except OSError as e:
        raise InvalidArgument(f"working_dir {process['cwd']!r}: cannot create it in the "
                              f"container's root filesystem: {e.strerror}") from None


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
