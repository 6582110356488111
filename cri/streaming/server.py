"""The streaming HTTP server behind the URLs that Exec, Attach and PortForward return.

An asyncio loop on its own thread, so that the gRPC threads stay free however many sessions are
open. Each connection: the request head, its one-shot token, the upgrade (SPDY/3.1 or
WebSocket), then the session modules do the rest. Defaults as cri-streaming: 4 h idle timeout,
30 s for a client to create its streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Awaitable, Callable
from typing import Final

from cri.streaming import handshake, spdy_session, websocket, ws_session
from cri.streaming import remotecommand as rc
from cri.streaming.handshake import BadRequest, Kind
from cri.streaming.requests import (
    AttachRequest,
    ExecRequest,
    PortForwardRequest,
    StreamRequest,
    TokenCache,
)
from cri.streaming.runtime import Process, Runtime
from cri.streaming.transport import Transport, WebSocketTunnel

log = logging.getLogger(__name__)

IDLE_TIMEOUT_S: Final = 4 * 3600.0
CREATION_TIMEOUT_S: Final = 30.0
HEAD_TIMEOUT_S: Final = 30.0
PORT_FORWARD_PROTOCOL: Final = "portforward.k8s.io"
SPDY_TUNNEL_PROTOCOL: Final = "SPDY/3.1+portforward.k8s.io"
WS_PORT_FORWARD_PROTOCOLS: Final = (SPDY_TUNNEL_PROTOCOL, rc.V4, rc.BASE64_V4, "")


class StreamingServer:
    def __init__(self, address: str, port: int, runtime: Runtime, *,
                 tokens: TokenCache | None = None, idle_timeout: float = IDLE_TIMEOUT_S,
                 creation_timeout: float = CREATION_TIMEOUT_S) -> None:
        self.address = address
        self.port = port
        self.runtime = runtime
        self.tokens = tokens or TokenCache()
        self.idle_timeout = idle_timeout
        self.creation_timeout = creation_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._sessions: set[asyncio.Task[None]] = set()

    # --- life cycle (called from the daemon's threads) --------------------------------------

    def start(self) -> None:
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(asyncio.start_server(
                    self._on_connection, self.address, self.port, reuse_address=True))
            except BaseException as exc:
                failure.append(exc)
                started.set()
                return
            self.port = self._server.sockets[0].getsockname()[1]
            started.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="streaming", daemon=True)
        self._thread.start()
        started.wait()
        if failure:
            raise OSError(f"streaming server on {self.address}:{self.port}: {failure[0]}")
        log.info("streaming server listening on %s", self.base_url)

    def stop(self) -> None:
        loop = self._loop
        if loop is None or self._thread is None:
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for task in list(self._sessions):
                task.cancel()
            await asyncio.gather(*self._sessions, return_exceptions=True)
            loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), loop)
        self._thread.join(10)

    @property
    def base_url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}"

    def url(self, request: StreamRequest) -> str:
        kind = {ExecRequest: Kind.EXEC, AttachRequest: Kind.ATTACH,
                PortForwardRequest: Kind.PORT_FORWARD}[type(request)]
        return f"{self.base_url}/{kind.value}/{self.tokens.insert(request)}"

    # --- connections ------------------------------------------------------------------------

    async def _on_connection(self, reader: asyncio.StreamReader,
                             writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("streaming connection failed")
        finally:
            self._sessions.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
        except asyncio.LimitOverrunError:
            writer.write(handshake.response(431, body="request head too large\n"))
            return
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            return
        try:
            request = handshake.parse_request(head)
            kind, token = request.route()
            stream_request = self.tokens.consume(token)
            if stream_request is None or not _matches(kind, stream_request):
                raise BadRequest(404, "unknown or expired streaming token")
            await self._upgrade(request, stream_request, reader, writer)
        except BadRequest as exc:
            log.info("streaming request refused (%d): %s", exc.status, exc)
            writer.write(exc.response())
            with contextlib.suppress(ConnectionError):
                await writer.drain()

    async def _upgrade(self, request: handshake.Request, stream_request: StreamRequest,
                       reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        transport = Transport(reader, writer)
        if isinstance(stream_request, PortForwardRequest):
            await self._port_forward(request, stream_request, transport)
            return
        options = rc.Options(stdin=stream_request.stdin, stdout=stream_request.stdout,
                             stderr=stream_request.stderr, tty=stream_request.tty)
        start = self._starter(stream_request)
        if request.is_websocket:
            protocol, answer = handshake.negotiate_websocket(request, rc.WEBSOCKET_PROTOCOLS)
            transport.write(answer)
            await ws_session.serve_remote_command(
                ws_session.WsSession(transport, protocol, self.idle_timeout), options, start)
        elif request.is_spdy:
            protocol, answer = handshake.negotiate_spdy(request, rc.SPDY_PROTOCOLS)
            transport.write(answer)
            await spdy_session.serve_remote_command(
                spdy_session.SpdySession(transport, self.idle_timeout), protocol, options, start,
                self.creation_timeout)
        else:
            raise BadRequest(400, "an upgrade to SPDY/3.1 or websocket is required")

    def _starter(self, request: ExecRequest | AttachRequest
                 ) -> Callable[[], Awaitable[Process]]:
        if isinstance(request, ExecRequest):
            return lambda: self.runtime.exec(request)
        return lambda: self.runtime.attach(request)

    async def _port_forward(self, request: handshake.Request, pf: PortForwardRequest,
                            transport: Transport) -> None:
        async def dial(port: int) -> socket.socket:
            return await self.runtime.dial(pf.pod_sandbox_id, port)

        if request.is_websocket:
            protocol, answer = handshake.negotiate_websocket(request, WS_PORT_FORWARD_PROTOCOLS)
            transport.write(answer)
            if protocol == SPDY_TUNNEL_PROTOCOL:
                tunnel = WebSocketTunnel(transport.reader, transport.writer,
                                         websocket.Connection(client=False))
                await spdy_session.serve_port_forward(
                    spdy_session.SpdySession(tunnel, self.idle_timeout), dial,
                    self.creation_timeout)
                return
            ports = pf.ports or _query_ports(request)
            await ws_session.serve_port_forward(
                ws_session.WsSession(transport, protocol, self.idle_timeout), ports, dial)
        elif request.is_spdy:
            _, answer = handshake.negotiate_spdy(request, (PORT_FORWARD_PROTOCOL,))
            transport.write(answer)
            await spdy_session.serve_port_forward(
                spdy_session.SpdySession(transport, self.idle_timeout), dial,
                self.creation_timeout)
        else:
            raise BadRequest(400, "an upgrade to SPDY/3.1 or websocket is required")


def _matches(kind: Kind, request: StreamRequest) -> bool:
    return {Kind.EXEC: ExecRequest, Kind.ATTACH: AttachRequest,
            Kind.PORT_FORWARD: PortForwardRequest}[kind] is type(request)


def _query_ports(request: handshake.Request) -> tuple[int, ...]:
    ports: list[int] = []
    # `port` is the kubelet's parameter; `ports` the apiserver's, which direct clients (the
    # kubernetes Python client) send.
    for value in request.query.get("port", []) + request.query.get("ports", []):
        for part in value.split(","):
            try:
                port = int(part)
            except ValueError:
                raise BadRequest(400, f"port {part!r} is not a number") from None
            if not 0 < port < 65536:
                raise BadRequest(400, f"port {port} is not in 1-65535")
            ports.append(port)
    if not ports:
        raise BadRequest(400, "a port-forward over websocket needs ?port=")
    return tuple(ports)
