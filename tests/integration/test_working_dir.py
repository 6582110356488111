"""workingDir as pod specs use it (a directory the image never had is made, the user's), and
a container whose own config cannot run: a clear FailedPrecondition, and EXITED with StartError."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from tests.integration.test_pod_lifecycle import (
    container_config,
    pod_config,
    run_container,
    wait_for_state,
)
from tests.support.daemon import CriClient


def test_a_missing_working_dir_is_made_for_the_user(cri: CriClient, image: str,
                                                    tmp_path: Path) -> None:
    api = cri.api
    config = pod_config(api, tmp_path)
    sandbox_id = cri.runtime.RunPodSandbox(api.RunPodSandboxRequest(config=config)).pod_sandbox_id
    try:
        ctr = container_config(api, image, ["sh", "-c", "pwd; stat -c '%u:%g %a' .; touch x && "
                                            "echo wrote"])
        ctr.working_dir = "/srv/app/data"
        ctr.linux.security_context.run_as_user.value = 1000
        ctr.linux.security_context.run_as_group.value = 1000
        container_id = run_container(cri, (sandbox_id, config), ctr)
        status = wait_for_state(cri, container_id, api.CONTAINER_EXITED)
        assert (status.state, status.exit_code) == (api.CONTAINER_EXITED, 0)
        out = [line.split(" ", 3)[3] for line in (tmp_path / "app.log").read_text().splitlines()]
        assert out == ["/srv/app/data", "1000:1000 755", "wrote"]
    finally:
        cri.runtime.RemovePodSandbox(api.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id))


@pytest.mark.parametrize(("working_dir", "command", "said"), [
    ("/bin/sh", ["true"], "cwd '/bin/sh'"),
    ("", ["/no/such/program"], "/no/such/program"),
])
def test_a_container_that_cannot_run_fails_to_start_and_says_why(
        cri: CriClient, image: str, tmp_path: Path, working_dir: str, command: list[str],
        said: str) -> None:
    api = cri.api
    config = pod_config(api, tmp_path)
    sandbox_id = cri.runtime.RunPodSandbox(api.RunPodSandboxRequest(config=config)).pod_sandbox_id
    try:
        ctr = container_config(api, image, command)
        ctr.working_dir = working_dir
        container_id = cri.runtime.CreateContainer(api.CreateContainerRequest(
            pod_sandbox_id=sandbox_id, sandbox_config=config, config=ctr)).container_id
        with pytest.raises(grpc.RpcError) as info:
            cri.runtime.StartContainer(api.StartContainerRequest(container_id=container_id))
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert said in info.value.details()
        assert "Traceback" not in info.value.details()
        status = cri.runtime.ContainerStatus(
            api.ContainerStatusRequest(container_id=container_id)).status
        assert (status.state, status.reason) == (api.CONTAINER_EXITED, "StartError")
        assert said in status.message
    finally:
        cri.runtime.RemovePodSandbox(api.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id))
