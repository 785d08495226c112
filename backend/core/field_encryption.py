"""AES-256-GCM encryption of sensitive columns, with the key id stored for rotation.

A ciphertext reads ``v1.<kid>.<nonce>.<ciphertext+tag>`` (URL-safe base64). The caller passes
associated data naming the row and column, so a ciphertext copied into another row or column
does not decrypt.
"""

from __future__ import annotations

import base64
import os
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = "v1"
_KEY_BYTES = 32
_NONCE_BYTES = 12


class FieldDecryptionError(Exception):
    pass


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def generate_key_spec(kid: str | None = None) -> str:
    """A new ``kid:base64key`` entry for ``MPAC_FIELD_ENCRYPTION_KEYS``."""
    return f"{kid or secrets.token_hex(4)}:{_b64encode(os.urandom(_KEY_BYTES))}"


def _parts(token: str) -> tuple[str, str, str, str]:
    try:
        version, kid, nonce, sealed = token.split(".")
    except ValueError as exc:
        raise FieldDecryptionError("not a field ciphertext") from exc
    return version, kid, nonce, sealed


@dataclass(frozen=True)
class FieldCipher:
    keys: dict[str, bytes]
    active_kid: str

    @classmethod
    def from_spec(cls, spec: str) -> FieldCipher:
        """Parse ``kid:base64key[,kid:base64key...]``; the first key encrypts, all decrypt."""
        keys: dict[str, bytes] = {}
        for entry in filter(None, (part.strip() for part in spec.split(","))):
            kid, sep, encoded = entry.partition(":")
            if not sep or not kid or "." in kid:
                raise ValueError("field encryption keys are 'kid:base64key' entries")
            key = _b64decode(encoded)
            if len(key) != _KEY_BYTES:
                raise ValueError(f"field encryption key {kid!r} is not 256 bits")
            keys[kid] = key
        if not keys:
            raise ValueError("no field encryption key is configured (MPAC_FIELD_ENCRYPTION_KEYS)")
        return cls(keys=keys, active_kid=next(iter(keys)))

    def encrypt(self, plaintext: str, *, associated_data: str) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = AESGCM(self.keys[self.active_kid]).encrypt(
            nonce, plaintext.encode(), associated_data.encode()
        )
        return ".".join((_VERSION, self.active_kid, _b64encode(nonce), _b64encode(sealed)))

    def decrypt(self, token: str, *, associated_data: str) -> str:
        version, kid, nonce_b64, sealed_b64 = _parts(token)
        if version != _VERSION or kid not in self.keys:
            raise FieldDecryptionError(f"unknown field key {kid!r}")
        try:
            nonce, sealed = _b64decode(nonce_b64), _b64decode(sealed_b64)
        except ValueError as exc:  # binascii.Error is a ValueError
            raise FieldDecryptionError("ciphertext is not valid base64") from exc
        if len(nonce) != _NONCE_BYTES:
            raise FieldDecryptionError("ciphertext nonce has the wrong length")
        try:
            plain = AESGCM(self.keys[kid]).decrypt(nonce, sealed, associated_data.encode())
        except InvalidTag as exc:
            raise FieldDecryptionError("ciphertext does not authenticate") from exc
        return plain.decode()

    def derive_key(self, label: str) -> bytes:
        """A 256-bit key for another purpose (keyed hashes), derived with HKDF from the active key."""
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label.encode()).derive(
            self.keys[self.active_kid]
        )

    def key_id_of(self, token: str) -> str:
        return _parts(token)[1]

    def needs_reencryption(self, token: str) -> bool:
        return self.key_id_of(token) != self.active_kid
