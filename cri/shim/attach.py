"""The daemon's end of an attach stream to a shim (protocol.py, 4.), for the streaming server.

The shim owns the container's stdio; attaching is a connection to its control socket, so it
works the same for a container started before the daemon restarted."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Final

from cri.shim.protocol import (
    AttachFrame,
    FrameDecoder,
    ProtocolError,
    encode_frame,
    encode_resize,
)
from cri.streaming.remotecommand import Channel

READ_SIZE: Final = 64 * 1024


class Attachment:
    """Implements `cri.streaming.runtime.Process` over a connected attach socket."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 pending: bytes, *, end_with_stdin: bool) -> None:
        self._end_with_stdin = end_with_stdin
        self._reader = reader
        self._writer = writer
        self._decoder = FrameDecoder()
        self._frames: list[tuple[AttachFrame, bytes]] = []
        self._ended = False
        if pending:
            self._frames = self._decoder.feed(pending)

    @classmethod
    async def open(cls, sock: socket.socket, pending: bytes, *,
                   end_with_stdin: bool) -> Attachment:
        """`end_with_stdin`: the client's stdin EOF ends the attachment (kubectl attach's
        detach); otherwise it only closes the container's stdin (stdin_once) and the
        attachment lasts until the container's output ends."""
        sock.setblocking(False)
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        return cls(reader, writer, pending, end_with_stdin=end_with_stdin)

    async def output(self) -> tuple[Channel, bytes] | None:
        while not self._frames:
            if self._ended:
                return None
            try:
                data = await self._reader.read(READ_SIZE)
            except OSError:
                data = b""
            if not data:
                self._ended = True
                return None
            try:
                self._frames = self._decoder.feed(data)
            except ProtocolError:
                self._ended = True
                return None
        kind, payload = self._frames.pop(0)
        return (Channel.STDERR if kind == AttachFrame.STDERR else Channel.STDOUT), payload

    async def write_stdin(self, data: bytes) -> None:
        await self._send(encode_frame(AttachFrame.STDIN, data))

    async def close_stdin(self) -> None:
        await self._send(encode_frame(AttachFrame.STDIN_CLOSE))
        if self._end_with_stdin:
            self._frames.clear()
            await self.abort()

    def resize(self, width: int, height: int) -> None:
        if width > 0 and height > 0 and not self._writer.is_closing():
            self._writer.write(encode_resize(width, height))

    async def _send(self, frame: bytes) -> None:
        if self._writer.is_closing():
            return
        self._writer.write(frame)
        with contextlib.suppress(OSError):
            await self._writer.drain()

    async def wait(self) -> int | None:
        await self.abort()
        return None

    async def abort(self) -> None:
        """Detach: the container keeps running."""
        if not self._writer.is_closing():
            self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()
