"""A minimal ADB host that sends exactly what a test tells it to, for protocol-level checks
(flow control, checksums, CLSE) that adb-shell and adb hide.

Messages are packed with adb-shell's own ``AdbMessage`` so the device is checked against an
independent encoder, not against its own.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass

from adb_shell import constants as lib
from adb_shell.adb_message import AdbMessage, checksum, unpack

from terminal_emulator.adb.transport import StreamTransport, Transport

VERSION_MIN = 0x01000000
VERSION_SKIP_CHECKSUM = 0x01000001
TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Received:
    command: bytes
    arg0: int
    arg1: int
    data: bytes
    data_check: int


class RawHost:
    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.next_id = 100

    @classmethod
    async def tcp(cls, port: int) -> RawHost:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(StreamTransport(reader, writer))

    async def send(
        self,
        command: bytes,
        arg0: int,
        arg1: int,
        data: bytes = b"",
        *,
        data_check: int | None = None,
    ) -> None:
        header = AdbMessage(command, arg0, arg1, data).pack()
        if data_check is not None:  # a deliberately wrong (or omitted) checksum
            fields = list(struct.unpack("<6I", header))
            fields[4] = data_check
            header = struct.pack("<6I", *fields)
        await self.transport.write(header + data)

    async def recv(self, wait_s: float = TIMEOUT_S) -> Received:
        async def read() -> Received:
            header = await self.transport.read_exactly(24)
            command, arg0, arg1, length, data_check = unpack(header)
            data = await self.transport.read_exactly(length) if length else b""
            return Received(lib.WIRE_TO_ID[command], arg0, arg1, data, data_check)

        return await asyncio.wait_for(read(), wait_s)

    async def nothing_for(self, seconds: float) -> bool:
        """True if the device sent nothing within ``seconds``."""
        try:
            received = await self.recv(wait_s=seconds)
        except TimeoutError:
            return True
        raise AssertionError(f"expected silence, got {received}")

    async def connect(
        self, *, version: int = VERSION_SKIP_CHECKSUM, maxdata: int = 1024 * 1024
    ) -> Received:
        """CNXN for a device without authentication; returns the device's CNXN."""
        await self.send(lib.CNXN, version, maxdata, b"host::features=shell_v2,cmd\0")
        reply = await self.recv()
        assert reply.command == lib.CNXN, reply
        return reply

    async def open(self, service: str) -> tuple[int, int]:
        """(host id, device id) of a newly opened stream."""
        self.next_id += 1
        host_id = self.next_id
        await self.send(lib.OPEN, host_id, 0, service.encode() + b"\0")
        reply = await self.recv()
        assert reply.command == lib.OKAY, reply
        assert reply.arg1 == host_id, reply
        return host_id, reply.arg0

    async def read_until_close(self, host_id: int, device_id: int) -> tuple[bytes, list[int]]:
        """Everything the device writes on the stream (acknowledging each WRTE) until its CLSE;
        also the size of each WRTE."""
        data, sizes = bytearray(), list[int]()
        while True:
            message = await self.recv()
            assert (message.arg0, message.arg1) == (device_id, host_id), message
            if message.command == lib.CLSE:
                await self.send(lib.CLSE, host_id, device_id)
                return bytes(data), sizes
            assert message.command == lib.WRTE, message
            data += message.data
            sizes.append(len(message.data))
            await self.send(lib.OKAY, host_id, device_id)

    async def close(self) -> None:
        await self.transport.close()


def shell_packet(packet_id: int, data: bytes) -> bytes:
    return struct.pack("<BI", packet_id, len(data)) + data


def split_shell_packets(data: bytes) -> list[tuple[int, bytes]]:
    packets = []
    while data:
        packet_id, length = struct.unpack_from("<BI", data)
        packets.append((packet_id, data[5 : 5 + length]))
        data = data[5 + length :]
    return packets


def byte_sum(data: bytes) -> int:
    return int(checksum(data))
