"""Creating a PSP and its first administrator: the operator's bootstrap, outside any tenant."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from backend.core.authz import Principal, Role, TenantScope
from backend.core.errors import Conflict
from backend.core.passwords import Passwords
from backend.portal.audit.service import AuditEventType, audit_log
from backend.portal.auth.repository import CredentialRepository
from backend.portal.models import Psp, User
from backend.portal.psps.repository import PspRepository


def principal_of(user: User) -> Principal:
    return Principal(
        kind="user",
        subject_id=user.id,
        role=Role(user.role),
        scope=TenantScope(psp_id=user.psp_id, merchant_id=user.merchant_id, store_id=user.store_id),
    )


class PspService:
    async def create_with_admin(
        self,
        session: AsyncSession,
        passwords: Passwords,
        *,
        name: str,
        admin_email: str,
        admin_password: str,
        admin_name: str = "PSP administrator",
    ) -> tuple[Psp, User]:
        if await CredentialRepository(session).by_email(admin_email) is not None:
            raise Conflict("A user with this e-mail already exists.", code="email_taken")
        psp = await PspRepository(session).add(Psp(id=uuid.uuid4(), name=name))
        admin = User(
            psp_id=psp.id,
            email=admin_email.lower(),
            display_name=admin_name,
            password_hash=await passwords.hash(admin_password),
            role=Role.PSP_ADMIN.value,
        )
        await CredentialRepository(session).add(admin)
        await audit_log.record(
            session,
            AuditEventType.USER_CREATED,
            actor_type="system",
            scope=TenantScope(psp_id=psp.id),
            target_type="user",
            target_id=admin.id,
            detail={"role": Role.PSP_ADMIN.value, "bootstrap": True},
        )
        return psp, admin


psp_service = PspService()
