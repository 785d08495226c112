"""The portal's token signing keys: creation, rotation without downtime, and the in-process ring.

Rotation makes a new key active and keeps the previous one published (``retiring``) until every
token it signed has expired, so verifiers holding a cached JWKS never see an unknown kid for a
valid token; a verifier meeting the new kid refetches the JWKS.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Sequence
from typing import Any

from cryptography.hazmat.primitives import serialization
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from backend.core.field_encryption import FieldCipher
from backend.core.models import utcnow
from backend.core.tokens import SigningKey, VerificationKey, generate_signing_key
from backend.portal.keys.repository import SigningKeyRepository
from backend.portal.models import SigningKeyRecord


def _associated_data(kid: str) -> str:
    return f"portal.signing_keys.private_key:{kid}"


def _record_for(key: SigningKey, cipher: FieldCipher) -> SigningKeyRecord:
    pem = key.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return SigningKeyRecord(
        kid=key.kid,
        algorithm=key.algorithm,
        private_key_ciphertext=cipher.encrypt(pem, associated_data=_associated_data(key.kid)),
        public_jwk=key.public_jwk(),
        status="active",
    )


def _signing_key_of(record: SigningKeyRecord, cipher: FieldCipher) -> SigningKey:
    pem = cipher.decrypt(
        record.private_key_ciphertext, associated_data=_associated_data(record.kid)
    )
    private_key = serialization.load_pem_private_key(pem.encode(), password=None)
    return SigningKey(kid=record.kid, algorithm=record.algorithm, private_key=private_key)  # type: ignore[arg-type]


class SigningKeyService:
    async def ensure_active(self, session: AsyncSession, cipher: FieldCipher) -> None:
        # Several portal processes may start at once; one of them creates the first key.
        await session.execute(text("SELECT pg_advisory_xact_lock(hashtext('portal.signing_keys'))"))
        if await SigningKeyRepository(session).lock_active() is None:
            await SigningKeyRepository(session).add(_record_for(generate_signing_key(), cipher))

    async def rotate(
        self, session: AsyncSession, cipher: FieldCipher, *, keep_published_s: int
    ) -> tuple[str | None, str]:
        """Make a new key active; returns (previous kid, new kid)."""
        repository = SigningKeyRepository(session)
        now = utcnow()
        await repository.retire_retiring_before(
            now - dt.timedelta(seconds=keep_published_s), now=now
        )
        previous = await repository.lock_active()
        if previous is not None:
            previous.status = "retiring"
            previous.retired_at = now
            await session.flush()
        new_key = generate_signing_key()
        await repository.add(_record_for(new_key, cipher))
        return (previous.kid if previous else None, new_key.kid)


signing_key_service = SigningKeyService()


def choose_signing_key(
    records: Sequence[SigningKeyRecord], *, now: dt.datetime, activation_delay_s: float
) -> SigningKeyRecord | None:
    """The key to sign with: the active one once it has been published ``activation_delay_s``;
    until then the newest retiring one, which every verifier already holds."""
    active = next((r for r in records if r.status == "active"), None)
    if active is None:
        return None
    if now - active.created_at >= dt.timedelta(seconds=activation_delay_s):
        return active
    retiring = [r for r in records if r.status == "retiring"]
    return max(retiring, key=lambda r: r.created_at) if retiring else active


class KeyRing:
    """The keys this portal process signs and verifies with, reloaded from the database.

    Reloads every ``refresh_s`` and on an unknown kid (throttled), so a rotation made by another process
    or by ``mpac keys rotate`` is picked up without a restart.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        cipher: FieldCipher,
        *,
        refresh_s: float,
        activation_delay_s: float = 0.0,
    ) -> None:
        self._refresh_s = refresh_s
        self._activation_delay_s = activation_delay_s
        self._sessionmaker = sessionmaker
        self._cipher = cipher
        self._signing: SigningKey | None = None
        self._published: dict[str, VerificationKey] = {}
        self._jwks: list[dict[str, Any]] = []
        self._loaded_at = 0.0
        self._lock = asyncio.Lock()

    async def load(self) -> None:
        async with self._sessionmaker() as session:
            records = await SigningKeyRepository(session).published()
        published: dict[str, VerificationKey] = {}
        keys: dict[str, SigningKey] = {}
        for record in records:
            keys[record.kid] = _signing_key_of(record, self._cipher)
            published[record.kid] = keys[record.kid].verification_key()
        chosen = choose_signing_key(
            records, now=utcnow(), activation_delay_s=self._activation_delay_s
        )
        if chosen is None:
            raise RuntimeError("no active signing key; the portal creates one at start-up")
        signing = keys[chosen.kid]
        self._signing, self._published = signing, published
        self._jwks = [dict(record.public_jwk) for record in records]
        self._loaded_at = time.monotonic()

    async def _reload_if_older_than(self, age_s: float) -> None:
        if time.monotonic() - self._loaded_at >= age_s:
            async with self._lock:
                if time.monotonic() - self._loaded_at >= age_s:
                    await self.load()

    async def signing_key(self) -> SigningKey:
        await self._reload_if_older_than(self._refresh_s)
        assert self._signing is not None
        return self._signing

    async def jwks(self) -> list[dict[str, Any]]:
        await self._reload_if_older_than(self._refresh_s)
        return self._jwks

    async def get(self, kid: str) -> VerificationKey | None:
        """KeySource for the portal's own verifier."""
        if kid not in self._published:
            await self._reload_if_older_than(1.0)
        return self._published.get(kid)
