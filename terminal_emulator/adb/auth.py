"""ADB's RSA authentication: Android's public key format, signature checks and the allowlist.

The device sends a random 20-byte token (AUTH TOKEN); the host signs it with its private key as
if it were a SHA-1 digest (RSA PKCS#1 v1.5, no hashing of its own) and sends the signature
(AUTH SIGNATURE). If no allowed key verifies it, the device sends a fresh token; once the host
has run out of keys it sends its public key (AUTH RSAPUBLICKEY) and a real phone shows the
"Allow USB debugging?" prompt. Here ``allow_new_keys`` plays the user tapping "Allow" at once;
otherwise the connection stays unauthorized until ``AdbDeviceServer.allow_key`` approves it.

Public keys travel and are stored (``adb_keys``, ``adbkey.pub``) as one line:
base64 of Android's ``RSAPublicKey`` struct, a space and a comment (``user@host``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

_LOGGER = logging.getLogger(__name__)

#: Android only has 2048-bit ADB keys (``android_pubkey.h``: ANDROID_PUBKEY_MODULUS_SIZE).
MODULUS_BITS = 2048
MODULUS_BYTES = MODULUS_BITS // 8
MODULUS_WORDS = MODULUS_BYTES // 4

# struct RSAPublicKey { uint32 modulus_size_words; uint32 n0inv; uint8 n[256] (little-endian);
#                       uint8 rr[256] (R^2 mod n, little-endian); uint32 exponent; }
_STRUCT = struct.Struct(f"<II{MODULUS_BYTES}s{MODULUS_BYTES}sI")
ANDROID_PUBKEY_ENCODED_SIZE = _STRUCT.size


class KeyFormatError(ValueError):
    """Not a usable Android ADB public key."""


def encode_android_pubkey(key: rsa.RSAPublicKey) -> bytes:
    """The ``RSAPublicKey`` struct adbd and the adb host exchange, for a 2048-bit RSA key."""
    numbers = key.public_numbers()
    if key.key_size != MODULUS_BITS:
        raise KeyFormatError(f"ADB keys are {MODULUS_BITS}-bit RSA, not {key.key_size}-bit")
    n, e = numbers.n, numbers.e
    # Montgomery constants for Android's old mincrypt verifier: current adbd ignores them, but
    # every key file carries them, so a key written here reads back on any Android.
    n0inv = (-pow(n, -1, 2**32)) % 2**32
    rr = pow(2, 2 * MODULUS_BITS, n)
    return _STRUCT.pack(
        MODULUS_WORDS,
        n0inv,
        n.to_bytes(MODULUS_BYTES, "little"),
        rr.to_bytes(MODULUS_BYTES, "little"),
        e,
    )


def decode_android_pubkey(blob: bytes) -> rsa.RSAPublicKey:
    """Parse the struct; like adbd's ``android_pubkey_decode`` only n and e are used."""
    if len(blob) != ANDROID_PUBKEY_ENCODED_SIZE:
        raise KeyFormatError(f"key struct is {len(blob)} bytes, not {ANDROID_PUBKEY_ENCODED_SIZE}")
    words, _n0inv, modulus, _rr, exponent = _STRUCT.unpack(blob)
    if words != MODULUS_WORDS:
        raise KeyFormatError(f"modulus of {words} words, expected {MODULUS_WORDS}")
    n = int.from_bytes(modulus, "little")
    if n.bit_length() != MODULUS_BITS or exponent < 3 or exponent % 2 == 0:
        raise KeyFormatError("not a valid 2048-bit RSA public key")
    try:
        return rsa.RSAPublicNumbers(exponent, n).public_key()
    except ValueError as exc:
        raise KeyFormatError(str(exc)) from exc


@dataclass(frozen=True)
class AdbPublicKey:
    """A host's public key, as found in ``adbkey.pub`` / ``adb_keys`` or an AUTH message."""

    n: int
    e: int
    comment: str = field(default="", compare=False)

    @classmethod
    def from_public_key(cls, key: rsa.RSAPublicKey, comment: str = "") -> AdbPublicKey:
        numbers = key.public_numbers()
        return cls(numbers.n, numbers.e, comment)

    @classmethod
    def parse(cls, text: str | bytes) -> AdbPublicKey:
        """One ``base64 [comment]`` line; a trailing NUL (AUTH payloads carry one) is ignored."""
        if isinstance(text, bytes):
            text = text.split(b"\0", 1)[0].decode("utf-8", errors="replace")
        parts = text.strip().split(None, 1)
        if not parts:
            raise KeyFormatError("empty key")
        try:
            blob = base64.b64decode(parts[0], validate=True)
        except (binascii.Error, ValueError) as exc:
            raise KeyFormatError(f"key is not base64: {exc}") from exc
        key = decode_android_pubkey(blob)
        return cls.from_public_key(key, parts[1].strip() if len(parts) > 1 else "")

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return rsa.RSAPublicNumbers(self.e, self.n).public_key()

    def encode(self) -> bytes:
        return encode_android_pubkey(self.public_key)

    def to_line(self) -> str:
        """The ``adb_keys`` line: what ``adb`` writes to ``adbkey.pub``."""
        encoded = base64.b64encode(self.encode()).decode("ascii")
        return f"{encoded} {self.comment}".rstrip()

    @property
    def fingerprint(self) -> str:
        """What Android's "Allow USB debugging?" dialog shows: MD5 of the struct, hex pairs."""
        digest = hashlib.md5(self.encode(), usedforsecurity=False).hexdigest().upper()
        return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))

    def verify(self, token: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's PKCS#1 v1.5 signature of ``token`` as a SHA-1
        digest (adbd: ``RSA_verify(NID_sha1, token, ...)``; the token is not hashed again)."""
        try:
            self.public_key.verify(
                signature,
                token,
                padding.PKCS1v15(),
                Prehashed(hashes.SHA1()),  # noqa: S303 - the ADB protocol fixes SHA-1
            )
        except (InvalidSignature, ValueError):
            return False
        return True


class AdbKeyStore:
    """The device's allowlist of host keys (Android: ``/data/misc/adb/adb_keys``).

    ``path`` is the ``adb_keys`` file: read on ``load`` and appended to when a key is allowed,
    so an approval survives restarts. ``allow_new_keys`` auto-accepts any key the host offers
    (like a user who always taps "Allow"); keep it off for anything reachable by others.
    """

    def __init__(
        self,
        keys: Iterable[AdbPublicKey] = (),
        *,
        path: Path | None = None,
        allow_new_keys: bool = False,
    ) -> None:
        self._keys: list[AdbPublicKey] = []
        for key in keys:
            if key not in self._keys:
                self._keys.append(key)
        self.path = path
        self.allow_new_keys = allow_new_keys

    @classmethod
    def load(cls, path: Path, *, allow_new_keys: bool = False) -> AdbKeyStore:
        """The keys in ``path`` (missing file = none yet); unreadable lines are skipped and
        logged, as adbd does, so one bad line does not lock every host out."""
        keys: list[AdbPublicKey] = []
        if path.exists():
            for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
                if not line.strip() or line.lstrip().startswith("#"):
                    continue
                try:
                    keys.append(AdbPublicKey.parse(line))
                except KeyFormatError as exc:
                    _LOGGER.warning("%s:%d: ignoring ADB key: %s", path, number, exc)
        return cls(keys, path=path, allow_new_keys=allow_new_keys)

    @property
    def keys(self) -> tuple[AdbPublicKey, ...]:
        return tuple(self._keys)

    def is_allowed(self, key: AdbPublicKey) -> bool:
        return key in self._keys

    def allow(self, key: AdbPublicKey) -> None:
        """Add ``key`` (and append it to the ``adb_keys`` file, if there is one)."""
        if key in self._keys:
            return
        self._keys.append(key)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as file:
                file.write(key.to_line() + "\n")
        _LOGGER.info("ADB key %s (%s) allowed", key.fingerprint, key.comment or "no comment")

    def find_signer(self, token: bytes, signature: bytes) -> AdbPublicKey | None:
        """The allowed key that signed ``token``, if any."""
        for key in self._keys:
            if key.verify(token, signature):
                return key
        return None
