from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest

from tests.support.portal import (
    EnrolledTerminal,
    Tenant,
    enroll_terminal,
    register_terminal,
)


@dataclass
class RegisteredTerminal:
    """Registered in the tenant's store A, not yet enrolled."""

    terminal_id: str
    serial: str
    activation_code: str


@pytest.fixture
def registered(tenant: Tenant, portal_client: httpx.Client) -> RegisteredTerminal:
    return RegisteredTerminal(*register_terminal(portal_client, tenant.admin, tenant.store_a_id))


@pytest.fixture
def enrolled(tenant: Tenant, portal_client: httpx.Client) -> EnrolledTerminal:
    return enroll_terminal(portal_client, tenant.admin, tenant.store_a_id)
