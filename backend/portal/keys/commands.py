"""``mpac keys rotate``: a new token signing key, with no downtime for tokens already issued."""

from __future__ import annotations

import argparse
import asyncio

from backend.core.database import create_engine, create_sessionmaker
from backend.core.field_encryption import FieldCipher
from backend.core.settings import Settings
from backend.portal.audit.service import AuditEventType, audit_log
from backend.portal.keys.service import signing_key_service
from backend.runtime.commands import common_options, run_prepared
from backend.runtime.embedded import Infrastructure


async def rotate_signing_key(settings: Settings) -> tuple[str | None, str]:
    """Make a new key active; the previous one stays published until its tokens have expired."""
    engine = create_engine(settings, application_name="mpac-keys")
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            previous, new = await signing_key_service.rotate(
                session,
                FieldCipher.from_spec(settings.field_encryption_keys),
                keep_published_s=settings.human_access_token_ttl_s + settings.clock_skew_leeway_s,
            )
            await audit_log.record(
                session,
                AuditEventType.SIGNING_KEY_ROTATED,
                actor_type="system",
                target_type="signing_key",
                target_id=new,
                detail={"previous_kid": previous},
            )
            return previous, new
    finally:
        await engine.dispose()


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = subparsers.add_parser("keys", help="manage the portal's token signing keys")
    actions = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    rotate = actions.add_parser(
        "rotate",
        parents=[common_options()],
        help="make a new signing key active; the old one stays in the JWKS until its tokens expire",
    )
    rotate.set_defaults(handler=cmd_rotate)


def cmd_rotate(args: argparse.Namespace) -> int:
    def body(infra: Infrastructure) -> int:
        previous, new = asyncio.run(rotate_signing_key(infra.settings))
        print(f"signing key rotated: {previous or '(none)'} -> {new}")
        print("running portals pick it up within MPAC_KEY_RING_REFRESH_S; verifiers via the JWKS")
        return 0

    return run_prepared(args, body)
