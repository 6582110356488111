"""The daemon's shim fork server (cri/shim/forkserver.py) as the daemon uses it: one per daemon,
replaced when it dies (pods start cold meanwhile), gone when the daemon stops."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from cri.oci.statefile import proc_stat
from tests.integration.test_pod_lifecycle import container_config, pod_config
from tests.integration.test_shim import wait_for
from tests.support.daemon import CriClient, DaemonProcess, running_daemon


def fork_servers(daemon: DaemonProcess) -> list[int]:
    assert daemon.proc is not None
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == daemon.proc.pid and b"--fork-server" in cmdline and stat[0] != "Z":
            found.append(int(entry.name))
    return found


def run_container(cri: CriClient, image: str, tmp_path: Path) -> tuple[str, str]:
    api = cri.api
    config = pod_config(api, tmp_path)
    pod = cri.runtime.RunPodSandbox(api.RunPodSandboxRequest(config=config)).pod_sandbox_id
    cid = cri.runtime.CreateContainer(api.CreateContainerRequest(
        pod_sandbox_id=pod, sandbox_config=config,
        config=container_config(api, image, ["sleep", "3600"]))).container_id
    cri.runtime.StartContainer(api.StartContainerRequest(container_id=cid))
    reply = cri.runtime.ExecSync(api.ExecSyncRequest(container_id=cid, cmd=["echo", "hi"],
                                                     timeout=10))
    assert (reply.exit_code, reply.stdout) == (0, b"hi\n")
    return pod, cid


def test_one_server_replaced_when_it_dies_and_gone_with_the_daemon(
        pause_binary: Path, busybox_ref: str, tmp_path: Path) -> None:
    with running_daemon(pause_binary) as daemon:
        cri = CriClient(daemon.socket)
        try:
            cri.images.PullImage(cri.api.PullImageRequest(
                image=cri.api.ImageSpec(image=busybox_ref)))
            (server,) = wait_for(lambda: fork_servers(daemon), 30.0)
            run_container(cri, busybox_ref, tmp_path / "a")
            os.kill(server, signal.SIGKILL)
            # the next start finds it gone, starts its shim cold, and a new server comes up
            pod, _ = run_container(cri, busybox_ref, tmp_path / "b")
            (replacement,) = wait_for(
                lambda: [p for p in fork_servers(daemon) if p != server], 30.0)
            run_container(cri, busybox_ref, tmp_path / "c")
            assert fork_servers(daemon) == [replacement]
            cri.runtime.StopPodSandbox(cri.api.StopPodSandboxRequest(pod_sandbox_id=pod))
        finally:
            cri.close()
        daemon.stop()
        assert not Path(f"/proc/{replacement}").exists() or \
            Path(f"/proc/{replacement}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"


def test_without_the_server_every_shim_starts_cold(pause_binary: Path, busybox_ref: str,
                                                   tmp_path: Path) -> None:
    with running_daemon(pause_binary, "shim_fork_server = false\n") as daemon:
        cri = CriClient(daemon.socket)
        try:
            cri.images.PullImage(cri.api.PullImageRequest(
                image=cri.api.ImageSpec(image=busybox_ref)))
            run_container(cri, busybox_ref, tmp_path)
            assert fork_servers(daemon) == []
        finally:
            cri.close()


def children(pid: int) -> list[tuple[int, str]]:
    """`pid`'s children, each with its state letter (Z: a zombie nobody reaped)."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in map(int, (task / "children").read_text().split()):
            stat = proc_stat(child)
            if stat is not None:  # else reaped meanwhile
                out.append((child, stat[0]))
    return out


def shim_pids(daemon: DaemonProcess) -> set[int]:
    return {int(p.read_text()) for p in daemon.state.glob("**/shim.pid")
            if "trash" not in p.parts}


def settles_to(server: int, expected: set[int]) -> None:
    """Wait until the server's children are exactly `expected`, none of them a zombie."""
    def settled() -> bool:
        return sorted(children(server)) == sorted((p, "S") for p in expected)

    assert wait_for(settled, 10.0), f"children {children(server)}, expected {expected}"


def test_the_server_is_the_parent_of_its_shims_and_reaps_every_fork(
        pause_binary: Path, busybox_ref: str, tmp_path: Path) -> None:
    # Its forks run on themselves (a shim, an exec's command line): none is left a zombie, and
    # what remains under the server is exactly the shims of what still runs.
    with running_daemon(pause_binary) as daemon:
        cri = CriClient(daemon.socket)
        try:
            api = cri.api
            cri.images.PullImage(api.PullImageRequest(image=api.ImageSpec(image=busybox_ref)))
            (server,) = wait_for(lambda: fork_servers(daemon), 30.0)
            pod, cid = run_container(cri, busybox_ref, tmp_path)
            for _ in range(5):
                reply = cri.runtime.ExecSync(api.ExecSyncRequest(container_id=cid,
                                                                 cmd=["true"], timeout=10))
                assert reply.exit_code == 0
            running = shim_pids(daemon)
            assert len(running) == 2  # the pause container's and the container's
            settles_to(server, running)
            cri.runtime.StopContainer(api.StopContainerRequest(container_id=cid, timeout=0))
            cri.runtime.RemoveContainer(api.RemoveContainerRequest(container_id=cid))
            (pause_shim,) = shim_pids(daemon)
            settles_to(server, {pause_shim})
            cri.runtime.StopPodSandbox(api.StopPodSandboxRequest(pod_sandbox_id=pod))
            cri.runtime.RemovePodSandbox(api.RemovePodSandboxRequest(pod_sandbox_id=pod))
            settles_to(server, set())
        finally:
            cri.close()
