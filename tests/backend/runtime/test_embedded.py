from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psutil
import pytest
from redis.asyncio import Redis

from backend.core.field_encryption import FieldCipher, generate_key_spec
from backend.core.settings import Settings
from backend.runtime.embedded import (
    FIELD_KEYS_FILE,
    SetupError,
    derive_settings,
    ensure_field_encryption_keys,
    infrastructure,
    mask_url,
    start_postgres,
    start_redis,
)
from tests.helpers import run, server_tmp_dir


def _gone(pid: int | None) -> bool:
    assert pid is not None
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def _postgres_version(url: str) -> str:
    connection = await asyncpg.connect(url)
    try:
        version: str = await connection.fetchval("SHOW server_version")
        return version
    finally:
        await connection.close()


async def _redis_roundtrip(url: str) -> str | None:
    client = Redis.from_url(url)
    try:
        await client.set("mpac:test", "pong")
        value = await client.get("mpac:test")
        return value.decode() if isinstance(value, bytes) else value
    finally:
        await client.aclose()


@pytest.fixture
def server_dir() -> Iterator[Path]:
    with server_tmp_dir() as path:
        yield path


@pytest.mark.slow
def test_embedded_postgres_starts_answers_and_stops(server_dir: Path) -> None:
    server = start_postgres(server_dir / "postgres")
    try:
        assert server.url.startswith("postgresql://")
        assert run(_postgres_version(server.url)).startswith("16")
    finally:
        server.stop()
    assert _gone(server.pid)


def test_embedded_redis_starts_answers_and_stops(tmp_path: Path) -> None:
    server = start_redis(tmp_path / "redis" / "redis.db")
    try:
        assert server.url.startswith("unix://")
        assert run(_redis_roundtrip(server.url)) == "pong"
    finally:
        server.stop()
    assert _gone(server.pid)


def test_infrastructure_uses_given_urls_without_starting_anything(
    test_settings: Settings,
) -> None:
    with infrastructure(test_settings) as infra:
        assert infra.postgres is None
        assert infra.redis is None
        assert infra.settings is test_settings


@pytest.mark.slow
def test_infrastructure_starts_embedded_servers_under_the_state_dir(server_dir: Path) -> None:
    settings = Settings(state_dir=server_dir, database_url="", redis_url="")
    with infrastructure(settings) as infra:
        assert infra.postgres is not None
        assert infra.redis is not None
        assert infra.postgres.data_dir == server_dir.resolve() / "postgres"
        assert infra.redis.db_file == server_dir.resolve() / "redis" / "redis.db"
        assert infra.settings.database_url == infra.postgres.url
        assert infra.settings.redis_url == infra.redis.url
        assert run(_redis_roundtrip(infra.settings.redis_url)) == "pong"
        labels = [label for label, _ in infra.describe()]
        assert labels == ["state dir", "PostgreSQL", "Redis"]
    assert _gone(infra.postgres.pid)
    assert _gone(infra.redis.pid)


def test_field_encryption_keys_are_created_once_with_private_permissions(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path / "state", field_encryption_keys="")
    first = ensure_field_encryption_keys(settings)
    key_file = tmp_path / "state" / FIELD_KEYS_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    FieldCipher.from_spec(first.field_encryption_keys)

    again = ensure_field_encryption_keys(settings)
    assert again.field_encryption_keys == first.field_encryption_keys


def test_configured_field_encryption_keys_win_over_the_file(tmp_path: Path) -> None:
    spec = generate_key_spec("configured")
    settings = Settings(state_dir=tmp_path, field_encryption_keys=spec)
    assert ensure_field_encryption_keys(settings).field_encryption_keys == spec
    assert not (tmp_path / FIELD_KEYS_FILE).exists()


def test_a_corrupt_key_file_is_an_error_not_silently_replaced(tmp_path: Path) -> None:
    key_file = tmp_path / FIELD_KEYS_FILE
    key_file.write_text("not-a-key\n")
    with pytest.raises(SetupError, match="field encryption keys"):
        ensure_field_encryption_keys(Settings(state_dir=tmp_path, field_encryption_keys=""))
    assert key_file.read_text() == "not-a-key\n"


def test_derive_settings_recomputes_urls_from_new_ports() -> None:
    settings = Settings(portal_port=8010, portal_url="", issuer="")
    assert settings.resolved_portal_url.endswith(":8010")
    derived = derive_settings(settings, portal_port=9010)
    assert derived.resolved_portal_url.endswith(":9010")
    assert derived.jwks_url == "http://127.0.0.1:9010/.well-known/jwks.json"


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        (
            "postgresql://app:s3cret@db.example:5432/mpac",
            "postgresql://app:***@db.example:5432/mpac",
        ),
        ("redis://:pw@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        (
            "postgresql://postgres:@/postgres?host=/tmp/x",
            "postgresql://postgres:@/postgres?host=/tmp/x",
        ),
        ("unix:///tmp/redis.socket", "unix:///tmp/redis.socket"),
    ],
)
def test_mask_url_hides_passwords_only(url: str, masked: str) -> None:
    assert mask_url(url) == masked
