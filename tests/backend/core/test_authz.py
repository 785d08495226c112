"""backend.core.authz, pure unit tests without a database: tenant scopes, scoped queries and the
role tables.

(Merged: another helper wrote a version of this file concurrently; its cases are kept below.)
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

import pytest
from sqlalchemy import BinaryExpression, Select, Uuid, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from backend.core.authz import (
    ASSIGNABLE_ROLES,
    HUMAN_ROLES,
    ROLE_PERMISSIONS,
    ROLE_SCOPE_LEVEL,
    Permission,
    Principal,
    Role,
    ScopeLevel,
    TenantScope,
    apply_tenant_scope,
)
from backend.portal.models import AuditEvent, Merchant, Psp, Store, Terminal, User

PSP = uuid.uuid4()
MERCHANT = uuid.uuid4()
STORE = uuid.uuid4()

PSP_SCOPE = TenantScope(psp_id=PSP)
MERCHANT_SCOPE = TenantScope(psp_id=PSP, merchant_id=MERCHANT)
STORE_SCOPE = TenantScope(psp_id=PSP, merchant_id=MERCHANT, store_id=STORE)

_DEPTH = {ScopeLevel.PSP: 0, ScopeLevel.MERCHANT: 1, ScopeLevel.STORE: 2}


class _Base(DeclarativeBase):
    pass


class _NoTenantColumns(_Base):
    __tablename__ = "no_tenant_columns"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)


class _StoreOnly(_Base):
    """Carries the store but not the PSP: a PSP-wide scope would filter nothing at all."""

    __tablename__ = "store_only"
    __tenant_columns__: ClassVar[dict[ScopeLevel, str]] = {ScopeLevel.STORE: "store_id"}
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    store_id: Mapped[uuid.UUID] = mapped_column(Uuid)


class _SkipsMerchant(_Base):
    """Carries PSP and store but not the merchant between them."""

    __tablename__ = "skips_merchant"
    __tenant_columns__: ClassVar[dict[ScopeLevel, str]] = {
        ScopeLevel.PSP: "psp_id",
        ScopeLevel.STORE: "store_id",
    }
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    psp_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    store_id: Mapped[uuid.UUID] = mapped_column(Uuid)


def _filters(statement: Select[Any]) -> dict[str, uuid.UUID]:
    """The ``column = value`` conditions of the statement's WHERE clause, by column name."""
    clause = statement.whereclause
    if clause is None:
        return {}
    conditions = [clause] if isinstance(clause, BinaryExpression) else list(clause.clauses)
    found: dict[str, uuid.UUID] = {}
    for condition in conditions:
        assert isinstance(condition, BinaryExpression), condition
        assert condition.operator.__name__ == "eq", condition
        found[f"{condition.left.table.name}.{condition.left.name}"] = condition.right.value
    return found


def _where(scope: TenantScope, model: type[Any]) -> str:
    statement = apply_tenant_scope(select(model), model, scope)
    assert statement.whereclause is not None
    return str(statement.whereclause.compile(compile_kwargs={"literal_binds": True}))


def _principal(role: Role) -> Principal:
    return Principal(kind="user", subject_id=uuid.uuid4(), role=role, scope=PSP_SCOPE)


class TestTenantScope:
    def test_store_scope_without_merchant_is_refused(self) -> None:
        with pytest.raises(ValueError, match="merchant"):
            TenantScope(psp_id=PSP, store_id=STORE)

    @pytest.mark.parametrize(
        ("scope", "level"),
        [
            (PSP_SCOPE, ScopeLevel.PSP),
            (MERCHANT_SCOPE, ScopeLevel.MERCHANT),
            (STORE_SCOPE, ScopeLevel.STORE),
        ],
    )
    def test_level_is_the_deepest_id_given(self, scope: TenantScope, level: ScopeLevel) -> None:
        assert scope.level is level

    def test_ids_name_only_the_levels_set(self) -> None:
        assert PSP_SCOPE.ids() == {ScopeLevel.PSP: PSP}
        assert MERCHANT_SCOPE.ids() == {ScopeLevel.PSP: PSP, ScopeLevel.MERCHANT: MERCHANT}
        assert STORE_SCOPE.ids() == {
            ScopeLevel.PSP: PSP,
            ScopeLevel.MERCHANT: MERCHANT,
            ScopeLevel.STORE: STORE,
        }

    def test_a_scope_contains_itself_and_everything_below(self) -> None:
        for outer, inner in [
            (PSP_SCOPE, PSP_SCOPE),
            (PSP_SCOPE, MERCHANT_SCOPE),
            (PSP_SCOPE, STORE_SCOPE),
            (MERCHANT_SCOPE, MERCHANT_SCOPE),
            (MERCHANT_SCOPE, STORE_SCOPE),
            (STORE_SCOPE, STORE_SCOPE),
        ]:
            assert outer.contains(inner), (outer, inner)

    def test_a_scope_does_not_contain_what_lies_above_it(self) -> None:
        assert not STORE_SCOPE.contains(MERCHANT_SCOPE)
        assert not STORE_SCOPE.contains(PSP_SCOPE)
        assert not MERCHANT_SCOPE.contains(PSP_SCOPE)

    def test_a_scope_does_not_contain_siblings_or_other_tenants(self) -> None:
        other_psp = TenantScope(psp_id=uuid.uuid4(), merchant_id=MERCHANT, store_id=STORE)
        sibling_merchant = TenantScope(psp_id=PSP, merchant_id=uuid.uuid4())
        sibling_store = TenantScope(psp_id=PSP, merchant_id=MERCHANT, store_id=uuid.uuid4())
        assert not PSP_SCOPE.contains(other_psp)
        assert not MERCHANT_SCOPE.contains(sibling_merchant)
        assert not MERCHANT_SCOPE.contains(other_psp)
        assert not STORE_SCOPE.contains(sibling_store)


class TestApplyTenantScope:
    @pytest.mark.parametrize("model", [Store, User, Terminal, AuditEvent])
    def test_psp_scope_filters_on_the_psp_only(self, model: type[Any]) -> None:
        table = model.__tablename__
        statement = apply_tenant_scope(select(model), model, PSP_SCOPE)
        assert _filters(statement) == {f"{table}.psp_id": PSP}

    def test_merchant_scope_on_stores_filters_psp_and_merchant(self) -> None:
        statement = apply_tenant_scope(select(Store), Store, MERCHANT_SCOPE)
        assert _filters(statement) == {"stores.psp_id": PSP, "stores.merchant_id": MERCHANT}

    @pytest.mark.parametrize("model", [User, Terminal, AuditEvent])
    def test_store_scope_filters_every_level(self, model: type[Any]) -> None:
        table = model.__tablename__
        statement = apply_tenant_scope(select(model), model, STORE_SCOPE)
        assert _filters(statement) == {
            f"{table}.psp_id": PSP,
            f"{table}.merchant_id": MERCHANT,
            f"{table}.store_id": STORE,
        }

    def test_store_scope_renders_as_one_conjunction_of_literal_ids(self) -> None:
        assert _where(STORE_SCOPE, AuditEvent) == (
            f"portal.audit_events.psp_id = '{PSP.hex}' "
            f"AND portal.audit_events.merchant_id = '{MERCHANT.hex}' "
            f"AND portal.audit_events.store_id = '{STORE.hex}'"
        )

    def test_store_scope_on_stores_filters_the_store_by_its_id(self) -> None:
        statement = apply_tenant_scope(select(Store), Store, STORE_SCOPE)
        assert _filters(statement) == {
            "stores.psp_id": PSP,
            "stores.merchant_id": MERCHANT,
            "stores.id": STORE,
        }

    def test_store_scope_on_merchants_keeps_the_levels_above(self) -> None:
        # A cashier sees their own merchant, and no other.
        statement = apply_tenant_scope(select(Merchant), Merchant, STORE_SCOPE)
        assert _filters(statement) == {"merchants.psp_id": PSP, "merchants.id": MERCHANT}

    def test_any_scope_on_psps_filters_the_psp_by_its_id(self) -> None:
        for scope in (PSP_SCOPE, MERCHANT_SCOPE, STORE_SCOPE):
            assert _filters(apply_tenant_scope(select(Psp), Psp, scope)) == {"psps.id": PSP}

    def test_existing_conditions_are_kept(self) -> None:
        wanted = uuid.uuid4()
        statement = apply_tenant_scope(select(Store).where(Store.id == wanted), Store, PSP_SCOPE)
        assert _filters(statement) == {"stores.id": wanted, "stores.psp_id": PSP}

    def test_a_model_without_tenant_columns_is_refused(self) -> None:
        with pytest.raises(TypeError, match="__tenant_columns__"):
            apply_tenant_scope(select(_NoTenantColumns), _NoTenantColumns, PSP_SCOPE)

    def test_a_model_without_a_psp_column_is_refused_rather_than_left_unfiltered(self) -> None:
        with pytest.raises(TypeError, match="psp"):
            apply_tenant_scope(select(_StoreOnly), _StoreOnly, PSP_SCOPE)

    def test_a_model_skipping_a_level_is_refused_rather_than_filtered_too_widely(self) -> None:
        # A merchant-level caller would otherwise see every merchant's rows of its PSP.
        with pytest.raises(TypeError, match="merchant"):
            apply_tenant_scope(select(_SkipsMerchant), _SkipsMerchant, MERCHANT_SCOPE)

    @pytest.mark.parametrize("model", [Psp, Merchant, Store, User, Terminal, AuditEvent])
    def test_every_portal_model_declares_contiguous_levels_from_the_psp_down(
        self, model: type[Any]
    ) -> None:
        declared = sorted(_DEPTH[level] for level in model.__tenant_columns__)
        assert declared == list(range(len(declared))), model.__tenant_columns__


class TestRoleTables:
    def test_principal_can_follows_the_matrix(self) -> None:
        for role in Role:
            principal = _principal(role)
            for permission in Permission:
                assert principal.can(permission) is (permission in ROLE_PERMISSIONS[role])

    @pytest.mark.parametrize(
        ("role", "allowed", "denied"),
        [
            (Role.CASHIER, Permission.PAYMENT_CREATE, Permission.PAYMENT_REFUND),
            (Role.CASHIER, Permission.TAB_WRITE, Permission.USER_READ),
            (Role.AUDITOR, Permission.AUDIT_READ, Permission.USER_WRITE),
            (Role.AUDITOR, Permission.MERCHANT_BANK_ACCOUNT_READ, Permission.PAYMENT_CREATE),
            (Role.STORE_MANAGER, Permission.PAYMENT_REFUND, Permission.AUDIT_READ),
            (Role.MERCHANT_ADMIN, Permission.USER_WRITE, Permission.MERCHANT_CREATE),
            (Role.PSP_ADMIN, Permission.MERCHANT_CREATE, Permission.PAYMENT_CREATE),
            (Role.TERMINAL, Permission.PAYMENT_CREATE, Permission.USER_READ),
        ],
    )
    def test_spot_checks_of_the_matrix(
        self, role: Role, allowed: Permission, denied: Permission
    ) -> None:
        principal = _principal(role)
        assert principal.can(allowed)
        assert not principal.can(denied)

    def test_every_role_has_a_matrix_row_and_a_level(self) -> None:
        assert set(ROLE_PERMISSIONS) == set(Role)
        assert set(ROLE_SCOPE_LEVEL) == set(Role)
        assert set(ASSIGNABLE_ROLES) == set(Role)

    def test_nobody_grants_a_role_above_their_own_level(self) -> None:
        for granter, grantable in ASSIGNABLE_ROLES.items():
            for role in grantable:
                assert _DEPTH[ROLE_SCOPE_LEVEL[role]] >= _DEPTH[ROLE_SCOPE_LEVEL[granter]], (
                    granter,
                    role,
                )

    def test_only_human_roles_are_grantable(self) -> None:
        for grantable in ASSIGNABLE_ROLES.values():
            assert grantable <= set(HUMAN_ROLES)
            assert Role.TERMINAL not in grantable

    def test_exactly_the_roles_with_user_write_may_grant_roles(self) -> None:
        for role in Role:
            may_grant = bool(ASSIGNABLE_ROLES[role])
            assert may_grant is (Permission.USER_WRITE in ROLE_PERMISSIONS[role]), role

    def test_may_assign(self) -> None:
        assert _principal(Role.STORE_MANAGER).may_assign(Role.CASHIER)
        assert not _principal(Role.STORE_MANAGER).may_assign(Role.STORE_MANAGER)
        assert not _principal(Role.MERCHANT_ADMIN).may_assign(Role.PSP_ADMIN)
        assert not _principal(Role.CASHIER).may_assign(Role.CASHIER)
        assert not _principal(Role.PSP_ADMIN).may_assign(Role.TERMINAL)
