"""Exec, attach and port-forward over WebSocket, with the Kubernetes channel protocols
(cri-streaming `remotecommand/websocket.go` and `portforward/websocket.go`, plus v5's CLOSE
signal from client-go's `NewWebSocketExecutor`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Awaitable, Callable

from cri.streaming import remotecommand as rc
from cri.streaming import websocket
from cri.streaming.runtime import Process, run_session
from cri.streaming.transport import Transport

log = logging.getLogger(__name__)


class WsSession:
    def __init__(self, transport: Transport, protocol: str, idle_timeout: float) -> None:
        self.transport = transport
        self.protocol = protocol
        self.ws = websocket.Connection(client=False)
        self.idle_timeout = idle_timeout

    async def messages(self) -> list[websocket.Message] | None:
        """The next client messages; None once the client has closed or gone idle."""
        while True:
            try:
                raw = await asyncio.wait_for(self.transport.read(), self.idle_timeout)
            except TimeoutError:
                return None
            if not raw:
                return None
            try:
                events = self.ws.receive_data(raw)
            except websocket.ProtocolError as exc:
                self.ws.close(exc.code, str(exc))
                self.flush()
                return None
            self.flush()
            messages = [e for e in events if isinstance(e, websocket.Message)]
            if any(isinstance(e, websocket.Closed) for e in events):
                return messages or None
            if messages:
                return messages

    def flush(self) -> None:
        self.transport.write(self.ws.data_to_send())

    async def send(self, channel: int, data: bytes) -> None:
        payload, binary = rc.encode_ws(self.protocol, channel, data)
        self.ws.send_message(payload, binary=binary)
        self.flush()
        await self.transport.drain()

    async def close(self) -> None:
        self.ws.close()
        self.flush()
        await self.transport.close()


async def serve_remote_command(session: WsSession, options: rc.Options,
                               start: Callable[[], Awaitable[Process]]) -> None:
    protocol = session.protocol
    try:
        # An empty message on the lowest channel we write: the client's sign that we are up.
        ready = rc.Channel.STDOUT if options.stdout else (
            rc.Channel.STDERR if options.stderr else rc.Channel.ERROR)
        await session.send(ready, b"")
        try:
            process = await start()
        except Exception as exc:
            message = getattr(exc, "message", None) or str(exc)
            await session.send(rc.Channel.ERROR, rc.exit_status(protocol, None, message))
            return
        code = await _run(session, options, process)
        if code is not None:
            status = rc.exit_status(protocol, code)
            if status:
                await session.send(rc.Channel.ERROR, status)
    finally:
        await session.close()


async def _run(session: WsSession, options: rc.Options, process: Process) -> int | None:
    resize = rc.ResizeDecoder()
    stdin_open = options.stdin

    async def pump_input() -> None:
        nonlocal stdin_open
        while (messages := await session.messages()) is not None:
            for message in messages:
                try:
                    item = rc.decode_ws(session.protocol, message.data)
                except ValueError as exc:
                    log.info("websocket client: %s", exc)
                    continue
                if isinstance(item, rc.ChannelClosed):
                    if item.channel == rc.Channel.STDIN and stdin_open:
                        stdin_open = False
                        await process.close_stdin()
                elif item is not None and item.channel == rc.Channel.STDIN and stdin_open:
                    if item.data:
                        await process.write_stdin(item.data)
                elif item is not None and item.channel == rc.Channel.RESIZE:
                    for width, height in resize.feed(item.data):
                        process.resize(width, height)

    async def pump_output() -> None:
        while (item := await process.output()) is not None:
            channel, data = item
            if (channel == rc.Channel.STDOUT and options.stdout) or \
                    (channel == rc.Channel.STDERR and options.stderr):
                await session.send(channel, data)

    finished, code = await run_session(process, pump_input(), pump_output())
    if not finished:
        return None  # the client closed or went away first: nothing left to tell it
    # NOTE: no v5 CLOSE signals from our side: client-go takes 0xFF for an unknown stream
    # and logs an error; the close of the connection ends every stream anyway.
    return code if code is not None else 0


# --- port-forward -------------------------------------------------------------------------------


async def serve_port_forward(session: WsSession, ports: tuple[int, ...],
                             dial: Callable[[int], Awaitable[socket.socket]]) -> None:
    """Channel 2i carries port i's data, 2i+1 its errors; each starts with the port (uint16 LE).
    One connection per port, made when the client connects."""
    writers: dict[int, asyncio.StreamWriter] = {}
    tasks: list[asyncio.Task[None]] = []
    try:
        for index, port in enumerate(ports):
            prefix = struct.pack("<H", port)
            await session.send(2 * index, prefix)
            await session.send(2 * index + 1, prefix)
        for index, port in enumerate(ports):
            try:
                sock = await dial(port)
            except Exception as exc:
                message = getattr(exc, "message", None) or str(exc)
                await session.send(2 * index + 1, message.encode())
                continue
            reader, writer = await asyncio.open_connection(sock=sock)
            writers[2 * index] = writer
            tasks.append(asyncio.create_task(_port_output(session, 2 * index, reader)))
        while (messages := await session.messages()) is not None:
            for message in messages:
                item = rc.decode_ws(session.protocol, message.data)
                if isinstance(item, rc.ChannelData) and item.channel in writers and item.data:
                    writers[item.channel].write(item.data)
                    with contextlib.suppress(OSError):
                        await writers[item.channel].drain()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for writer in writers.values():
            writer.close()
        await session.close()


async def _port_output(session: WsSession, channel: int, reader: asyncio.StreamReader) -> None:
    while True:
        try:
            data = await reader.read(64 * 1024)
        except OSError:
            return
        if not data:
            return
        await session.send(channel, data)
