"""Exec, attach and port-forward through the streaming server, with independent clients: the
`kubernetes` package's WebSocket client, and the tests' SPDY client (tests/support/spdy_client).
Exec runs on the in-tree executor and on runc, which share the OCI command line contract."""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from kubernetes.client import Configuration
from kubernetes.stream import ws_client

from cri.streaming import websocket
from tests.integration.test_pod_lifecycle import (
    code_of,
    container_config,
    pod_config,
    wait_for_state,
)
from tests.support import spdy_client
from tests.support.daemon import CriClient, DaemonProcess, running_daemon

RUNC = shutil.which("runc")
IDLE_TIMEOUT = 4
CREATION_TIMEOUT = 2


@pytest.fixture(scope="module")
def daemon(pause_binary: Path) -> Iterator[DaemonProcess]:
    config = (f"stream_idle_timeout = {IDLE_TIMEOUT}\n"
              f"stream_creation_timeout = {CREATION_TIMEOUT}\n")
    if RUNC:
        config += f'[runtimes.runc]\nbinary = "{RUNC}"\n'
    with running_daemon(pause_binary, config) as process:
        yield process


@pytest.fixture
def cri(cri_v1: CriClient) -> CriClient:
    return cri_v1  # the URLs are the same on both versions; the alpha surface is glue


@pytest.fixture
def pod(cri: CriClient, image: str, tmp_path: Path) -> Iterator[Any]:
    pods: list[str] = []

    def make(handler: str = "") -> tuple[str, Any]:
        if handler and RUNC is None:
            pytest.fail("runc is not installed: tests/install-and-run.sh installs it")
        config = pod_config(cri.api, tmp_path)
        sandbox_id = cri.runtime.RunPodSandbox(cri.api.RunPodSandboxRequest(
            config=config, runtime_handler=handler)).pod_sandbox_id
        pods.append(sandbox_id)
        return sandbox_id, config

    yield make
    for sandbox_id in pods:
        cri.runtime.RemovePodSandbox(cri.api.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id))


def start(cri: CriClient, pod: Any, image: str, command: list[str], *, handler: str = "",
          stdin: bool = False, stdin_once: bool = False, tty: bool = False) -> str:
    sandbox_id, config = pod(handler)
    ctr = container_config(cri.api, image, command)
    ctr.stdin, ctr.stdin_once, ctr.tty = stdin, stdin_once, tty
    container_id = cri.runtime.CreateContainer(cri.api.CreateContainerRequest(
        pod_sandbox_id=sandbox_id, sandbox_config=config, config=ctr)).container_id
    cri.runtime.StartContainer(cri.api.StartContainerRequest(container_id=container_id))
    return container_id


@pytest.fixture(params=["", "runc"])
def sleeper(request: pytest.FixtureRequest, cri: CriClient, pod: Any, image: str) -> str:
    return start(cri, pod, image, ["sleep", "3600"], handler=request.param)


def exec_url(cri: CriClient, container_id: str, cmd: list[str], **streams: bool) -> str:
    options = {"stdout": True, **streams}
    return cri.runtime.Exec(cri.api.ExecRequest(container_id=container_id, cmd=cmd,
                                                **options)).url


def attach_url(cri: CriClient, container_id: str, **streams: bool) -> str:
    return cri.runtime.Attach(cri.api.AttachRequest(container_id=container_id,
                                                    **streams)).url


def ws(url: str, protocol: str | None = None) -> ws_client.WSClient:
    headers = {"sec-websocket-protocol": protocol} if protocol else None
    return ws_client.WSClient(Configuration(), url.replace("http://", "ws://"), headers,
                              capture_all=False, binary=True)


# --- exec ---------------------------------------------------------------------------------------


def test_exec_over_spdy_separates_streams_and_reports_the_exit_code(cri: CriClient,
                                                                   sleeper: str) -> None:
    url = exec_url(cri, sleeper, ["sh", "-c", "echo out; echo err >&2; exit 3"], stderr=True)
    assert url.startswith("http://127.0.0.1:")
    command = spdy_client.Command.start(url, stderr=True)
    status = command.finish()
    assert (command.output("stdout"), command.output("stderr")) == (b"out\n", b"err\n")
    assert spdy_client.exit_code(status) == 3
    command.close()


def test_exec_stdin_reaches_eof(cri: CriClient, sleeper: str) -> None:
    url = exec_url(cri, sleeper, ["sh", "-c", "cat; echo done"], stdin=True)
    command = spdy_client.Command.start(url, stdin=True)
    command.write(b"line one\n")
    command.wait_output("stdout", b"line one\n")
    command.write(b"tail", close=True)  # half-close: cat sees EOF
    assert spdy_client.exit_code(command.finish()) == 0
    assert command.output() == b"line one\ntaildone\n"
    command.close()


def test_exec_with_a_terminal_follows_resizes(cri: CriClient, sleeper: str) -> None:
    url = exec_url(cri, sleeper, ["sh"], stdin=True, tty=True)
    command = spdy_client.Command.start(url, stdin=True, tty=True)
    command.resize(123, 45)
    time.sleep(0.3)  # the size travels through SIGWINCH; the shell reads it when asked
    command.write(b"[ -t 0 ] && echo is-a-tty; stty size\n")
    command.wait_output("stdout", b"45 123")
    command.resize(70, 20)
    time.sleep(0.3)
    command.write(b"stty size; exit 7\n")
    command.wait_output("stdout", b"20 70")
    assert spdy_client.exit_code(command.finish()) == 7
    assert b"is-a-tty" in command.output()
    command.close()


@pytest.mark.parametrize("protocol", ["v3.channel.k8s.io", "v2.channel.k8s.io",
                                      "channel.k8s.io"])
def test_older_protocols_report_failure_as_text(cri: CriClient, sleeper: str,
                                                protocol: str) -> None:
    url = exec_url(cri, sleeper, ["sh", "-c", "echo x; exit 2"])
    command = spdy_client.Command.start(url, protocols=(protocol,))
    assert command.finish() == b"command terminated with non-zero exit code: exit status 2"
    assert command.output() == b"x\n"
    command.close()


def test_exec_over_websocket_v4_with_the_kubernetes_client(cri: CriClient, sleeper: str) -> None:
    url = exec_url(cri, sleeper, ["sh", "-c", "echo out; echo err >&2; exit 5"], stderr=True)
    client = ws(url, "v4.channel.k8s.io")
    assert client.subprotocol == "v4.channel.k8s.io"
    client.run_forever(timeout=30)
    assert client.read_stdout() == b"out\n" and client.read_stderr() == b"err\n"
    assert client.returncode == 5


def test_exec_over_websocket_v5_closes_stdin(cri: CriClient, sleeper: str) -> None:
    url = exec_url(cri, sleeper, ["cat"], stdin=True)
    client = ws(url)  # offers v5 first
    assert client.subprotocol == "v5.channel.k8s.io"
    client.write_stdin(b"through v5")
    client.close_channel(0)  # the CLOSE signal: cat gets EOF and exits
    client.run_forever(timeout=30)
    assert client.read_stdout() == b"through v5"
    assert client.returncode == 0


@pytest.mark.parametrize("protocol", ["base64.channel.k8s.io", "v4.base64.channel.k8s.io"])
def test_exec_over_websocket_base64(cri: CriClient, sleeper: str, protocol: str) -> None:
    url = exec_url(cri, sleeper, ["printf", "\\377binary"])
    sock = socket.create_connection(("127.0.0.1", int(url.split(":")[2].split("/")[0])))
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    path = url.split("/", 3)[3]
    sock.sendall((f"GET /{path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {protocol}\r\n\r\n"
                  ).encode())
    conn = websocket.Connection(client=True)
    received = b""
    messages: list[bytes] = []
    while True:
        data = sock.recv(65536)
        if not data:
            break
        received += data
        if b"\r\n\r\n" in received and not messages and received.startswith(b"HTTP"):
            head, received = received.split(b"\r\n\r\n", 1)
            assert head.startswith(b"HTTP/1.1 101")
        if not received.startswith(b"HTTP"):
            for event in conn.receive_data(received):
                if isinstance(event, websocket.Message):
                    assert not event.binary
                    messages.append(event.data)
            received = b""
    stdout = b"".join(base64.b64decode(m[1:]) for m in messages if m[:1] == b"1")
    assert stdout == b"\xffbinary"
    sock.close()


# --- attach -------------------------------------------------------------------------------------


def test_attach_without_a_terminal_then_detach(cri: CriClient, pod: Any, image: str) -> None:
    container_id = start(cri, pod, image, ["sh"], stdin=True)
    client = ws(attach_url(cri, container_id, stdin=True, stdout=True, stderr=True),
                "v4.channel.k8s.io")
    client.write_stdin(b"echo attached-$((40+2)); echo to-stderr >&2\n")
    deadline = time.monotonic() + 20
    out = err = b""
    while (b"attached-42" not in out or b"to-stderr" not in err) and \
            time.monotonic() < deadline:
        client.update(timeout=1)
        out += client.read_stdout(timeout=0) or b""
        err += client.read_stderr(timeout=0) or b""
    assert b"attached-42" in out and b"to-stderr" in err
    client.close()
    time.sleep(0.5)
    status = cri.runtime.ContainerStatus(cri.api.ContainerStatusRequest(
        container_id=container_id)).status
    assert status.state == cri.api.CONTAINER_RUNNING  # detaching leaves it running
    # a second client, over SPDY this time; its stdin EOF ends the attach, not the container
    command = spdy_client.Command.start(
        attach_url(cri, container_id, stdin=True, stdout=True), stdin=True)
    command.write(b"echo second\n")
    command.wait_output("stdout", b"second\n")
    command.write(b"", close=True)
    assert spdy_client.exit_code(command.finish()) == 0
    command.close()
    assert cri.runtime.ContainerStatus(cri.api.ContainerStatusRequest(
        container_id=container_id)).status.state == cri.api.CONTAINER_RUNNING
    # and the container's log has what both sessions made it print
    log = (Path(cri.runtime.ContainerStatus(cri.api.ContainerStatusRequest(
        container_id=container_id)).status.log_path)).read_text()
    assert "stdout F attached-42" in log and "stdout F second" in log


def test_attach_with_a_terminal_and_many_clients(cri: CriClient, pod: Any, image: str) -> None:
    container_id = start(cri, pod, image, ["sh"], stdin=True, tty=True)
    watcher = spdy_client.Command.start(attach_url(cri, container_id, stdout=True))
    typist = spdy_client.Command.start(
        attach_url(cri, container_id, stdin=True, stdout=True, tty=True), stdin=True, tty=True)
    typist.resize(99, 33)
    time.sleep(0.2)
    typist.write(b"stty size; echo $((6*7))\n")
    for command in (typist, watcher):  # output goes to every attached client
        command.wait_output("stdout", b"33 99")
        command.wait_output("stdout", b"42")
    watcher.close()
    typist.close()


def test_attach_stdin_once_closes_the_containers_stdin(cri: CriClient, pod: Any,
                                                       image: str) -> None:
    container_id = start(cri, pod, image, ["sh", "-c", "cat; echo cat-ended"], stdin=True,
                         stdin_once=True)
    command = spdy_client.Command.start(
        attach_url(cri, container_id, stdin=True, stdout=True), stdin=True)
    command.write(b"once\n", close=True)
    # the session lasts until the container's output ends, so the client sees what EOF caused
    assert spdy_client.exit_code(command.finish()) == 0
    assert command.output() == b"once\ncat-ended\n"
    command.close()
    assert wait_for_state(cri, container_id, cri.api.CONTAINER_EXITED).exit_code == 0


# --- port-forward -------------------------------------------------------------------------------

WEB = ("mkdir -p /www && echo forwarded > /www/index.html && "
       "exec busybox httpd -f -p 8080 -h /www")


@pytest.fixture
def web_pod(cri: CriClient, pod: Any, image: str) -> str:
    sandbox_id, config = pod()
    ctr = container_config(cri.api, image, ["sh", "-c", WEB])
    container_id = cri.runtime.CreateContainer(cri.api.CreateContainerRequest(
        pod_sandbox_id=sandbox_id, sandbox_config=config, config=ctr)).container_id
    cri.runtime.StartContainer(cri.api.StartContainerRequest(container_id=container_id))
    deadline = time.monotonic() + 10
    while cri.runtime.ExecSync(cri.api.ExecSyncRequest(
            container_id=container_id, cmd=["sh", "-c", "wget -qO- http://127.0.0.1:8080/"],
            timeout=5)).exit_code != 0:
        assert time.monotonic() < deadline, "httpd did not come up"
        time.sleep(0.1)
    return sandbox_id


def port_forward_url(cri: CriClient, sandbox_id: str, ports: list[int] | None = None) -> str:
    return cri.runtime.PortForward(cri.api.PortForwardRequest(
        pod_sandbox_id=sandbox_id, port=ports or [])).url


def http_get_over_spdy(client: spdy_client.Client, port: int, request_id: str) -> tuple[int, int]:
    error = client.open({"streamType": "error", "port": str(port), "requestID": request_id})
    data = client.open({"streamType": "data", "port": str(port), "requestID": request_id})
    client.send(data, b"GET /index.html HTTP/1.0\r\n\r\n", fin=True)
    return error, data


def test_port_forward_over_spdy_many_pairs_on_one_connection(cri: CriClient,
                                                             web_pod: str) -> None:
    client = spdy_client.Client(spdy_client.upgrade(port_forward_url(cri, web_pod),
                                                    ["portforward.k8s.io"]))
    pairs = [http_get_over_spdy(client, 8080, str(i)) for i in range(3)]
    client.pump_until(lambda: all(d in client.finished for _, d in pairs))
    for error, data in pairs:
        assert bytes(client.data[data]).endswith(b"\r\n\r\nforwarded\n")
        assert bytes(client.data.get(error, b"")) == b""
    # nothing listens on 8081: the error stream says so, and the connection stays usable
    error, data = http_get_over_spdy(client, 8081, "9")
    client.pump_until(lambda: error in client.finished)
    assert b"failed to connect to localhost:8081" in bytes(client.data[error])
    error, data = http_get_over_spdy(client, 8080, "10")
    client.pump_until(lambda: data in client.finished)
    assert bytes(client.data[data]).endswith(b"forwarded\n")
    client.close()


def test_port_forward_over_websocket_with_the_kubernetes_client(cri: CriClient,
                                                                web_pod: str) -> None:
    url = port_forward_url(cri, web_pod).replace("http://", "ws://")
    forward = ws_client.portforward_call(Configuration(), "GET", url,
                                         query_params=[("ports", "8080")])
    sock = forward.socket(8080)
    sock.settimeout(20)
    sock.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
    response = b""
    while chunk := sock.recv(4096):
        response += chunk
    assert response.endswith(b"forwarded\n")
    assert forward.error(8080) is None
    forward.close()


# --- requests refused ---------------------------------------------------------------------------


def test_bad_requests_get_the_right_status(cri: CriClient, pod: Any, image: str,
                                           sleeper: str) -> None:
    api, runtime = cri.api, cri.runtime
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(lambda: runtime.Exec(api.ExecRequest(
        container_id=sleeper, cmd=["sh"], tty=True, stdout=True, stderr=True))) == invalid
    assert code_of(lambda: runtime.Exec(api.ExecRequest(
        container_id=sleeper, cmd=["sh"]))) == invalid
    assert code_of(lambda: runtime.Exec(api.ExecRequest(
        container_id=sleeper, cmd=[], stdout=True))) == invalid
    assert code_of(lambda: runtime.Exec(api.ExecRequest(
        container_id="nope", cmd=["true"], stdout=True))) == grpc.StatusCode.NOT_FOUND
    # attach with stdin to a container that has none
    assert code_of(lambda: runtime.Attach(api.AttachRequest(
        container_id=sleeper, stdin=True, stdout=True))) == grpc.StatusCode.FAILED_PRECONDITION
    assert code_of(lambda: runtime.PortForward(api.PortForwardRequest(
        pod_sandbox_id="nope"))) == grpc.StatusCode.NOT_FOUND
    sandbox_id = runtime.ListContainers(api.ListContainersRequest()).containers[0].pod_sandbox_id
    assert code_of(lambda: runtime.PortForward(api.PortForwardRequest(
        pod_sandbox_id=sandbox_id, port=[70000]))) == invalid
    runtime.StopContainer(api.StopContainerRequest(container_id=sleeper, timeout=0))
    precondition = grpc.StatusCode.FAILED_PRECONDITION
    assert code_of(lambda: runtime.Exec(api.ExecRequest(
        container_id=sleeper, cmd=["true"], stdout=True))) == precondition
    assert code_of(lambda: runtime.Attach(api.AttachRequest(
        container_id=sleeper, stdout=True))) == precondition


def test_tokens_are_single_use_and_upgrades_are_negotiated(cri: CriClient, sleeper: str) -> None:
    url = exec_url(cri, sleeper, ["true"])
    with pytest.raises(spdy_client.UpgradeRefused) as missing:
        spdy_client.upgrade(url, [])
    assert missing.value.status == 400
    with pytest.raises(spdy_client.UpgradeRefused) as none:
        spdy_client.upgrade(exec_url(cri, sleeper, ["true"]), ["v9.channel.k8s.io"])
    assert none.value.status == 403
    assert "X-Accepted-Stream-Protocol-Versions: v4.channel.k8s.io" in none.value.head
    fresh = exec_url(cri, sleeper, ["true"])
    command = spdy_client.Command.start(fresh)
    assert spdy_client.exit_code(command.finish()) == 0
    command.close()
    with pytest.raises(spdy_client.UpgradeRefused) as again:
        spdy_client.upgrade(fresh, ["v4.channel.k8s.io"])
    assert again.value.status == 404
    # a token is for its own endpoint only
    with pytest.raises(spdy_client.UpgradeRefused) as wrong:
        spdy_client.upgrade(exec_url(cri, sleeper, ["true"]).replace("/exec/", "/attach/"),
                            ["v4.channel.k8s.io"])
    assert wrong.value.status == 404


# --- lifecycle and load -------------------------------------------------------------------------


def daemon_fds(daemon: DaemonProcess) -> int:
    assert daemon.proc is not None
    return len(os.listdir(f"/proc/{daemon.proc.pid}/fd"))


def processes_with(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                found.append(int(entry))
    return found


def settle(check: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_disconnects_and_timeouts_leak_nothing(cri: CriClient, daemon: DaemonProcess,
                                               sleeper: str) -> None:
    exec_url(cri, sleeper, ["true"])  # warm up whatever the first exec opens for good
    baseline = daemon_fds(daemon)
    marker = str(10**6 + secrets.randbelow(10**6))
    # 1. mid-stream: the client vanishes while its command runs (tty and not)
    for tty in (False, True):
        command = spdy_client.Command.start(
            exec_url(cri, sleeper, ["sleep", marker], stdin=True, tty=tty), stdin=True, tty=tty)
        assert settle(lambda: processes_with(marker))
        command.client.sock.close()
        assert settle(lambda: not processes_with(marker)), "the exec'd process outlived its client"
    # 2. before the first frame, and before the request head is complete
    sock = spdy_client.upgrade(exec_url(cri, sleeper, ["sleep", marker]), ["v4.channel.k8s.io"])
    sock.close()
    half = socket.create_connection(("127.0.0.1", int(exec_url(
        cri, sleeper, ["true"]).split(":")[2].split("/")[0])))
    half.sendall(b"GET /exec/x HTTP/1.1\r\n")
    half.close()
    # 3. streams never created: the creation timeout ends the session
    client = spdy_client.Client(spdy_client.upgrade(
        exec_url(cri, sleeper, ["sleep", marker]), ["v4.channel.k8s.io"]))
    client.open({"streamType": "error"})  # stdout never comes
    client.pump_to_close(timeout=CREATION_TIMEOUT + 5)
    # 4. idle: nothing moves either way, so the session is closed and its command killed
    command = spdy_client.Command.start(exec_url(cri, sleeper, ["sleep", marker]))
    assert settle(lambda: processes_with(marker))
    command.client.pump_to_close(timeout=IDLE_TIMEOUT + 5)
    assert settle(lambda: not processes_with(marker))
    assert settle(lambda: daemon_fds(daemon) <= baseline), (
        f"{daemon_fds(daemon)} fds open, {baseline} before")


def test_fifty_concurrent_execs_and_grpc_stays_responsive(cri: CriClient, pod: Any,
                                                          image: str) -> None:
    container_id = start(cri, pod, image, ["sleep", "3600"])
    commands = []
    for i in range(50):
        command = spdy_client.Command.start(
            exec_url(cri, container_id, ["sh", "-c", f"read x; echo $x-{i}"], stdin=True),
            stdin=True)
        commands.append(command)
    started = time.monotonic()
    cri.runtime.ListContainers(cri.api.ListContainersRequest(), timeout=5)
    cri.runtime.ContainerStatus(cri.api.ContainerStatusRequest(container_id=container_id),
                                timeout=5)
    grpc_seconds = time.monotonic() - started
    errors: list[BaseException] = []

    def finish(i: int, command: spdy_client.Command) -> None:
        try:
            command.write(b"hello\n", close=True)
            assert spdy_client.exit_code(command.finish(timeout=60)) == 0
            assert command.output() == f"hello-{i}\n".encode()
        except BaseException as exc:
            errors.append(exc)
        finally:
            command.close()

    threads = [threading.Thread(target=finish, args=(i, c)) for i, c in enumerate(commands)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(90)
    assert errors == []
    assert grpc_seconds < 5


def test_attach_works_after_a_daemon_restart(cri: CriClient, daemon: DaemonProcess, pod: Any,
                                             image: str) -> None:
    container_id = start(cri, pod, image, ["sh"], stdin=True)
    daemon.stop()
    daemon.start()
    fresh = CriClient(daemon.socket, "v1")
    try:
        command = spdy_client.Command.start(
            attach_url(fresh, container_id, stdin=True, stdout=True), stdin=True)
        command.write(b"echo still-here\n")
        command.wait_output("stdout", b"still-here\n")
        command.close()
    finally:
        fresh.close()
