"""The streaming server for Exec, Attach and PortForward: SPDY/3.1 and WebSocket with the
Kubernetes channel protocols. Protocol modules are sans-I/O (spdy, websocket, handshake,
remotecommand); the server and the session modules are the asyncio glue."""

from cri.streaming.requests import AttachRequest, ExecRequest, PortForwardRequest, TokenCache
from cri.streaming.server import StreamingServer

__all__ = ["AttachRequest", "ExecRequest", "PortForwardRequest", "StreamingServer",
           "TokenCache"]
