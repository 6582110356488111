"""Byte transports under a streaming session: the upgraded TCP connection itself, or the
binary messages of a WebSocket (the SPDY tunnel `SPDY/3.1+portforward.k8s.io` that newer
kubectl and `crictl --transport websocket` use for port-forward)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Final

from cri.streaming import websocket

READ_SIZE: Final = 64 * 1024


class Transport:
    """The upgraded connection. Remembers when bytes last moved, for the idle timeout."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.last_activity = time.monotonic()

    async def read(self) -> bytes:
        """Some bytes, or b"" at EOF (a reset counts as EOF: the client is gone either way)."""
        try:
            data = await self.reader.read(READ_SIZE)
        except (ConnectionError, OSError):
            data = b""
        self.last_activity = time.monotonic()
        return data

    def write(self, data: bytes) -> None:
        if data and not self.writer.is_closing():
            self.writer.write(data)
            self.last_activity = time.monotonic()

    async def drain(self) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.drain()

    async def close(self) -> None:
        if not self.writer.is_closing():
            with contextlib.suppress(ConnectionError, OSError):
                await self.writer.drain()
            self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


class WebSocketTunnel(Transport):
    """A byte stream carried in binary WebSocket messages, in both directions."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 ws: websocket.Connection) -> None:
        super().__init__(reader, writer)
        self.ws = ws

    async def read(self) -> bytes:
        while True:
            raw = await super().read()
            if not raw:
                return b""
            try:
                events = self.ws.receive_data(raw)
            except websocket.ProtocolError as exc:
                self.ws.close(exc.code, str(exc))
                super().write(self.ws.data_to_send())
                return b""
            super().write(self.ws.data_to_send())  # pongs, the closing reply
            chunks = []
            for event in events:
                if isinstance(event, websocket.Message):
                    chunks.append(event.data)
                elif isinstance(event, websocket.Closed):
                    return b"".join(chunks)  # EOF after what came before the close
            if chunks:
                return b"".join(chunks)

    def write(self, data: bytes) -> None:
        if data:
            self.ws.send_message(data)
            super().write(self.ws.data_to_send())

    async def close(self) -> None:
        self.ws.close()
        super().write(self.ws.data_to_send())
        await super().close()
