"""An upgraded streaming connection: the SPDY/3.1 or WebSocket session for an exec, attach or
port-forward, once the server (server.py) has read the request head and taken its token."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from cri.streaming import handshake, spdy_session, websocket, ws_session
from cri.streaming import remotecommand as rc
from cri.streaming.handshake import BadRequest
from cri.streaming.requests import AttachRequest, ExecRequest, PortForwardRequest, StreamRequest
from cri.streaming.runtime import Process, Runtime
from cri.streaming.transport import Transport, WebSocketTunnel

PORT_FORWARD_PROTOCOL: Final = "portforward.k8s.io"
SPDY_TUNNEL_PROTOCOL: Final = "SPDY/3.1+portforward.k8s.io"
WS_PORT_FORWARD_PROTOCOLS: Final = (SPDY_TUNNEL_PROTOCOL, rc.V4, rc.BASE64_V4, "")


@dataclass(frozen=True, slots=True)
class Upgrade:
    runtime: Runtime
    idle_timeout: float
    creation_timeout: float

    async def serve(self, request: handshake.Request, stream_request: StreamRequest,
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
