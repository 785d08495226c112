"""Byte pipes an ADB session runs over: TCP (what adbd listens on) or in memory (tests).

A session only needs "read exactly n bytes", "write these bytes" and "close"; keeping that
behind ``Transport`` lets tests drive a session without sockets, and lets several emulated
terminals run their servers in one process and one event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Protocol


class TransportClosed(ConnectionError):
    """The peer went away (EOF or reset); raised by ``read_exactly`` and ``write``.

    A ConnectionError, so code between a command and the wire (executors, writers) lets it
    pass like any broken pipe instead of reporting it as its own failure."""


class Transport(Protocol):
    @property
    def peer(self) -> str:
        """Who is on the other end, for logs."""
        ...

    async def read_exactly(self, size: int) -> bytes:
        """``size`` bytes, or TransportClosed if the peer ends first."""
        ...

    async def write(self, data: bytes) -> None:
        """Queue ``data`` and wait until the pipe has room again (back pressure)."""
        ...

    async def close(self) -> None: ...


class StreamTransport:
    """A Transport over an asyncio stream pair (a TCP connection)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        peer = writer.get_extra_info("peername")
        self._peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)

    @property
    def peer(self) -> str:
        return self._peer

    async def read_exactly(self, size: int) -> bytes:
        try:
            return await self._reader.readexactly(size)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise TransportClosed(str(exc)) from exc

    async def write(self, data: bytes) -> None:
        if self._writer.is_closing():
            raise TransportClosed("connection is closing")
        try:
            self._writer.write(data)
            await self._writer.drain()
        except ConnectionError as exc:
            raise TransportClosed(str(exc)) from exc

    async def close(self) -> None:
        if not self._writer.is_closing():
            self._writer.close()
        # A peer that vanished makes wait_closed raise; it is closed either way.
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()


class MemoryTransport:
    """One end of an in-memory pipe; ``MemoryTransport.pair()`` gives both ends."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._buffer = bytearray()
        self._changed = asyncio.Condition()
        self._eof = False
        self.other: MemoryTransport | None = None

    @classmethod
    def pair(cls) -> tuple[MemoryTransport, MemoryTransport]:
        """(device end, host end)."""
        device, host = cls("device"), cls("host")
        device.other, host.other = host, device
        return device, host

    @property
    def peer(self) -> str:
        return f"memory:{self.other._name if self.other else '?'}"

    async def _receive(self, data: bytes) -> None:
        async with self._changed:
            self._buffer += data
            self._changed.notify_all()

    async def _end(self) -> None:
        async with self._changed:
            self._eof = True
            self._changed.notify_all()

    async def read_exactly(self, size: int) -> bytes:
        async with self._changed:
            await self._changed.wait_for(lambda: len(self._buffer) >= size or self._eof)
            if len(self._buffer) < size:
                raise TransportClosed("peer closed the memory pipe")
            data = bytes(self._buffer[:size])
            del self._buffer[:size]
            return data

    async def write(self, data: bytes) -> None:
        if self.other is None or self.other._eof or self._eof:
            raise TransportClosed("memory pipe is closed")
        await self.other._receive(data)

    async def close(self) -> None:
        await self._end()
        if self.other is not None:
            await self.other._end()


ConnectionHandler = Callable[[Transport], Awaitable[None]]


async def start_tcp_server(host: str, port: int, handler: ConnectionHandler) -> asyncio.Server:
    """Listen on host:port and run ``handler`` for each connection; port 0 picks a free one."""

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        transport = StreamTransport(reader, writer)
        try:
            await handler(transport)
        finally:
            await transport.close()

    return await asyncio.start_server(on_connection, host, port)
