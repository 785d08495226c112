"""Numbers and names of the ADB wire protocol, as AOSP's adbd uses them.

Sources: AOSP ``packages/modules/adb/protocol.txt``, ``adb.h`` and ``shell_protocol.h``.
"""

from __future__ import annotations

import enum
from typing import Final


def _wire(name: bytes) -> int:
    # A command is its four ASCII letters read as one little-endian word ("CNXN" -> 0x4e584e43).
    return int.from_bytes(name, "little")


class Command(enum.IntEnum):
    """The ``command`` word of a message header."""

    SYNC = _wire(b"SYNC")  # obsolete; adbd ignores it, so do we
    CNXN = _wire(b"CNXN")
    OPEN = _wire(b"OPEN")
    OKAY = _wire(b"OKAY")
    CLSE = _wire(b"CLSE")
    WRTE = _wire(b"WRTE")
    AUTH = _wire(b"AUTH")
    STLS = _wire(b"STLS")  # TLS upgrade; only a device asks for it and this one never does


#: First protocol version: every payload carries a checksum that the receiver verifies.
A_VERSION_MIN: Final = 0x01000000
#: From this version on (Android 9) checksums are neither sent (0) nor verified.
A_VERSION_SKIP_CHECKSUM: Final = 0x01000001
#: The newest version this device speaks; the connection uses min(ours, host's).
A_VERSION: Final = 0x01000001

#: Largest payload of a version-1 peer, and of a current one (adb.h MAX_PAYLOAD_V1, MAX_PAYLOAD).
MAX_PAYLOAD_V1: Final = 4 * 1024
MAX_PAYLOAD: Final = 1024 * 1024

#: ``arg0`` of an AUTH message.
AUTH_TOKEN: Final = 1
AUTH_SIGNATURE: Final = 2
AUTH_RSAPUBLICKEY: Final = 3

#: adbd's token is 20 random bytes: the size of a SHA-1 digest, which the host signs as one.
TOKEN_SIZE: Final = 20

#: adbd sleeps a second per failed signature after this many, to slow down brute force.
MAX_FAILED_AUTH_BEFORE_DELAY: Final = 256

#: Header: command, arg0, arg1, data_length, data_check, magic; six little-endian words.
HEADER_SIZE: Final = 24

#: The TCP port of the first emulator's adbd; more terminals take 5557, 5559, ... like emulators.
DEFAULT_PORT: Final = 5555

#: What Android's shell calls itself in its error messages.
SHELL_PATH: Final = "/system/bin/sh"

#: Features this device implements, advertised in the CNXN banner. Hosts switch behaviour on
#: them (``adb shell`` uses the v2 shell protocol and exit codes only if ``shell_v2`` is there),
#: so nothing is listed that services.py does not implement.
DEFAULT_FEATURES: Final = ("shell_v2", "cmd")


class ShellPacketId(enum.IntEnum):
    """Packet ids of the shell protocol v2 (``shell_protocol.h``)."""

    STDIN = 0
    STDOUT = 1
    STDERR = 2
    EXIT = 3
    CLOSE_STDIN = 4
    WINDOW_SIZE_CHANGE = 5
    INVALID = 255


#: Shell v2 packet header: the id byte and a little-endian 32-bit length.
SHELL_HEADER_SIZE: Final = 5
