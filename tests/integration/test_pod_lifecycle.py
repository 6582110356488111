"""The whole slice through the real daemon, on runtime.v1 and runtime.v1alpha2: pull, run a pod,
create, start, exec, logs, stop, remove; and the errors bad input must get."""

from __future__ import annotations

import secrets
import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from cri.logs.cri_format import parse_line
from tests.support.daemon import CriClient


def pod_config(api: Any, log_dir: Path, name: str = "") -> Any:
    name = name or f"pod-{secrets.token_hex(3)}"
    return api.PodSandboxConfig(
        metadata=api.PodSandboxMetadata(
            name=name, namespace="test", uid=secrets.token_hex(8), attempt=0
        ),
        hostname=name,
        log_directory=str(log_dir),
        labels={"app": name},
        linux=api.LinuxPodSandboxConfig(),
    )


def container_config(api: Any, image: str, command: list[str], name: str = "app") -> Any:
    # kubelet asks for a PID namespace per container unless the pod shares one.
    namespaces = api.NamespaceOption(pid=api.CONTAINER)
    return api.ContainerConfig(
        metadata=api.ContainerMetadata(name=name),
        image=api.ImageSpec(image=image),
        command=command,
        log_path=f"{name}.log",
        labels={"role": name},
        linux=api.LinuxContainerConfig(
            security_context=api.LinuxContainerSecurityContext(namespace_options=namespaces)),
    )


def run_container(cri: CriClient, pod: Any, ctr: Any) -> str:
    """CreateContainer then StartContainer in the test pod; the container's id."""
    sandbox_id, config = pod
    container_id: str = cri.runtime.CreateContainer(cri.api.CreateContainerRequest(
        pod_sandbox_id=sandbox_id, sandbox_config=config, config=ctr)).container_id
    cri.runtime.StartContainer(cri.api.StartContainerRequest(container_id=container_id))
    return container_id


def code_of(call: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code()


def wait_for_state(cri: CriClient, container_id: str, state: int, timeout: float = 10) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        status = cri.runtime.ContainerStatus(
            cri.api.ContainerStatusRequest(container_id=container_id)
        ).status
        if status.state == state or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


@pytest.fixture
def pod(cri: CriClient, tmp_path: Path) -> Any:
    config = pod_config(cri.api, tmp_path)
    sandbox_id = cri.runtime.RunPodSandbox(
        cri.api.RunPodSandboxRequest(config=config)
    ).pod_sandbox_id
    yield sandbox_id, config
    cri.runtime.StopPodSandbox(cri.api.StopPodSandboxRequest(pod_sandbox_id=sandbox_id))
    cri.runtime.RemovePodSandbox(cri.api.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id))


def test_version_and_status(cri: CriClient) -> None:
    version = cri.runtime.Version(cri.api.VersionRequest())
    assert version.runtime_name == "cri-py"
    assert version.runtime_api_version == cri.version
    status = cri.runtime.Status(cri.api.StatusRequest(verbose=True)).status
    conditions = {c.type: c.status for c in status.conditions}
    assert conditions == {"RuntimeReady": True, "NetworkReady": True}


def test_runtime_config_reports_cgroupfs(cri: CriClient) -> None:
    if cri.version == "v1alpha2":
        # RuntimeConfig came with cri-api 1.28; the frozen alpha surface has no such RPC.
        assert not hasattr(cri.runtime, "RuntimeConfig")
        return
    response = cri.runtime.RuntimeConfig(cri.api.RuntimeConfigRequest())
    assert response.linux.cgroup_driver == cri.api.CGROUPFS


def test_image_pull_list_status_remove(cri: CriClient, busybox_ref: str) -> None:
    api = cri.api
    ref = cri.images.PullImage(api.PullImageRequest(image=api.ImageSpec(image=busybox_ref)))
    assert ref.image_ref.startswith("sha256:")
    listed = cri.images.ListImages(api.ListImagesRequest()).images
    assert any(busybox_ref in i.repo_tags for i in listed)
    status = cri.images.ImageStatus(api.ImageStatusRequest(image=api.ImageSpec(image=busybox_ref)))
    assert status.image.id == ref.image_ref and status.image.size > 0
    by_id = cri.images.ImageStatus(api.ImageStatusRequest(image=api.ImageSpec(image=ref.image_ref)))
    assert by_id.image.id == ref.image_ref
    missing = cri.images.ImageStatus(
        api.ImageStatusRequest(image=api.ImageSpec(image="127.0.0.1:1/nothing:here"))
    )
    assert not missing.HasField("image")
    pause = [i for i in listed if i.pinned]
    assert pause, "the built-in pause image is listed and pinned"


def test_pod_and_container_lifecycle(cri: CriClient, image: str, pod: Any, tmp_path: Path) -> None:
    api = cri.api
    sandbox_id, config = pod
    status = cri.runtime.PodSandboxStatus(api.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id))
    assert status.status.state == api.SANDBOX_READY
    assert status.status.metadata.name == config.metadata.name

    container_id = cri.runtime.CreateContainer(
        api.CreateContainerRequest(
            pod_sandbox_id=sandbox_id,
            sandbox_config=config,
            config=container_config(
                api, image, ["sh", "-c", "echo hello; echo oops >&2; exec sleep 1000"]
            ),
        )
    ).container_id
    created = cri.runtime.ContainerStatus(api.ContainerStatusRequest(container_id=container_id))
    assert created.status.state == api.CONTAINER_CREATED

    cri.runtime.StartContainer(api.StartContainerRequest(container_id=container_id))
    running = wait_for_state(cri, container_id, api.CONTAINER_RUNNING)
    assert running.state == api.CONTAINER_RUNNING and running.started_at > 0
    assert running.log_path == str(tmp_path / "app.log")

    result = cri.runtime.ExecSync(
        api.ExecSyncRequest(container_id=container_id, cmd=["echo", "hi"], timeout=10)
    )
    assert (result.stdout, result.exit_code) == (b"hi\n", 0)
    hostname = cri.runtime.ExecSync(
        api.ExecSyncRequest(container_id=container_id, cmd=["hostname"], timeout=10)
    )
    assert hostname.stdout.decode().strip() == config.hostname
    failing = cri.runtime.ExecSync(
        api.ExecSyncRequest(
            container_id=container_id, cmd=["sh", "-c", "echo bad >&2; exit 3"], timeout=10
        )
    )
    assert (failing.stderr, failing.exit_code) == (b"bad\n", 3)
    assert (
        code_of(
            lambda: cri.runtime.ExecSync(
                api.ExecSyncRequest(container_id=container_id, cmd=["sleep", "10"], timeout=1)
            )
        )
        == grpc.StatusCode.DEADLINE_EXCEEDED
    )

    lines = [
        parse_line(line) for line in (tmp_path / "app.log").read_bytes().splitlines(keepends=True)
    ]
    assert [(entry.stream, entry.content) for entry in lines] == [
        ("stdout", b"hello"),
        ("stderr", b"oops"),
    ]

    listed = cri.runtime.ListContainers(
        api.ListContainersRequest(
            filter=api.ContainerFilter(
                pod_sandbox_id=sandbox_id,
                state=api.ContainerStateValue(state=api.CONTAINER_RUNNING),
            )
        )
    )
    assert [c.id for c in listed.containers] == [container_id]
    by_prefix = cri.runtime.ContainerStatus(
        api.ContainerStatusRequest(container_id=container_id[:13])
    )
    assert by_prefix.status.id == container_id

    started = time.monotonic()
    cri.runtime.StopContainer(api.StopContainerRequest(container_id=container_id, timeout=2))
    assert time.monotonic() - started < 8
    exited = cri.runtime.ContainerStatus(api.ContainerStatusRequest(container_id=container_id))
    # sleep as PID 1 of its PID namespace ignores SIGTERM: the timeout's SIGKILL ends it.
    assert exited.status.state == api.CONTAINER_EXITED
    assert exited.status.exit_code == 137
    assert exited.status.finished_at >= exited.status.started_at

    cri.runtime.RemoveContainer(api.RemoveContainerRequest(container_id=container_id))
    assert (
        code_of(
            lambda: cri.runtime.ContainerStatus(
                api.ContainerStatusRequest(container_id=container_id)
            )
        )
        == grpc.StatusCode.NOT_FOUND
    )


def test_container_that_exits_on_its_own(cri: CriClient, image: str, pod: Any) -> None:
    api = cri.api
    sandbox_id, config = pod
    container_id = cri.runtime.CreateContainer(
        api.CreateContainerRequest(
            pod_sandbox_id=sandbox_id,
            sandbox_config=config,
            config=container_config(api, image, ["sh", "-c", "exit 7"], name="quick"),
        )
    ).container_id
    cri.runtime.StartContainer(api.StartContainerRequest(container_id=container_id))
    status = wait_for_state(cri, container_id, api.CONTAINER_EXITED)
    assert (status.state, status.exit_code, status.reason) == (api.CONTAINER_EXITED, 7, "Error")
    assert (
        code_of(
            lambda: cri.runtime.StartContainer(api.StartContainerRequest(container_id=container_id))
        )
        == grpc.StatusCode.FAILED_PRECONDITION
    )


def test_sandbox_list_filters_and_stop(cri: CriClient, pod: Any) -> None:
    api = cri.api
    sandbox_id, config = pod
    by_label = cri.runtime.ListPodSandbox(
        api.ListPodSandboxRequest(
            filter=api.PodSandboxFilter(label_selector={"app": config.metadata.name})
        )
    )
    assert [s.id for s in by_label.items] == [sandbox_id]
    none = cri.runtime.ListPodSandbox(
        api.ListPodSandboxRequest(filter=api.PodSandboxFilter(label_selector={"app": "nobody"}))
    )
    assert list(none.items) == []
    cri.runtime.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=sandbox_id))
    cri.runtime.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=sandbox_id))
    status = cri.runtime.PodSandboxStatus(api.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id))
    assert status.status.state == api.SANDBOX_NOTREADY
    not_ready = cri.runtime.ListPodSandbox(
        api.ListPodSandboxRequest(
            filter=api.PodSandboxFilter(state=api.PodSandboxStateValue(state=api.SANDBOX_READY))
        )
    )
    assert sandbox_id not in [s.id for s in not_ready.items]


def test_bad_input_gets_the_right_status(
    cri: CriClient, image: str, pod: Any, tmp_path: Path
) -> None:
    api = cri.api
    rt = cri.runtime
    sandbox_id, config = pod

    def create_status(ctr: Any, pod_id: str = sandbox_id) -> grpc.StatusCode:
        return code_of(
            lambda: rt.CreateContainer(
                api.CreateContainerRequest(pod_sandbox_id=pod_id, config=ctr, sandbox_config=config)
            )
        )

    assert (
        code_of(lambda: rt.PodSandboxStatus(api.PodSandboxStatusRequest(pod_sandbox_id="f" * 64)))
        == grpc.StatusCode.NOT_FOUND
    )
    assert (
        code_of(lambda: rt.ContainerStatus(api.ContainerStatusRequest(container_id="f" * 64)))
        == grpc.StatusCode.NOT_FOUND
    )
    assert (
        code_of(lambda: rt.StartContainer(api.StartContainerRequest(container_id="f" * 64)))
        == grpc.StatusCode.NOT_FOUND
    )
    assert (
        code_of(lambda: rt.ExecSync(api.ExecSyncRequest(container_id="f" * 64, cmd=["true"])))
        == grpc.StatusCode.NOT_FOUND
    )

    empty = api.PodSandboxConfig(metadata=api.PodSandboxMetadata(name="", namespace="x", uid="u"))
    assert (
        code_of(lambda: rt.RunPodSandbox(api.RunPodSandboxRequest(config=empty)))
        == grpc.StatusCode.INVALID_ARGUMENT
    )
    assert (
        code_of(lambda: rt.RunPodSandbox(api.RunPodSandboxRequest(config=config)))
        == grpc.StatusCode.ALREADY_EXISTS
    )

    ctr = container_config(api, image, ["sleep", "100"], name="twin")
    first = rt.CreateContainer(
        api.CreateContainerRequest(pod_sandbox_id=sandbox_id, config=ctr, sandbox_config=config)
    ).container_id
    assert create_status(ctr) == grpc.StatusCode.ALREADY_EXISTS
    rt.RemoveContainer(api.RemoveContainerRequest(container_id=first))

    missing = container_config(api, "127.0.0.1:1/not/pulled:1", ["true"], name="ghost")
    assert create_status(missing) == grpc.StatusCode.NOT_FOUND
    nameless = container_config(api, image, ["true"], name="")
    assert create_status(nameless) == grpc.StatusCode.INVALID_ARGUMENT
    assert create_status(ctr, "f" * 64) == grpc.StatusCode.NOT_FOUND
    # an AppArmor profile on a node without AppArmor fails rather than run unconfined
    from cri.oci.apparmor import is_enabled

    confined = container_config(api, image, ["true"], name="confined")
    confined.linux.security_context.apparmor_profile = "runtime/default"
    if not is_enabled():
        assert create_status(confined) == grpc.StatusCode.FAILED_PRECONDITION
    assert (
        code_of(
            lambda: cri.images.PullImage(
                api.PullImageRequest(image=api.ImageSpec(image="docker.io/library/BusyBox"))
            )
        )
        == grpc.StatusCode.INVALID_ARGUMENT
    )

    # Stop and remove are idempotent, also for ids that never existed (CRI contract).
    rt.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id="f" * 64))
    rt.RemovePodSandbox(api.RemovePodSandboxRequest(pod_sandbox_id="f" * 64))
    rt.StopContainer(api.StopContainerRequest(container_id="f" * 64))
    rt.RemoveContainer(api.RemoveContainerRequest(container_id="f" * 64))
    remaining = rt.ListContainers(
        api.ListContainersRequest(filter=api.ContainerFilter(pod_sandbox_id=sandbox_id))
    ).containers
    assert list(remaining) == []


def test_unimplemented_rpcs_say_so(cri_v1: CriClient) -> None:
    cri, api = cri_v1, cri_v1.api  # checkpointing is v1-only
    assert (
        code_of(lambda: cri.runtime.CheckpointContainer(api.CheckpointContainerRequest(
            container_id="x")))
        == grpc.StatusCode.UNIMPLEMENTED
    )


def test_reopen_log_after_rotation(cri: CriClient, image: str, pod: Any, tmp_path: Path) -> None:
    api = cri.api
    ticker = ["sh", "-c", "while true; do echo tick; sleep 0.1; done"]
    container_id = run_container(cri, pod, container_config(api, image, ticker, name="ticker"))
    log = tmp_path / "ticker.log"
    time.sleep(0.3)
    log.rename(tmp_path / "ticker.log.1")
    cri.runtime.ReopenContainerLog(api.ReopenContainerLogRequest(container_id=container_id))
    time.sleep(0.3)
    assert "stdout F tick" in log.read_text()
    cri.runtime.StopContainer(api.StopContainerRequest(container_id=container_id, timeout=0))
    assert code_of(lambda: cri.runtime.ReopenContainerLog(api.ReopenContainerLogRequest(
        container_id=container_id))) == grpc.StatusCode.FAILED_PRECONDITION


def test_removing_an_image_keeps_layers_of_running_containers(
        cri: CriClient, image: str, pod: Any) -> None:
    api = cri.api
    container_id = run_container(
        cri, pod, container_config(api, image, ["sleep", "1000"], name="keeper"))
    cri.images.RemoveImage(api.RemoveImageRequest(image=api.ImageSpec(image=image)))
    # A second removal runs the layer collection again, now with the image record gone.
    cri.images.RemoveImage(api.RemoveImageRequest(image=api.ImageSpec(image=image)))
    result = cri.runtime.ExecSync(api.ExecSyncRequest(container_id=container_id,
                                                      cmd=["ls", "/bin/sh"], timeout=10))
    assert (result.exit_code, result.stdout) == (0, b"/bin/sh\n")
    status = cri.runtime.ContainerStatus(api.ContainerStatusRequest(container_id=container_id))
    assert status.status.state == api.CONTAINER_RUNNING


def test_oom_killed_container_says_so(cri: CriClient, image: str, pod: Any) -> None:
    api = cri.api
    ctr = container_config(api, image, ["sh", "-c", "x=y; while true; do x=$x$x; done"],
                           name="hog")
    ctr.linux.resources.memory_limit_in_bytes = 16 * 1024 * 1024
    container_id = run_container(cri, pod, ctr)
    status = wait_for_state(cri, container_id, api.CONTAINER_EXITED, timeout=30)
    assert (status.exit_code, status.reason) == (137, "OOMKilled")


def test_container_with_a_terminal(cri: CriClient, image: str, pod: Any, tmp_path: Path) -> None:
    api = cri.api
    ctr = container_config(api, image, ["sh", "-c", "tty; echo in-a-tty; sleep 1000"],
                           name="console")
    ctr.tty = True
    ctr.stdin = True
    container_id = run_container(cri, pod, ctr)
    log = tmp_path / "console.log"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "in-a-tty" not in (
            log.read_text() if log.exists() else ""):
        time.sleep(0.05)
    contents = [parse_line(line) for line in log.read_bytes().splitlines(keepends=True)]
    # A terminal has one output stream, and turns "\n" into "\r\n".
    assert [(c.stream, c.content) for c in contents] == [
        ("stdout", b"/dev/pts/0\r"), ("stdout", b"in-a-tty\r")]
    result = cri.runtime.ExecSync(api.ExecSyncRequest(container_id=container_id,
                                                      cmd=["echo", "exec"], timeout=10))
    assert result.stdout == b"exec\n"
    cri.runtime.StopContainer(api.StopContainerRequest(container_id=container_id, timeout=0))


def test_update_container_resources(cri: CriClient, image: str, pod: Any) -> None:
    api = cri.api
    container_id = run_container(
        cri, pod, container_config(api, image, ["sleep", "1000"], name="resized"))
    cri.runtime.UpdateContainerResources(api.UpdateContainerResourcesRequest(
        container_id=container_id,
        linux=api.LinuxContainerResources(memory_limit_in_bytes=48 << 20, cpu_shares=300)))
    result = cri.runtime.ExecSync(api.ExecSyncRequest(container_id=container_id, cmd=[
        "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        "/sys/fs/cgroup/cpu/cpu.shares"], timeout=10))
    assert result.stdout.split() == [str(48 << 20).encode(), b"300"]
    status = cri.runtime.ContainerStatus(api.ContainerStatusRequest(container_id=container_id))
    limits = status.status.resources.linux
    assert (limits.memory_limit_in_bytes, limits.cpu_shares) == (48 << 20, 300)
    cri.runtime.StopContainer(api.StopContainerRequest(container_id=container_id, timeout=0))
    code = code_of(lambda: cri.runtime.UpdateContainerResources(
        api.UpdateContainerResourcesRequest(container_id=container_id,
                                            linux=api.LinuxContainerResources(cpu_shares=2))))
    assert code == grpc.StatusCode.FAILED_PRECONDITION


def _processes_running(argv: list[str]) -> int:
    wanted = ("\0".join(argv) + "\0").encode()
    count = 0
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cmdline").read_bytes() == wanted:
                count += 1
        except OSError:
            pass
    return count


@pytest.mark.parametrize("pid_namespace", ["CONTAINER", "POD"])
def test_stop_leaves_no_process_of_the_container(cri: CriClient, image: str, pod: Any,
                                                 pid_namespace: str) -> None:
    """No process of the container outlives StopContainer, whether it has a pid namespace of
    its own (the init alone is signalled: the kernel takes the rest with it) or shares the
    pod's (every process of its cgroup is)."""
    sleeper = ["sleep", str(100000 + secrets.randbelow(100000))]
    command = " ".join(sleeper)
    ctr = container_config(cri.api, image, ["sh", "-c", f"{command} & {command}"])
    ctr.linux.security_context.namespace_options.pid = getattr(cri.api, pid_namespace)
    container_id = run_container(cri, pod, ctr)
    deadline = time.monotonic() + 10
    while _processes_running(sleeper) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _processes_running(sleeper) == 2
    cri.runtime.StopContainer(cri.api.StopContainerRequest(container_id=container_id, timeout=0))
    status = cri.runtime.ContainerStatus(
        cri.api.ContainerStatusRequest(container_id=container_id)).status
    assert status.state == cri.api.CONTAINER_EXITED and status.exit_code == 137
    assert _processes_running(sleeper) == 0
