from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from backend.core.auth import require
from backend.core.authz import Permission, Principal
from backend.core.database import SessionDep
from backend.core.schemas import Page
from backend.portal.context import PortalDep
from backend.portal.terminals.repository import TerminalRepository
from backend.portal.terminals.schemas import (
    ActivationCode,
    TerminalCreate,
    TerminalRead,
    TerminalRegistered,
    TerminalStatusChange,
)
from backend.portal.terminals.service import terminal_service

router = APIRouter(prefix="/v1/terminals", tags=["terminals"])

CanSuspend = Annotated[Principal, Depends(require(Permission.TERMINAL_SUSPEND))]


@router.get("", summary="Terminals in the caller's scope")
async def list_terminals(
    session: SessionDep,
    principal: Annotated[Principal, Depends(require(Permission.TERMINAL_READ))],
    store_id: uuid.UUID | None = None,
    status: Literal["pending", "active", "suspended", "decommissioned"] | None = None,
    after: uuid.UUID | None = None,
    limit: int = Query(default=50, ge=1, le=200),
) -> Page[TerminalRead]:
    rows, cursor = await TerminalRepository(session, principal.scope).search(
        store_id=store_id, status=status, limit=limit, after=after
    )
    return Page(items=[TerminalRead.model_validate(r) for r in rows], next_cursor=cursor)


@router.post(
    "", status_code=201, summary="Register a terminal; returns its one-time activation code"
)
async def register_terminal(
    body: TerminalCreate,
    session: SessionDep,
    portal: PortalDep,
    principal: Annotated[Principal, Depends(require(Permission.TERMINAL_WRITE))],
) -> TerminalRegistered:
    terminal, activation = await terminal_service.register(
        session, principal, body, code_ttl_s=portal.settings.activation_code_ttl_s
    )
    return TerminalRegistered(terminal=TerminalRead.model_validate(terminal), activation=activation)


@router.get("/{terminal_id}", summary="One terminal")
async def get_terminal(
    terminal_id: uuid.UUID,
    session: SessionDep,
    principal: Annotated[Principal, Depends(require(Permission.TERMINAL_READ))],
) -> TerminalRead:
    return TerminalRead.model_validate(await terminal_service.get(session, principal, terminal_id))


@router.post(
    "/{terminal_id}/activation-code",
    status_code=201,
    summary="Issue a new activation code (first enrollment, or re-enrollment with a new key)",
)
async def reissue_activation_code(
    terminal_id: uuid.UUID,
    session: SessionDep,
    portal: PortalDep,
    principal: Annotated[Principal, Depends(require(Permission.TERMINAL_WRITE))],
) -> ActivationCode:
    return await terminal_service.reissue_activation_code(
        session, principal, terminal_id, code_ttl_s=portal.settings.activation_code_ttl_s
    )


@router.post("/{terminal_id}/suspend", summary="Stop a terminal from obtaining tokens")
async def suspend_terminal(
    terminal_id: uuid.UUID, body: TerminalStatusChange, session: SessionDep, principal: CanSuspend
) -> TerminalRead:
    terminal = await terminal_service.suspend(session, principal, terminal_id, body.reason)
    return TerminalRead.model_validate(terminal)


@router.post("/{terminal_id}/reactivate", summary="Lift a suspension")
async def reactivate_terminal(
    terminal_id: uuid.UUID, body: TerminalStatusChange, session: SessionDep, principal: CanSuspend
) -> TerminalRead:
    terminal = await terminal_service.reactivate(session, principal, terminal_id, body.reason)
    return TerminalRead.model_validate(terminal)


@router.post("/{terminal_id}/decommission", summary="Retire a terminal for good")
async def decommission_terminal(
    terminal_id: uuid.UUID,
    body: TerminalStatusChange,
    session: SessionDep,
    principal: Annotated[Principal, Depends(require(Permission.TERMINAL_WRITE))],
) -> TerminalRead:
    terminal = await terminal_service.decommission(session, principal, terminal_id, body.reason)
    return TerminalRead.model_validate(terminal)
