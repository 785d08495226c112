"""ADB messages: a 24-byte header and an optional payload.

Header (six little-endian 32-bit words): command, arg0, arg1, payload length, payload checksum,
magic (= command ^ 0xffffffff). The checksum is the byte sum of the payload; peers that agreed
on version >= A_VERSION_SKIP_CHECKSUM send 0 and do not check it, older ones must.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from terminal_emulator.adb.constants import A_VERSION_SKIP_CHECKSUM, HEADER_SIZE, Command
from terminal_emulator.adb.redaction import redact_bytes

_HEADER = struct.Struct("<6I")
assert _HEADER.size == HEADER_SIZE


class ProtocolError(Exception):
    """The peer sent something that is not ADB; the connection cannot continue."""


def checksum(payload: bytes) -> int:
    """ADB's "checksum": the sum of the bytes, modulo 2**32 (not a CRC despite adb.h's name)."""
    return sum(payload) & 0xFFFFFFFF


def checksum_required(version: int) -> bool:
    """Whether a connection at ``version`` sends and verifies payload checksums."""
    return version < A_VERSION_SKIP_CHECKSUM


@dataclass(frozen=True, slots=True)
class Message:
    command: Command
    arg0: int
    arg1: int
    payload: bytes = b""

    def encode(self, *, with_checksum: bool) -> bytes:
        """Header and payload as sent on the wire."""
        header = _HEADER.pack(
            self.command,
            self.arg0,
            self.arg1,
            len(self.payload),
            checksum(self.payload) if with_checksum else 0,
            self.command ^ 0xFFFFFFFF,
        )
        return header + self.payload

    def __repr__(self) -> str:
        # Payloads can be a megabyte; logs only need their start, without card data (redacted
        # before the cut, so a card number is never shown in part).
        shown = redact_bytes(self.payload[:256])[:48]
        more = "…" if len(self.payload) > len(shown) else ""
        return (
            f"Message({self.command.name}, {self.arg0:#x}, {self.arg1:#x}, "
            f"{shown!r}{more} [{len(self.payload)}])"
        )


@dataclass(frozen=True, slots=True)
class Header:
    command: Command
    arg0: int
    arg1: int
    data_length: int
    data_check: int


def decode_header(raw: bytes, *, max_payload: int) -> Header:
    """Parse and validate a header; raises ProtocolError like adbd's ``check_header`` fails."""
    if len(raw) != HEADER_SIZE:
        raise ProtocolError(f"header is {len(raw)} bytes, not {HEADER_SIZE}")
    command, arg0, arg1, length, data_check, magic = _HEADER.unpack(raw)
    if magic != command ^ 0xFFFFFFFF:
        raise ProtocolError(f"bad magic {magic:#010x} for command {command:#010x}")
    try:
        known = Command(command)
    except ValueError:
        raise ProtocolError(f"unknown command {raw[:4]!r}") from None
    if length > max_payload:
        raise ProtocolError(f"payload of {length} bytes exceeds the maximum {max_payload}")
    return Header(known, arg0, arg1, length, data_check)


def verify_payload(header: Header, payload: bytes, *, with_checksum: bool) -> Message:
    """The message, after checking the payload against the header's checksum if required."""
    if with_checksum and checksum(payload) != header.data_check:
        raise ProtocolError(
            f"{header.command.name} payload checksum {checksum(payload):#x} "
            f"!= header {header.data_check:#x}"
        )
    return Message(header.command, header.arg0, header.arg1, payload)
