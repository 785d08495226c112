"""Fuzzing svc-portal's API with every human role's token and a device token.

One tenant serves every run. The ids fuzzed writes may hit are of objects no credential relies
on (a second merchant, store B, a registered terminal and a cashier of their own), so a
suspended terminal or a disabled user cannot take a later run's credential away; the runs go
from the read-only roles to the PSP admin.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from backend.core.authz import Role
from backend.core.settings import Settings
from backend.runtime.server import PlatformThread
from tests.fuzz.runner import Credential, Target, refreshing, run_fuzz
from tests.support.portal import (
    EnrolledTerminal,
    Tenant,
    build_tenant,
    create_merchant,
    create_user,
    enroll_terminal,
    login,
    register_terminal,
    unique,
)

USER_TOKEN_MAX_AGE_S = 600.0  # of 15 minutes
DEVICE_TOKEN_MAX_AGE_S = 60.0  # of 90 seconds
CREDENTIALS = ["auditor", "cashier", "store_manager", "device", "merchant_admin", "psp_admin"]


@dataclass
class PortalWorld:
    tenant: Tenant
    terminal: EnrolledTerminal
    read_ids: dict[str, list[str]]
    write_ids: dict[str, list[str]]


@pytest.fixture(scope="module")
def portal_world(platform: PlatformThread, test_settings: Settings) -> Iterator[PortalWorld]:
    with httpx.Client(base_url=platform.portal_url, timeout=10) as portal:
        tenant = build_tenant(test_settings, portal)
        admin = tenant.admin
        terminal = enroll_terminal(portal, admin, tenant.store_a_id)
        spare_merchant = create_merchant(portal, admin, unique("fuzz-merchant"))
        spare_terminals = [
            register_terminal(portal, admin, store)[0]
            for store in (tenant.store_a_id, tenant.store_b_id)
        ]
        spare_users = [
            create_user(portal, admin, Role.CASHIER, merchant_id=tenant.merchant_id, store_id=store)
            for store in (tenant.store_a_id, tenant.store_b_id)
        ]
        write_ids = {
            "merchant_id": [spare_merchant],
            "store_id": [tenant.store_b_id],
            "terminal_id": spare_terminals,
            "user_id": [user.id for user in spare_users],
        }
        read_ids = {
            "merchant_id": [tenant.merchant_id, spare_merchant],
            "store_id": [tenant.store_a_id, tenant.store_b_id],
            "terminal_id": [terminal.terminal_id, *spare_terminals],
            "user_id": [tenant.user(Role.CASHIER).id, *write_ids["user_id"]],
        }
        yield PortalWorld(tenant, terminal, read_ids, write_ids)


@pytest.mark.parametrize("credential", CREDENTIALS)
def test_portal_api(
    platform: PlatformThread, test_settings: Settings, portal_world: PortalWorld, credential: str
) -> None:
    portal = httpx.Client(base_url=platform.portal_url, timeout=10)
    if credential == "device":
        issue = lambda: portal_world.terminal.fresh_token(portal)  # noqa: E731
        headers = refreshing(issue, max_age_s=DEVICE_TOKEN_MAX_AGE_S)
    else:
        email = portal_world.tenant.user(credential).email
        headers = refreshing(
            lambda: str(login(portal, email)["access_token"]), max_age_s=USER_TOKEN_MAX_AGE_S
        )
    with portal:
        run_fuzz(
            Target(
                "portal",
                platform.portal_url,
                Credential(credential, headers),
                read_ids=portal_world.read_ids,
                write_ids=portal_world.write_ids,
            )
        )
