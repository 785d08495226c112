"""Terminal lifecycle as the merchant's staff see it: register, (re)issue codes, suspend."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from backend.core.authz import Principal
from backend.core.errors import Conflict, NotFound
from backend.core.models import utcnow
from backend.portal.audit.service import AuditEventType, audit_log
from backend.portal.devices.scope import terminal_scope
from backend.portal.models import Terminal
from backend.portal.outbox.service import directory_outbox
from backend.portal.stores.service import store_service
from backend.portal.terminals.activation import hash_activation_code, new_activation_code
from backend.portal.terminals.repository import TerminalRepository, TerminalSerials
from backend.portal.terminals.schemas import ActivationCode, TerminalCreate


def _serial_taken(serial: str) -> Conflict:
    return Conflict(f"Serial {serial} is already registered.", code="serial_taken")


def _conflict(terminal: Terminal, action: str) -> Conflict:
    return Conflict(
        f"A {terminal.status} terminal cannot be {action}.",
        code="terminal_state_conflict",
        current_status=terminal.status,
    )


class TerminalService:
    async def get(
        self, session: AsyncSession, principal: Principal, terminal_id: uuid.UUID
    ) -> Terminal:
        terminal = await TerminalRepository(session, principal.scope).get(
            terminal_id, for_update=True
        )
        if terminal is None:
            raise NotFound(f"Terminal {terminal_id} does not exist.", code="terminal_not_found")
        return terminal

    async def register(
        self, session: AsyncSession, principal: Principal, body: TerminalCreate, *, code_ttl_s: int
    ) -> tuple[Terminal, ActivationCode]:
        store = await store_service.get(session, principal, body.store_id)
        if await TerminalSerials(session).serial_taken(body.serial):
            raise _serial_taken(body.serial)
        terminal = Terminal(
            id=uuid.uuid4(),
            psp_id=store.psp_id,
            merchant_id=store.merchant_id,
            store_id=store.id,
            serial=body.serial,
            name=body.name,
            model=body.model,
        )
        activation = self._new_code(terminal, code_ttl_s)
        try:
            await TerminalRepository(session, principal.scope).add(terminal)
        except IntegrityError as exc:
            # A concurrent registration of the same serial won between the check and the insert.
            if "uq_terminals_serial" not in str(exc.orig):
                raise
            raise _serial_taken(body.serial) from exc
        await audit_log.record(
            session,
            AuditEventType.TERMINAL_REGISTERED,
            actor=principal,
            scope=terminal_scope(terminal),
            target_type="terminal",
            target_id=terminal.id,
            detail={"serial": terminal.serial, "store_id": str(store.id)},
        )
        await directory_outbox.terminal_changed(session, terminal)
        return terminal, activation

    async def reissue_activation_code(
        self,
        session: AsyncSession,
        principal: Principal,
        terminal_id: uuid.UUID,
        *,
        code_ttl_s: int,
    ) -> ActivationCode:
        terminal = await self.get(session, principal, terminal_id)
        if terminal.status not in ("pending", "active"):
            raise _conflict(terminal, "enrolled")
        activation = self._new_code(terminal, code_ttl_s)
        await session.flush()
        await audit_log.record(
            session,
            AuditEventType.TERMINAL_ACTIVATION_CODE_ISSUED,
            actor=principal,
            scope=terminal_scope(terminal),
            target_type="terminal",
            target_id=terminal.id,
        )
        return activation

    async def suspend(
        self, session: AsyncSession, principal: Principal, terminal_id: uuid.UUID, reason: str
    ) -> Terminal:
        terminal = await self.get(session, principal, terminal_id)
        # Only an enrolled terminal can obtain tokens, so only it can be suspended (the database
        # also requires a suspended terminal to hold a key); a pending one is decommissioned.
        if terminal.status != "active":
            raise _conflict(terminal, "suspended")
        terminal.status, terminal.status_reason = "suspended", reason or None
        await self._record(session, principal, terminal, AuditEventType.TERMINAL_SUSPENDED, reason)
        await directory_outbox.terminal_changed(session, terminal)
        return terminal

    async def reactivate(
        self, session: AsyncSession, principal: Principal, terminal_id: uuid.UUID, reason: str
    ) -> Terminal:
        terminal = await self.get(session, principal, terminal_id)
        if terminal.status != "suspended":
            raise _conflict(terminal, "reactivated")
        terminal.status = "active" if terminal.public_jwk else "pending"
        terminal.status_reason = None
        await self._record(
            session, principal, terminal, AuditEventType.TERMINAL_REACTIVATED, reason
        )
        await directory_outbox.terminal_changed(session, terminal)
        return terminal

    async def decommission(
        self, session: AsyncSession, principal: Principal, terminal_id: uuid.UUID, reason: str
    ) -> Terminal:
        terminal = await self.get(session, principal, terminal_id)
        if terminal.status == "decommissioned":
            raise _conflict(terminal, "decommissioned")
        terminal.status, terminal.status_reason = "decommissioned", reason or None
        # The code's hash stays: enrollment refuses it by status, so a device still presenting
        # it is told the terminal is retired and the refusal is audited against the terminal.
        await self._record(
            session, principal, terminal, AuditEventType.TERMINAL_DECOMMISSIONED, reason
        )
        await directory_outbox.terminal_changed(session, terminal)
        return terminal

    def _new_code(self, terminal: Terminal, ttl_s: int) -> ActivationCode:
        code = new_activation_code()
        expires_at = utcnow() + dt.timedelta(seconds=ttl_s)
        terminal.activation_code_hash = hash_activation_code(code)
        terminal.activation_code_expires_at = expires_at
        terminal.activation_code_used_at = None
        return ActivationCode(terminal_id=terminal.id, activation_code=code, expires_at=expires_at)

    async def _record(
        self,
        session: AsyncSession,
        principal: Principal,
        terminal: Terminal,
        event: AuditEventType,
        reason: str,
    ) -> None:
        await session.flush()
        await audit_log.record(
            session,
            event,
            actor=principal,
            scope=terminal_scope(terminal),
            target_type="terminal",
            target_id=terminal.id,
            reason=reason or None,
        )


terminal_service = TerminalService()
