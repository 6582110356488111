"""Exec, attach and port-forward over an upgraded SPDY/3.1 connection: the I/O glue between
`cri.streaming.spdy`, the channel protocols and the runtime (cri-streaming
`remotecommand/httpstream.go` and `portforward/httpstream.go` are the reference)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from cri.streaming import remotecommand as rc
from cri.streaming import spdy
from cri.streaming.runtime import ClientGone, Process, run_session
from cri.streaming.transport import Transport

log = logging.getLogger(__name__)


class SpdySession:
    """One upgraded connection: reads frames into events, sends what the connection queues."""

    def __init__(self, transport: Transport, idle_timeout: float) -> None:
        self.transport = transport
        self.conn = spdy.Connection(client=False)
        self.idle_timeout = idle_timeout
        self._events: list[spdy.Event] = []

    async def next_event(self, deadline: float | None = None) -> spdy.Event:
        """The next event; ClientGone at EOF or idleness, TimeoutError past `deadline`."""
        while not self._events:
            now = time.monotonic()
            idle_left = self.transport.last_activity + self.idle_timeout - now
            if idle_left <= 0:
                raise ClientGone(f"idle for {self.idle_timeout:.0f} s")
            wait = idle_left if deadline is None else min(idle_left, deadline - now)
            if deadline is not None and wait <= 0:
                raise TimeoutError
            try:
                data = await asyncio.wait_for(self.transport.read(), wait)
            except TimeoutError:
                continue
            if not data:
                raise ClientGone("the client closed the connection")
            try:
                self._events = self.conn.receive_data(data)
            except spdy.ProtocolError as exc:
                self.flush()
                raise ClientGone(f"SPDY protocol error: {exc}") from None
            self.flush()  # ping answers
        return self._events.pop(0)

    def flush(self) -> None:
        self.transport.write(self.conn.data_to_send())

    async def send(self, stream_id: int, data: bytes, *, fin: bool = False) -> None:
        self.conn.send_data(stream_id, data, fin=fin)
        self.flush()
        await self.transport.drain()

    async def close(self) -> None:
        self.conn.go_away()
        self.flush()
        await self.transport.close()


# --- exec and attach ----------------------------------------------------------------------------


async def serve_remote_command(
    session: SpdySession, protocol: str, options: rc.Options,
    start: Callable[[], Awaitable[Process]], creation_timeout: float,
) -> None:
    streams: dict[rc.Channel, int] = {}
    early: list[spdy.Event] = []
    wanted = rc.expected_streams(protocol, options)
    deadline = time.monotonic() + creation_timeout
    try:
        while not wanted <= streams.keys():
            try:
                event = await session.next_event(deadline)
            except TimeoutError:
                log.info("streams %s not created within %.0f s", sorted(wanted - streams.keys()),
                         creation_timeout)
                return
            if isinstance(event, spdy.StreamOpened):
                channel = rc.STREAM_TYPES.get(event.header("streamtype"))
                if channel is None or channel in streams:
                    session.conn.reset(event.stream_id, spdy.RstStatus.PROTOCOL_ERROR)
                else:
                    session.conn.reply(event.stream_id)
                    streams[channel] = event.stream_id
                session.flush()
            elif isinstance(event, spdy.DataReceived | spdy.StreamReset):
                early.append(event)
        await _run_command(session, protocol, streams, early, start)
    except ClientGone as exc:
        log.debug("remote command: %s", exc)
    finally:
        await session.close()


async def _run_command(session: SpdySession, protocol: str, streams: dict[rc.Channel, int],
                       early: list[spdy.Event], start: Callable[[], Awaitable[Process]]) -> None:
    error_id = streams[rc.Channel.ERROR]
    try:
        process = await start()
    except Exception as exc:
        message = getattr(exc, "message", None) or str(exc)
        await session.send(error_id, rc.exit_status(protocol, None, message), fin=True)
        return
    by_id = {stream_id: channel for channel, stream_id in streams.items()}
    resize = rc.ResizeDecoder()

    async def handle(event: spdy.Event) -> None:
        if isinstance(event, spdy.DataReceived):
            channel = by_id.get(event.stream_id)
            if channel == rc.Channel.STDIN:
                if event.data:
                    await process.write_stdin(event.data)
                if event.fin:
                    await process.close_stdin()
            elif channel == rc.Channel.RESIZE:
                for width, height in resize.feed(event.data):
                    process.resize(width, height)
        elif isinstance(event, spdy.StreamReset) and by_id.get(event.stream_id) == \
                rc.Channel.STDIN:
            await process.close_stdin()
        elif isinstance(event, spdy.GoAwayReceived):
            raise ClientGone("GOAWAY")
        elif isinstance(event, spdy.StreamOpened):
            session.conn.reset(event.stream_id, spdy.RstStatus.REFUSED_STREAM)
            session.flush()

    async def pump_input() -> None:
        for event in early:
            await handle(event)
        while True:
            await handle(await session.next_event())

    async def pump_output() -> None:
        while (item := await process.output()) is not None:
            channel, data = item
            stream_id = streams.get(channel)
            if stream_id is not None:
                await session.send(stream_id, data)

    finished, code = await run_session(process, pump_input(), pump_output())
    if not finished:
        return
    for channel in (rc.Channel.STDOUT, rc.Channel.STDERR):
        if channel in streams:
            session.conn.send_data(streams[channel], b"", fin=True)
    await session.send(error_id, rc.exit_status(protocol, code), fin=True)


# --- port-forward -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Pair:
    request_id: str
    port: int = 0
    data_id: int = 0
    error_id: int = 0
    writer: asyncio.StreamWriter | None = None
    pending: list[bytes] = field(default_factory=list)  # data before the connection is up
    remote_fin: bool = False
    task: asyncio.Task[None] | None = None


async def serve_port_forward(
    session: SpdySession, dial: Callable[[int], Awaitable[socket.socket]],
    creation_timeout: float,
) -> None:
    pairs: dict[str, _Pair] = {}
    by_stream: dict[int, _Pair] = {}
    tasks: set[asyncio.Task[None]] = set()

    def expire(pair: _Pair) -> None:
        if pair.task is None and pairs.get(pair.request_id) is pair:
            log.info("port-forward request %s: its stream pair was not complete within %.0f s",
                     pair.request_id, creation_timeout)
            for stream_id in (pair.data_id, pair.error_id):
                if stream_id:
                    session.conn.reset(stream_id, spdy.RstStatus.CANCEL)
            session.flush()
            forget(pair)

    def forget(pair: _Pair) -> None:
        pairs.pop(pair.request_id, None)
        by_stream.pop(pair.data_id, None)
        by_stream.pop(pair.error_id, None)

    loop = asyncio.get_running_loop()
    try:
        while True:
            event = await session.next_event()
            if isinstance(event, spdy.StreamOpened):
                kind = event.header("streamtype")
                port_text = event.header("port")
                request_id = event.header("requestid") or str(
                    event.stream_id if kind == "error" else event.stream_id - 2)
                try:
                    port = int(port_text)
                    if not 0 < port < 65536 or kind not in ("data", "error"):
                        raise ValueError
                except ValueError:
                    session.conn.reset(event.stream_id, spdy.RstStatus.PROTOCOL_ERROR)
                    session.flush()
                    continue
                pair = pairs.get(request_id)
                if pair is None:
                    pair = pairs[request_id] = _Pair(request_id, port)
                    loop.call_later(creation_timeout, expire, pair)
                session.conn.reply(event.stream_id)
                session.flush()
                if kind == "data":
                    pair.data_id = event.stream_id
                else:
                    pair.error_id = event.stream_id
                by_stream[event.stream_id] = pair
                if pair.data_id and pair.error_id and pair.task is None:
                    pair.task = asyncio.create_task(_forward(session, pair, dial, forget))
                    tasks.add(pair.task)
                    pair.task.add_done_callback(tasks.discard)
            elif isinstance(event, spdy.DataReceived):
                pair = by_stream.get(event.stream_id)
                if pair is None or event.stream_id != pair.data_id:
                    continue
                if pair.writer is None:
                    pair.pending.append(event.data)
                elif event.data:
                    pair.writer.write(event.data)
                    with contextlib.suppress(OSError):
                        await pair.writer.drain()
                if event.fin:
                    pair.remote_fin = True
                    if pair.writer is not None and pair.writer.can_write_eof():
                        with contextlib.suppress(OSError):
                            pair.writer.write_eof()
            elif isinstance(event, spdy.StreamReset):
                pair = by_stream.get(event.stream_id)
                if pair is not None:
                    if pair.writer is not None:
                        pair.writer.close()
                    if pair.task is not None:
                        pair.task.cancel()
                    forget(pair)
            elif isinstance(event, spdy.GoAwayReceived):
                break
    except ClientGone as exc:
        log.debug("port-forward: %s", exc)
    finally:
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await session.close()


async def _forward(session: SpdySession, pair: _Pair,
                   dial: Callable[[int], Awaitable[socket.socket]],
                   forget: Callable[[_Pair], None]) -> None:
    writer: asyncio.StreamWriter | None = None
    try:
        try:
            sock = await dial(pair.port)
        except Exception as exc:
            message = getattr(exc, "message", None) or str(exc)
            await session.send(pair.error_id, message.encode(), fin=True)
            await session.send(pair.data_id, b"", fin=True)
            return
        reader, writer = await asyncio.open_connection(sock=sock)
        pair.writer = writer
        for chunk in pair.pending:
            writer.write(chunk)
        pair.pending.clear()
        if pair.remote_fin and writer.can_write_eof():
            writer.write_eof()
        while True:
            try:
                data = await reader.read(64 * 1024)
            except OSError:
                data = b""
            if not data:
                break
            await session.send(pair.data_id, data)
        await session.send(pair.data_id, b"", fin=True)
        await session.send(pair.error_id, b"", fin=True)
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        forget(pair)
