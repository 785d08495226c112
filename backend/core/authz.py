"""Who may do what, for which tenant: the permission matrix and tenant scoping, in one place.

Every query on a tenant-owned table goes through :func:`apply_tenant_scope`; repositories built
on :class:`backend.core.repository.TenantRepository` call it for every read, so a handler holding
a :class:`Principal` cannot ask for rows outside its scope.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Protocol, TypeVar

from sqlalchemy import Select


class Role(StrEnum):
    PSP_ADMIN = "psp_admin"
    MERCHANT_ADMIN = "merchant_admin"
    STORE_MANAGER = "store_manager"
    CASHIER = "cashier"
    AUDITOR = "auditor"
    # Not a human role: what a SmartPOS terminal may do with its device access token.
    TERMINAL = "terminal"
    # Not a human role: another platform service calling with an HMAC signature, acting for the
    # merchant and store named in its signed tenant headers.
    SERVICE = "service"
    # Not a human role: a short-lived WebView payment token (docs/payment-tokens.md), good for
    # one payment of its store.
    PAYMENT_TOKEN = "payment_token"


HUMAN_ROLES = tuple(
    role for role in Role if role not in (Role.TERMINAL, Role.SERVICE, Role.PAYMENT_TOKEN)
)


class ScopeLevel(StrEnum):
    PSP = "psp"
    MERCHANT = "merchant"
    STORE = "store"


ROLE_SCOPE_LEVEL: dict[Role, ScopeLevel] = {
    Role.PSP_ADMIN: ScopeLevel.PSP,
    Role.MERCHANT_ADMIN: ScopeLevel.MERCHANT,
    Role.AUDITOR: ScopeLevel.MERCHANT,
    Role.STORE_MANAGER: ScopeLevel.STORE,
    Role.CASHIER: ScopeLevel.STORE,
    Role.TERMINAL: ScopeLevel.STORE,
    Role.SERVICE: ScopeLevel.STORE,
    Role.PAYMENT_TOKEN: ScopeLevel.STORE,
}


class Permission(StrEnum):
    MERCHANT_READ = "merchant:read"
    MERCHANT_CREATE = "merchant:create"
    MERCHANT_UPDATE = "merchant:update"
    MERCHANT_BANK_ACCOUNT_READ = "merchant:bank_account:read"
    STORE_READ = "store:read"
    STORE_WRITE = "store:write"
    USER_READ = "user:read"
    USER_WRITE = "user:write"
    TERMINAL_READ = "terminal:read"
    TERMINAL_WRITE = "terminal:write"
    TERMINAL_SUSPEND = "terminal:suspend"
    AUDIT_READ = "audit:read"
    PAYMENT_READ = "payment:read"
    PAYMENT_CREATE = "payment:create"
    PAYMENT_REFUND = "payment:refund"
    SETTLEMENT_READ = "settlement:read"
    SETTLEMENT_CLOSE = "settlement:close"
    TAB_READ = "tab:read"
    TAB_WRITE = "tab:write"


_P = Permission
_READ_ALL = {
    _P.MERCHANT_READ,
    _P.STORE_READ,
    _P.USER_READ,
    _P.TERMINAL_READ,
    _P.PAYMENT_READ,
    _P.SETTLEMENT_READ,
    _P.TAB_READ,
}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.PSP_ADMIN: frozenset(Permission) - {_P.PAYMENT_CREATE, _P.TAB_WRITE},
    Role.MERCHANT_ADMIN: frozenset(Permission) - {_P.MERCHANT_CREATE, _P.PAYMENT_CREATE},
    Role.STORE_MANAGER: frozenset(
        _READ_ALL
        | {
            _P.USER_WRITE,
            _P.TERMINAL_WRITE,
            _P.TERMINAL_SUSPEND,
            _P.PAYMENT_CREATE,
            _P.PAYMENT_REFUND,
            _P.SETTLEMENT_CLOSE,
            _P.TAB_WRITE,
        }
    ),
    Role.CASHIER: frozenset(
        {
            _P.MERCHANT_READ,
            _P.STORE_READ,
            _P.TERMINAL_READ,
            _P.PAYMENT_READ,
            _P.PAYMENT_CREATE,
            _P.TAB_READ,
            _P.TAB_WRITE,
        }
    ),
    Role.AUDITOR: frozenset(_READ_ALL | {_P.AUDIT_READ, _P.MERCHANT_BANK_ACCOUNT_READ}),
    Role.TERMINAL: frozenset(
        {
            _P.STORE_READ,
            _P.PAYMENT_READ,
            _P.PAYMENT_CREATE,
            _P.PAYMENT_REFUND,
            _P.SETTLEMENT_READ,
            _P.SETTLEMENT_CLOSE,
            _P.TAB_READ,
            _P.TAB_WRITE,
        }
    ),
    Role.SERVICE: frozenset(
        {
            _P.STORE_READ,
            _P.PAYMENT_READ,
            _P.PAYMENT_CREATE,
            _P.PAYMENT_REFUND,
            _P.SETTLEMENT_READ,
            _P.SETTLEMENT_CLOSE,
            _P.TAB_READ,
            _P.TAB_WRITE,
        }
    ),
    # Narrowed further per payment by backend/pgw/payment_tokens/service.py.
    Role.PAYMENT_TOKEN: frozenset({_P.PAYMENT_CREATE, _P.PAYMENT_READ}),
}

# Which roles a user may hand out (creating a user or changing a role), never above their own.
ASSIGNABLE_ROLES: dict[Role, frozenset[Role]] = {
    Role.PSP_ADMIN: frozenset(HUMAN_ROLES),
    Role.MERCHANT_ADMIN: frozenset(
        {Role.MERCHANT_ADMIN, Role.STORE_MANAGER, Role.CASHIER, Role.AUDITOR}
    ),
    Role.STORE_MANAGER: frozenset({Role.CASHIER}),
    Role.CASHIER: frozenset(),
    Role.AUDITOR: frozenset(),
    Role.TERMINAL: frozenset(),
    Role.SERVICE: frozenset(),
    Role.PAYMENT_TOKEN: frozenset(),
}


@dataclass(frozen=True, slots=True)
class TenantScope:
    """The part of the PSP -> merchant -> store tree a caller may see; None means "all below"."""

    psp_id: uuid.UUID
    merchant_id: uuid.UUID | None = None
    store_id: uuid.UUID | None = None

    def __post_init__(self) -> None:
        if self.store_id is not None and self.merchant_id is None:
            raise ValueError("a store scope needs its merchant")

    @property
    def level(self) -> ScopeLevel:
        if self.store_id is not None:
            return ScopeLevel.STORE
        if self.merchant_id is not None:
            return ScopeLevel.MERCHANT
        return ScopeLevel.PSP

    def ids(self) -> dict[ScopeLevel, uuid.UUID]:
        ids = {ScopeLevel.PSP: self.psp_id}
        if self.merchant_id is not None:
            ids[ScopeLevel.MERCHANT] = self.merchant_id
        if self.store_id is not None:
            ids[ScopeLevel.STORE] = self.store_id
        return ids

    def contains(self, other: TenantScope) -> bool:
        """True when ``other`` lies at or below this scope in the tree."""
        return all(getattr(other, f"{level}_id") == value for level, value in self.ids().items())


class TenantOwned(Protocol):
    """A model that names the column holding each tenant level it belongs to."""

    __tenant_columns__: ClassVar[dict[ScopeLevel, str]]


ModelT = TypeVar("ModelT")
RowT = TypeVar("RowT", bound=Any)


_LEVELS_TOP_DOWN = (ScopeLevel.PSP, ScopeLevel.MERCHANT, ScopeLevel.STORE)


def _check_tenant_levels(model: type[Any], columns: dict[ScopeLevel, str]) -> None:
    """Fail closed: the levels a model carries must run from the PSP down without a gap.

    Filtering skips the levels a model lacks, so a model without its PSP column would be read
    unfiltered, and one skipping the merchant would show a merchant every merchant's rows.
    """
    if ScopeLevel.PSP not in columns:
        raise TypeError(f"{model.__name__}.__tenant_columns__ does not name its psp column")
    carried = [level in columns for level in _LEVELS_TOP_DOWN]
    if carried != sorted(carried, reverse=True):
        missing = next(level for level in _LEVELS_TOP_DOWN if level not in columns)
        raise TypeError(
            f"{model.__name__}.__tenant_columns__ skips the {missing.value} level; "
            "tenant levels must run from the psp down without a gap"
        )


def apply_tenant_scope(
    statement: Select[RowT], model: type[Any], scope: TenantScope
) -> Select[RowT]:
    """Restrict ``statement`` to the rows of ``model`` that ``scope`` may see.

    A scope level the model does not carry (a store scope on the merchants table) filters on the
    levels above it, so a cashier sees their own merchant but no other.
    """
    columns: dict[ScopeLevel, str] | None = getattr(model, "__tenant_columns__", None)
    if not columns:
        raise TypeError(f"{model.__name__} declares no __tenant_columns__")
    _check_tenant_levels(model, columns)
    for level, value in scope.ids().items():
        column_name = columns.get(level)
        if column_name is not None:
            statement = statement.where(getattr(model, column_name) == value)
    return statement


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller, resolved once from its token."""

    kind: str  # "user" | "device"
    subject_id: uuid.UUID
    role: Role
    scope: TenantScope
    token_id: str | None = None
    # Only for a payment token (kind "payment_token", subject_id = the token's id): the token's
    # id and the terminal it was issued to, if a terminal issued it.
    payment_token_id: uuid.UUID | None = None
    payment_token_terminal_id: uuid.UUID | None = None
    # When the credential presented stops being valid (a bearer token's exp); None for callers
    # authenticated per request (HMAC-signed services). Long-lived answers (pgw's payment
    # stream) end then.
    expires_at: dt.datetime | None = None

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]

    def may_assign(self, role: Role) -> bool:
        return role in ASSIGNABLE_ROLES[self.role]

    @property
    def terminal_id(self) -> uuid.UUID | None:
        if self.kind == "device":
            return self.subject_id
        return self.payment_token_terminal_id
