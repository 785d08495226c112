"""backend.portal.keys.service on a database of its own: creation, rotation, the key ring."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from backend.core.database import create_engine, create_sessionmaker
from backend.core.field_encryption import FieldCipher, FieldDecryptionError
from backend.core.settings import Settings
from backend.portal.keys.repository import SigningKeyRepository
from backend.portal.keys.service import (
    KeyRing,
    _signing_key_of,
    choose_signing_key,
    signing_key_service,
)
from backend.portal.models import SigningKeyRecord
from tests.backend.portal.keys.conftest import db_session, rotate


def _cipher(settings: Settings) -> FieldCipher:
    return FieldCipher.from_spec(settings.field_encryption_keys)


def _ensure_active(settings: Settings) -> None:
    async def main() -> None:
        async with db_session(settings) as session:
            await signing_key_service.ensure_active(session, _cipher(settings))

    asyncio.run(main())


def _records(settings: Settings) -> list[SigningKeyRecord]:
    async def main() -> list[SigningKeyRecord]:
        async with db_session(settings) as session:
            statement = select(SigningKeyRecord).order_by(SigningKeyRecord.created_at)
            return list((await session.execute(statement)).scalars().all())

    return asyncio.run(main())


def _statuses(settings: Settings) -> dict[str, str]:
    return {record.kid: record.status for record in _records(settings)}


def test_ensure_active_creates_one_es256_key_and_is_idempotent(fresh_settings: Settings) -> None:
    assert _records(fresh_settings) == []
    _ensure_active(fresh_settings)
    _ensure_active(fresh_settings)
    [record] = _records(fresh_settings)
    assert record.status == "active"
    assert record.algorithm == "ES256"
    assert record.public_jwk["kid"] == record.kid
    assert "d" not in record.public_jwk


def test_portals_starting_together_create_a_single_key(fresh_settings: Settings) -> None:
    async def main() -> None:
        engine = create_engine(fresh_settings, application_name="tests-keys")
        sessionmaker = create_sessionmaker(engine)
        cipher = _cipher(fresh_settings)

        async def start_one() -> None:
            async with sessionmaker() as session, session.begin():
                await signing_key_service.ensure_active(session, cipher)

        try:
            await asyncio.gather(*(start_one() for _ in range(5)))
        finally:
            await engine.dispose()

    asyncio.run(main())
    assert list(_statuses(fresh_settings).values()) == ["active"]


def test_private_key_is_stored_encrypted_and_bound_to_its_kid(fresh_settings: Settings) -> None:
    _ensure_active(fresh_settings)
    rotate(fresh_settings, keep_published_s=3600)
    first, second = _records(fresh_settings)
    for record in (first, second):
        assert record.private_key_ciphertext.startswith("v1.")
        assert "PRIVATE KEY" not in record.private_key_ciphertext
        key = _signing_key_of(record, _cipher(fresh_settings))
        assert isinstance(key.private_key, ec.EllipticCurvePrivateKey)
        assert key.public_jwk() == record.public_jwk

    # A ciphertext moved to another key's row does not decrypt.
    first.private_key_ciphertext = second.private_key_ciphertext
    with pytest.raises(FieldDecryptionError):
        _signing_key_of(first, _cipher(fresh_settings))


def test_rotate_retires_the_active_key_into_retiring(fresh_settings: Settings) -> None:
    _ensure_active(fresh_settings)
    [original] = _records(fresh_settings)
    previous, new_kid = rotate(fresh_settings, keep_published_s=3600)
    assert previous == original.kid
    records = {record.kid: record for record in _records(fresh_settings)}
    assert records[original.kid].status == "retiring"
    assert records[original.kid].retired_at is not None
    assert records[new_kid].status == "active"
    assert records[new_kid].retired_at is None


def test_rotate_on_an_empty_database_just_creates_the_first_key(fresh_settings: Settings) -> None:
    previous, new_kid = rotate(fresh_settings, keep_published_s=0)
    assert previous is None
    assert _statuses(fresh_settings) == {new_kid: "active"}


def test_rotate_retires_only_keys_retiring_for_longer_than_keep_published(
    fresh_settings: Settings,
) -> None:
    _, k1 = rotate(fresh_settings, keep_published_s=3600)
    _, k2 = rotate(fresh_settings, keep_published_s=3600)
    _, k3 = rotate(fresh_settings, keep_published_s=3600)
    assert _statuses(fresh_settings) == {k1: "retiring", k2: "retiring", k3: "active"}

    _, k4 = rotate(fresh_settings, keep_published_s=0)
    assert _statuses(fresh_settings) == {k1: "retired", k2: "retired", k3: "retiring", k4: "active"}


def test_published_lists_active_and_retiring_newest_first(fresh_settings: Settings) -> None:
    _, k1 = rotate(fresh_settings, keep_published_s=3600)
    _, k2 = rotate(fresh_settings, keep_published_s=3600)
    _, k3 = rotate(fresh_settings, keep_published_s=0)

    async def main() -> list[str]:
        async with db_session(fresh_settings) as session:
            return [record.kid for record in await SigningKeyRepository(session).published()]

    assert asyncio.run(main()) == [k3, k2]
    assert _statuses(fresh_settings)[k1] == "retired"


def test_only_one_key_can_be_active(fresh_settings: Settings) -> None:
    _ensure_active(fresh_settings)

    async def main() -> None:
        async with db_session(fresh_settings) as session:
            await session.execute(text("UPDATE portal.signing_keys SET status = 'retiring'"))
            await session.execute(text("UPDATE portal.signing_keys SET status = 'active'"))

    rotate(fresh_settings, keep_published_s=3600)
    with pytest.raises(IntegrityError, match="uq_signing_keys_one_active"):
        asyncio.run(main())


# --- KeyRing ------------------------------------------------------------------------------------


def _with_ring(settings: Settings, body: Any, *, refresh_s: float) -> Any:
    async def main() -> Any:
        engine = create_engine(settings, application_name="tests-keys")
        try:
            ring = KeyRing(create_sessionmaker(engine), _cipher(settings), refresh_s=refresh_s)
            await ring.load()
            return await body(ring)
        finally:
            await engine.dispose()

    return asyncio.run(main())


def test_ring_load_without_an_active_key_fails_loudly(fresh_settings: Settings) -> None:
    async def body(ring: KeyRing) -> None:
        raise AssertionError("load() should have failed")

    with pytest.raises(RuntimeError, match="no active signing key"):
        _with_ring(fresh_settings, body, refresh_s=60)


def test_ring_signs_with_the_active_key_and_verifies_every_published_key(
    fresh_settings: Settings,
) -> None:
    _, k1 = rotate(fresh_settings, keep_published_s=3600)
    _, k2 = rotate(fresh_settings, keep_published_s=3600)

    async def body(ring: KeyRing) -> tuple[str, set[str], bool, list[dict[str, Any]]]:
        signing = await ring.signing_key()
        published = {kid for kid in (k1, k2) if await ring.get(kid) is not None}
        return signing.kid, published, await ring.get("nope") is None, await ring.jwks()

    signing_kid, published, unknown_is_none, jwks = _with_ring(fresh_settings, body, refresh_s=60)
    assert signing_kid == k2
    assert published == {k1, k2}
    assert unknown_is_none
    assert [jwk["kid"] for jwk in jwks] == [k2, k1]
    assert all("d" not in jwk and jwk["alg"] == "ES256" for jwk in jwks)


def test_ring_keeps_signing_with_its_key_until_the_refresh_period(
    fresh_settings: Settings,
) -> None:
    _, k1 = rotate(fresh_settings, keep_published_s=3600)

    async def body(ring: KeyRing) -> tuple[str, str, str]:
        _, k2 = await asyncio.to_thread(rotate, fresh_settings, keep_published_s=3600)
        still = (await ring.signing_key()).kid
        await asyncio.sleep(0.35)
        return k2, still, (await ring.signing_key()).kid

    k2, before_refresh, after_refresh = _with_ring(fresh_settings, body, refresh_s=0.3)
    assert before_refresh == k1
    assert after_refresh == k2


def test_ring_reloads_for_an_unknown_kid_at_most_once_a_second(
    fresh_settings: Settings,
) -> None:
    rotate(fresh_settings, keep_published_s=3600)

    async def body(ring: KeyRing) -> tuple[bool, bool, str]:
        _, new_kid = await asyncio.to_thread(rotate, fresh_settings, keep_published_s=3600)
        found_at_once = await ring.get(new_kid) is not None  # loaded < 1 s ago: no reload
        await asyncio.sleep(1.05)
        found_later = await ring.get(new_kid) is not None
        return found_at_once, found_later, (await ring.signing_key()).kid

    found_at_once, found_later, signing_kid = _with_ring(fresh_settings, body, refresh_s=3600)
    assert not found_at_once
    assert found_later
    # The reload also moved signing to the new active key, long before refresh_s.
    assert _statuses(fresh_settings)[signing_kid] == "active"


def test_retired_keys_leave_the_ring_on_reload(fresh_settings: Settings) -> None:
    _, k1 = rotate(fresh_settings, keep_published_s=3600)
    rotate(fresh_settings, keep_published_s=3600)

    async def body(ring: KeyRing) -> tuple[bool, bool]:
        had_it = await ring.get(k1) is not None
        await asyncio.to_thread(rotate, fresh_settings, keep_published_s=0)
        await ring.load()
        return had_it, await ring.get(k1) is not None

    assert _with_ring(fresh_settings, body, refresh_s=3600) == (True, False)


def test_retired_at_is_set_when_the_key_stops_signing(fresh_settings: Settings) -> None:
    _ensure_active(fresh_settings)
    before = dt.datetime.now(dt.UTC)
    rotate(fresh_settings, keep_published_s=3600)
    retiring = [r for r in _records(fresh_settings) if r.status == "retiring"]
    assert len(retiring) == 1
    assert retiring[0].retired_at is not None
    assert abs((retiring[0].retired_at - before).total_seconds()) < 60


class TestChooseSigningKey:
    """A new key is published before it signs, so no verifier meets a kid it cannot fetch."""

    NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)

    def _record(self, kid: str, status: str, age_s: float) -> SigningKeyRecord:
        return SigningKeyRecord(
            kid=kid,
            algorithm="ES256",
            private_key_ciphertext="x",
            public_jwk={},
            status=status,
            created_at=self.NOW - dt.timedelta(seconds=age_s),
        )

    def test_a_fresh_key_waits_while_the_previous_one_keeps_signing(self) -> None:
        records = [self._record("new", "active", 5), self._record("old", "retiring", 600)]
        chosen = choose_signing_key(records, now=self.NOW, activation_delay_s=15)
        assert chosen is not None
        assert chosen.kid == "old"

    def test_the_new_key_signs_once_published_long_enough(self) -> None:
        records = [self._record("new", "active", 15), self._record("old", "retiring", 600)]
        chosen = choose_signing_key(records, now=self.NOW, activation_delay_s=15)
        assert chosen is not None
        assert chosen.kid == "new"

    def test_the_first_key_signs_at_once(self) -> None:
        chosen = choose_signing_key(
            [self._record("first", "active", 0)], now=self.NOW, activation_delay_s=15
        )
        assert chosen is not None
        assert chosen.kid == "first"

    def test_no_active_key_means_none(self) -> None:
        records = [self._record("old", "retiring", 600)]
        assert choose_signing_key(records, now=self.NOW, activation_delay_s=15) is None


def test_settings_refuse_a_delay_shorter_than_the_refetch_interval() -> None:
    with pytest.raises(ValueError, match="signing_key_activation_delay_s"):
        Settings(jwks_min_refetch_interval_s=10, signing_key_activation_delay_s=5)
