"""Alembic, one migration history per service, each in its own PostgreSQL schema."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from backend.core.database import async_database_url
from backend.core.settings import SERVICE_NAMES

_BACKEND_DIR = Path(__file__).resolve().parent.parent
# Serialises concurrent migrators (several processes of one service starting together).
_MIGRATION_LOCK_ID = 0x6D706163


def alembic_config(service: str, database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_BACKEND_DIR / service / "migrations"))
    config.set_main_option("sqlalchemy.url", async_database_url(database_url).replace("%", "%%"))
    config.attributes["service_schema"] = service
    return config


def _in_fresh_thread(fn: object, *args: object) -> None:
    """Alembic's env runs its own event loop; never nest it inside a running one."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            fn(*args)  # type: ignore[operator]
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target, name="mpac-migrations")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def upgrade(service: str, database_url: str, revision: str = "head") -> None:
    _in_fresh_thread(command.upgrade, alembic_config(service, database_url), revision)


def upgrade_all(database_url: str) -> None:
    for service in SERVICE_NAMES:
        upgrade(service, database_url)


def run_env(target_metadata: MetaData) -> None:
    """Body of every service's ``migrations/env.py``."""
    config = context.config
    schema: str = config.attributes["service_schema"]
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None

    def include_name(name: str | None, type_: str, parent_names: object) -> bool:
        return name == schema if type_ == "schema" else True

    def run_sync(connection: Connection) -> None:
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table_schema=schema,
            include_schemas=True,
            include_name=include_name,
            compare_type=True,
        )
        context.run_migrations()

    async def run_async() -> None:
        engine = create_async_engine(url, poolclass=NullPool)
        try:
            async with engine.begin() as connection:
                await connection.run_sync(run_sync)
        finally:
            await engine.dispose()

    if context.is_offline_mode():
        context.configure(url=url, target_metadata=target_metadata, version_table_schema=schema)
        with context.begin_transaction():
            context.run_migrations()
    else:
        asyncio.run(run_async())
