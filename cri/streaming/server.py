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
import threading
from typing import Final

from cri.streaming import handshake
from cri.streaming.handshake import BadRequest, Kind
from cri.streaming.requests import (
    AttachRequest,
    ExecRequest,
    PortForwardRequest,
    StreamRequest,
    TokenCache,
)
from cri.streaming.runtime import Runtime

log = logging.getLogger(__name__)

IDLE_TIMEOUT_S: Final = 4 * 3600.0
CREATION_TIMEOUT_S: Final = 30.0
HEAD_TIMEOUT_S: Final = 30.0


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
            # NOTE: the session and protocol modules load at the first upgrade, so a node that
            # never streams does not hold them: about 0.3 MiB of the daemon's memory.
            from cri.streaming.upgrade import Upgrade

            await Upgrade(self.runtime, self.idle_timeout, self.creation_timeout).serve(
                request, stream_request, reader, writer)
        except BadRequest as exc:
            log.info("streaming request refused (%d): %s", exc.status, exc)
            writer.write(exc.response())
            with contextlib.suppress(ConnectionError):
                await writer.drain()

def _matches(kind: Kind, request: StreamRequest) -> bool:
    return {Kind.EXEC: ExecRequest, Kind.ATTACH: AttachRequest,
            Kind.PORT_FORWARD: PortForwardRequest}[kind] is type(request)
