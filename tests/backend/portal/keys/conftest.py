"""Key rotation changes what every portal process signs with, so these tests rotate on databases
and platforms of their own: rotating the session database's keys would race the other tests'
verifiers (a verifier refetches its JWKS at most every 10 s).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from backend.core.database import create_engine, create_sessionmaker
from backend.core.field_encryption import FieldCipher
from backend.core.migrations import upgrade_all
from backend.core.settings import SERVICE_NAMES, Settings
from backend.portal.keys.service import signing_key_service
from backend.runtime.embedded import derive_settings
from backend.runtime.server import PlatformThread
from tests.helpers import asyncpg_dsn, free_ports, with_database

# The services whose bearer authentication rotation must not break.
TOKEN_SERVICES = ("portal", "smarttab", "pgw")

# How often the isolated portal rereads its keys: short, so a rotation shows up at once.
KEY_RING_REFRESH_S = 0.2
JWKS_MIN_REFETCH_S = 0.5
# Longer than the refetch interval, as Settings requires: new keys publish before they sign.
ACTIVATION_DELAY_S = 1.0


async def _admin(server_url: str, statement: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(server_url))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def migrated_template(postgres_server_url: str) -> Iterator[str]:
    """A migrated, empty database that ``fresh_settings`` clones (much faster than migrating)."""
    name = f"mpac_keys_template_{secrets.token_hex(6)}"
    asyncio.run(_admin(postgres_server_url, f'CREATE DATABASE "{name}"'))
    try:
        upgrade_all(with_database(postgres_server_url, name))
        yield name
    finally:
        asyncio.run(_admin(postgres_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def fresh_settings(
    postgres_server_url: str, migrated_template: str, test_settings: Settings
) -> Iterator[Settings]:
    """``test_settings`` on a new, migrated database of its own (no signing key yet)."""
    name = f"mpac_keys_{secrets.token_hex(6)}"
    asyncio.run(
        _admin(postgres_server_url, f'CREATE DATABASE "{name}" TEMPLATE "{migrated_template}"')
    )
    try:
        ports = dict(
            zip(
                (f"{service}_port" for service in SERVICE_NAMES),
                free_ports(len(SERVICE_NAMES)),
                strict=True,
            )
        )
        yield derive_settings(
            test_settings,
            database_url=with_database(postgres_server_url, name),
            key_ring_refresh_s=KEY_RING_REFRESH_S,
            jwks_min_refetch_interval_s=JWKS_MIN_REFETCH_S,
            signing_key_activation_delay_s=ACTIVATION_DELAY_S,
            **ports,
        )
    finally:
        asyncio.run(_admin(postgres_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@dataclass
class Isolated:
    settings: Settings
    platform: PlatformThread
    portal: httpx.Client
    smarttab: httpx.Client
    pgw: httpx.Client

    def rotate(self, *, keep_published_s: int = 3600) -> tuple[str | None, str]:
        return rotate(self.settings, keep_published_s=keep_published_s)


@pytest.fixture
def isolated(fresh_settings: Settings) -> Iterator[Isolated]:
    """portal, smarttab and pgw on ``fresh_settings`` (own database and ports, fast key ring)."""
    thread = PlatformThread(fresh_settings, services=TOKEN_SERVICES).start()
    clients = [
        httpx.Client(base_url=thread.url_of(service), timeout=10.0) for service in TOKEN_SERVICES
    ]
    try:
        yield Isolated(fresh_settings, thread, *clients)
    finally:
        for client in clients:
            client.close()
        thread.stop()


@asynccontextmanager
async def db_session(settings: Settings) -> AsyncIterator[AsyncSession]:
    """One transaction on ``settings``' database, committed at the end."""
    engine = create_engine(settings, application_name="tests-keys")
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            yield session
    finally:
        await engine.dispose()


def rotate(settings: Settings, *, keep_published_s: int) -> tuple[str | None, str]:
    """What an operator's rotation does: a new active key, the old one kept published."""

    async def main() -> tuple[str | None, str]:
        cipher = FieldCipher.from_spec(settings.field_encryption_keys)
        async with db_session(settings) as session:
            return await signing_key_service.rotate(
                session, cipher, keep_published_s=keep_published_s
            )

    return asyncio.run(main())
