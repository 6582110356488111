"""Pod user namespaces (NamespaceOption.userns_options): the pause container makes one with
the kubelet's mapping, the pod's containers and their execs join it; what cannot be done is
refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.integration.test_pod_lifecycle import (
    code_of,
    container_config,
    pod_config,
    wait_for_state,
)
from tests.support.daemon import CriClient

HOST_ID = 200000


@pytest.fixture
def cri(cri_v1: CriClient) -> CriClient:
    return cri_v1


def userns_pod(cri: CriClient, tmp_path: Path, **userns: Any) -> Any:
    api = cri.api
    config = pod_config(api, tmp_path)
    opts = config.linux.security_context.namespace_options
    mapping = [api.IDMapping(container_id=0, host_id=HOST_ID, length=65536)]
    opts.userns_options.CopyFrom(api.UserNamespace(
        mode=userns.get("mode", api.POD), uids=userns.get("uids", mapping),
        gids=userns.get("gids", mapping)))
    if userns.get("host_network"):
        opts.network = api.NODE
    return config


def test_a_pod_runs_in_its_own_user_namespace(cri: CriClient, image: str,
                                              tmp_path: Path) -> None:
    api = cri.api
    handlers = {h.name: h.features.user_namespaces
                for h in cri.runtime.Status(api.StatusRequest()).runtime_handlers}
    assert handlers[""] is True
    config = userns_pod(cri, tmp_path)
    sandbox_id = cri.runtime.RunPodSandbox(api.RunPodSandboxRequest(
        config=config)).pod_sandbox_id
    try:
        ctr = container_config(api, image, ["sleep", "3600"])
        ctr.linux.security_context.namespace_options.CopyFrom(
            config.linux.security_context.namespace_options)
        container_id = cri.runtime.CreateContainer(api.CreateContainerRequest(
            pod_sandbox_id=sandbox_id, sandbox_config=config, config=ctr)).container_id
        cri.runtime.StartContainer(api.StartContainerRequest(container_id=container_id))
        result = cri.runtime.ExecSync(api.ExecSyncRequest(
            container_id=container_id, timeout=10,
            cmd=["sh", "-c", "cat /proc/self/uid_map; id -u; touch /made-by-root && echo ok; "
                             "stat -c %u /bin/busybox /etc/passwd; echo x >> /etc/passwd && "
                             "echo writable"]))
        lines = result.stdout.decode().split("\n")
        assert lines[0].split() == ["0", str(HOST_ID), "65536"]
        # the image's files are root's inside (idmapped layers), and root may change them
        assert lines[1:6] == ["0", "ok", "0", "0", "writable"], result
        pid = int(cri.runtime.ContainerStatus(api.ContainerStatusRequest(
            container_id=container_id, verbose=True)).info["info"].split('"pid": ')[1]
                  .split(",")[0])
        uids = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                    if line.startswith("Uid:"))
        assert uids.split()[1:] == [str(HOST_ID)] * 4  # an unprivileged uid on the host
        sandbox_pid = cri.runtime.PodSandboxStatus(api.PodSandboxStatusRequest(
            pod_sandbox_id=sandbox_id, verbose=True)).info["info"]
        pause = int(sandbox_pid.split('"pid": ')[1].split(",")[0])
        assert Path(f"/proc/{pid}/ns/user").readlink() == Path(f"/proc/{pause}/ns/user").readlink()
        cri.runtime.StopContainer(api.StopContainerRequest(container_id=container_id, timeout=0))
        wait_for_state(cri, container_id, api.CONTAINER_EXITED)
    finally:
        cri.runtime.RemovePodSandbox(api.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id))


def test_what_cannot_be_done_is_refused(cri: CriClient, tmp_path: Path) -> None:
    api = cri.api
    two = [api.IDMapping(container_id=0, host_id=HOST_ID, length=10),
           api.IDMapping(container_id=10, host_id=HOST_ID + 10, length=10)]
    no_root = [api.IDMapping(container_id=1, host_id=HOST_ID, length=10)]
    for fields in ({"uids": two}, {"gids": no_root}, {"mode": api.CONTAINER},
                   {"mode": api.TARGET}, {"host_network": True}):
        config = userns_pod(cri, tmp_path, **fields)
        assert code_of(lambda c=config: cri.runtime.RunPodSandbox(
            api.RunPodSandboxRequest(config=c))) == grpc.StatusCode.INVALID_ARGUMENT, fields
    assert list(cri.runtime.ListPodSandbox(api.ListPodSandboxRequest()).items) == []
