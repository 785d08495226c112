"""backend.core.passwords: argon2id hashes with the configured cost, verified off the loop."""

from __future__ import annotations

import asyncio

import pytest

from backend.core.passwords import Passwords
from backend.core.settings import Settings


@pytest.fixture(scope="module")
def passwords() -> Passwords:
    return Passwords(Settings(password_hash_time_cost=1, password_hash_memory_kib=8192))


def test_hash_is_argon2id_with_the_configured_cost(passwords: Passwords) -> None:
    hashed = asyncio.run(passwords.hash("s3cret!"))
    assert hashed.startswith("$argon2id$")
    assert "m=8192,t=1," in hashed
    assert "s3cret!" not in hashed


def test_same_password_hashes_differently(passwords: Passwords) -> None:
    assert asyncio.run(passwords.hash("same")) != asyncio.run(passwords.hash("same"))


def test_verify_accepts_the_right_password_only(passwords: Passwords) -> None:
    hashed = asyncio.run(passwords.hash("correct horse"))
    assert asyncio.run(passwords.verify(hashed, "correct horse")) is True
    assert asyncio.run(passwords.verify(hashed, "correct horse ")) is False
    assert asyncio.run(passwords.verify(hashed, "")) is False


def test_missing_hash_never_verifies_even_with_the_dummy_password(passwords: Passwords) -> None:
    # The dummy hash keeps timing equal for unknown accounts; it must not become a login.
    assert asyncio.run(passwords.verify(None, "not-a-real-password")) is False
    assert asyncio.run(passwords.verify(None, "anything")) is False


@pytest.mark.parametrize("stored", ["", "plain-text", "$argon2id$v=19$garbage", "$2b$12$abc"])
def test_corrupt_stored_hash_is_a_failed_verification_not_an_error(
    passwords: Passwords, stored: str
) -> None:
    assert asyncio.run(passwords.verify(stored, "whatever")) is False


def test_needs_rehash_when_the_cost_changes(passwords: Passwords) -> None:
    hashed = asyncio.run(passwords.hash("pw"))
    assert passwords.needs_rehash(hashed) is False
    stronger = Passwords(Settings(password_hash_time_cost=2, password_hash_memory_kib=8192))
    assert stronger.needs_rehash(hashed) is True
    assert asyncio.run(stronger.verify(hashed, "pw")) is True
