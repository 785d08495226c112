from __future__ import annotations

import uuid

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backend.core.authz import ROLE_SCOPE_LEVEL, Principal, Role, ScopeLevel
from backend.core.errors import Conflict, Forbidden, NotFound, Unprocessable
from backend.core.passwords import Passwords
from backend.portal.audit.service import AuditEventType, audit_log
from backend.portal.auth.repository import CredentialRepository
from backend.portal.auth.service import user_scope
from backend.portal.merchants.service import merchant_service
from backend.portal.models import User
from backend.portal.stores.service import store_service
from backend.portal.users.repository import UserRepository
from backend.portal.users.schemas import UserCreate, UserUpdate

_EMAIL_INDEX = "uq_users_email_lower"


def _may_not_assign(principal: Principal, role: Role) -> Forbidden:
    return Forbidden(
        f"Role {principal.role.value!r} cannot grant or manage the {role.value!r} role.",
        code="role_not_assignable",
    )


def _email_taken() -> Conflict:
    return Conflict("A user with this e-mail already exists.", code="email_taken")


class UserService:
    async def get(self, session: AsyncSession, principal: Principal, user_id: uuid.UUID) -> User:
        user = await UserRepository(session, principal.scope).get(user_id)
        if user is None:
            raise NotFound(f"User {user_id} does not exist.", code="user_not_found")
        return user

    async def create(
        self, session: AsyncSession, principal: Principal, passwords: Passwords, body: UserCreate
    ) -> User:
        role = Role(body.role)
        if not principal.may_assign(role):
            raise _may_not_assign(principal, role)
        level = ROLE_SCOPE_LEVEL[role]
        merchant_id: uuid.UUID | None = None
        store_id: uuid.UUID | None = None
        # Where the new user lives is read through the caller's scope, so a foreign merchant or
        # store is a 404 and the new user can never sit outside the caller's tenant.
        if level is ScopeLevel.PSP:
            if body.merchant_id or body.store_id:
                raise Unprocessable(
                    "A psp_admin belongs to no merchant or store.", code="role_scope_mismatch"
                )
        elif level is ScopeLevel.MERCHANT:
            if body.merchant_id is None or body.store_id is not None:
                raise Unprocessable(
                    f"A {role.value} needs merchant_id and no store_id.", code="role_scope_mismatch"
                )
            merchant_id = (await merchant_service.get(session, principal, body.merchant_id)).id
        else:
            if body.store_id is None:
                raise Unprocessable(f"A {role.value} needs store_id.", code="role_scope_mismatch")
            store = await store_service.get(session, principal, body.store_id)
            if body.merchant_id is not None and body.merchant_id != store.merchant_id:
                raise Unprocessable(
                    "store_id belongs to another merchant.", code="role_scope_mismatch"
                )
            merchant_id, store_id = store.merchant_id, store.id
        if await CredentialRepository(session).by_email(body.email) is not None:
            raise _email_taken()
        user = User(
            psp_id=principal.scope.psp_id,
            merchant_id=merchant_id,
            store_id=store_id,
            email=body.email.lower(),
            display_name=body.display_name,
            password_hash=await passwords.hash(body.password),
            role=role.value,
        )
        try:
            await UserRepository(session, principal.scope).add(user)
        except IntegrityError as exc:
            # Two requests for one e-mail both passed the look-up above; the unique index lets
            # only the first one in.
            if _EMAIL_INDEX not in str(exc.orig):
                raise
            raise _email_taken() from exc
        await audit_log.record(
            session,
            AuditEventType.USER_CREATED,
            actor=principal,
            scope=user_scope(user),
            target_type="user",
            target_id=user.id,
            detail={"role": role.value, "merchant_id": str(merchant_id), "store_id": str(store_id)},
        )
        return user

    async def update(
        self, session: AsyncSession, principal: Principal, user_id: uuid.UUID, body: UserUpdate
    ) -> User:
        user = await self.get(session, principal, user_id)
        if user.id == principal.subject_id and (body.role or body.status):
            raise Forbidden("Nobody changes their own role or status.", code="cannot_modify_self")
        current_role = Role(user.role)
        if (body.role or body.status) and not principal.may_assign(current_role):
            raise _may_not_assign(principal, current_role)
        if body.role is not None and body.role != user.role:
            new_role = Role(body.role)
            if not principal.may_assign(new_role):
                raise _may_not_assign(principal, new_role)
            if ROLE_SCOPE_LEVEL[new_role] is not ROLE_SCOPE_LEVEL[current_role]:
                raise Unprocessable(
                    f"{current_role.value} and {new_role.value} live at different levels; "
                    "create a new user instead.",
                    code="role_scope_mismatch",
                )
            user.role = new_role.value
            await audit_log.record(
                session,
                AuditEventType.USER_ROLE_CHANGED,
                actor=principal,
                scope=user_scope(user),
                target_type="user",
                target_id=user.id,
                detail={"from": current_role.value, "to": new_role.value},
            )
        if body.status is not None and body.status != user.status:
            await audit_log.record(
                session,
                AuditEventType.USER_STATUS_CHANGED,
                actor=principal,
                scope=user_scope(user),
                target_type="user",
                target_id=user.id,
                detail={"from": user.status, "to": body.status},
            )
            user.status = body.status
        if body.display_name is not None:
            user.display_name = body.display_name
        await session.flush()
        return user


user_service = UserService()
