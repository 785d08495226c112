"""Synchronous drivers for building tenants, users and terminals through the portal's real API.

Tests and BDD steps use these instead of writing HTTP calls themselves, so that one place knows
how a tenant is made.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec

from backend.core.authz import HUMAN_ROLES, ROLE_SCOPE_LEVEL, Role, ScopeLevel
from backend.core.database import create_engine, create_sessionmaker
from backend.core.passwords import Passwords
from backend.core.settings import Settings
from backend.core.tokens import public_jwk
from backend.portal.devices.service import CLIENT_ASSERTION_TYPE
from backend.portal.psps.service import psp_service

PASSWORD = "correct horse battery staple"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def create_psp_with_admin(settings: Settings, *, name: str | None = None) -> tuple[str, str]:
    """The operator's bootstrap (no HTTP API exists for it); returns (psp_id, admin e-mail)."""
    email = f"{unique('psp-admin')}@example.com"

    async def create() -> str:
        engine = create_engine(settings, application_name="tests")
        try:
            async with create_sessionmaker(engine)() as session, session.begin():
                psp, _ = await psp_service.create_with_admin(
                    session,
                    Passwords(settings),
                    name=name or unique("psp"),
                    admin_email=email,
                    admin_password=PASSWORD,
                )
                return str(psp.id)
        finally:
            await engine.dispose()

    return asyncio.run(create()), email


def login(portal: httpx.Client, email: str, password: str = PASSWORD) -> dict[str, Any]:
    response = portal.post("/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return dict(response.json())


@dataclass
class PortalUser:
    role: Role
    id: str
    email: str
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.access_token)


@dataclass
class Tenant:
    """A PSP with one merchant, two stores (A and B) and a logged-in user of every role.

    Merchant-level users belong to the merchant; store-level users to store A.
    """

    psp_id: str
    merchant_id: str
    store_a_id: str
    store_b_id: str
    users: dict[Role, PortalUser] = field(default_factory=dict)

    def user(self, role: Role | str) -> PortalUser:
        return self.users[Role(role)]

    @property
    def admin(self) -> PortalUser:
        return self.users[Role.PSP_ADMIN]


def create_user(
    portal: httpx.Client,
    creator: PortalUser,
    role: Role,
    *,
    merchant_id: str | None = None,
    store_id: str | None = None,
    display_name: str | None = None,
) -> PortalUser:
    email = f"{unique(role.value)}@example.com"
    response = portal.post(
        "/v1/users",
        headers=creator.headers,
        json={
            "email": email,
            "display_name": display_name or f"Test {role.value}",
            "password": PASSWORD,
            "role": role.value,
            "merchant_id": merchant_id,
            "store_id": store_id,
        },
    )
    assert response.status_code == 201, response.text
    tokens = login(portal, email)
    return PortalUser(
        role, response.json()["id"], email, tokens["access_token"], tokens["refresh_token"]
    )


def create_merchant(portal: httpx.Client, creator: PortalUser, name: str) -> str:
    """A merchant of the creator's PSP; returns its id."""
    response = portal.post("/v1/merchants", headers=creator.headers, json={"name": name})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def create_store(portal: httpx.Client, creator: PortalUser, merchant_id: str, name: str) -> str:
    """A store of ``merchant_id``; returns its id."""
    response = portal.post(
        "/v1/stores", headers=creator.headers, json={"merchant_id": merchant_id, "name": name}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def build_tenant(settings: Settings, portal: httpx.Client) -> Tenant:
    psp_id, admin_email = create_psp_with_admin(settings)
    admin_tokens = login(portal, admin_email)
    admin = PortalUser(
        Role.PSP_ADMIN, "", admin_email, admin_tokens["access_token"], admin_tokens["refresh_token"]
    )
    admin.id = portal.get("/v1/auth/me", headers=admin.headers).json()["id"]

    merchant_id = create_merchant(portal, admin, unique("merchant"))
    store_ids = [create_store(portal, admin, merchant_id, f"Store {label}") for label in "AB"]
    tenant = Tenant(psp_id, merchant_id, store_ids[0], store_ids[1], {Role.PSP_ADMIN: admin})
    for role in HUMAN_ROLES:
        if role is Role.PSP_ADMIN:
            continue
        at_store = ROLE_SCOPE_LEVEL[role] is ScopeLevel.STORE
        tenant.users[role] = create_user(
            portal,
            admin,
            role,
            merchant_id=merchant_id,
            store_id=tenant.store_a_id if at_store else None,
        )
    return tenant


class DeviceKey:
    """A terminal's own EC P-256 key pair and the assertions it signs."""

    def __init__(self) -> None:
        self.private_key = ec.generate_private_key(ec.SECP256R1())

    def public_jwk(self) -> dict[str, Any]:
        return public_jwk(self.private_key.public_key(), kid=None, algorithm="ES256")

    def assertion(
        self,
        client_id: str,
        audience: str,
        *,
        lifetime_s: int = 60,
        issued_at: int | None = None,
        jti: str | None = None,
        extra_claims: dict[str, Any] | None = None,
    ) -> str:
        iat = int(time.time()) if issued_at is None else issued_at
        claims = {
            "iss": client_id,
            "sub": client_id,
            "aud": audience,
            "iat": iat,
            "exp": iat + lifetime_s,
            "jti": jti or uuid.uuid4().hex,
            **(extra_claims or {}),
        }
        return jwt.encode(claims, self.private_key, algorithm="ES256")


def token_form(assertion: str, **overrides: str) -> dict[str, str]:
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "client_assertion": assertion,
    }
    form.update(overrides)
    return form


@dataclass
class EnrolledTerminal:
    terminal_id: str
    store_id: str
    serial: str
    key: DeviceKey
    token_endpoint: str

    def fresh_token(self, portal: httpx.Client) -> str:
        response = portal.post(
            "/oauth2/token",
            data=token_form(self.key.assertion(self.terminal_id, self.token_endpoint)),
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])


def register_terminal(
    portal: httpx.Client, creator: PortalUser, store_id: str, *, name: str = "Counter"
) -> tuple[str, str, str]:
    """Returns (terminal_id, serial, activation_code)."""
    serial = unique("SN").upper()
    response = portal.post(
        "/v1/terminals",
        headers=creator.headers,
        json={"store_id": store_id, "serial": serial, "name": name},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return body["terminal"]["id"], serial, body["activation"]["activation_code"]


def enroll_terminal(portal: httpx.Client, creator: PortalUser, store_id: str) -> EnrolledTerminal:
    terminal_id, serial, code = register_terminal(portal, creator, store_id)
    key = DeviceKey()
    response = portal.post(
        "/v1/devices/enroll",
        json={"activation_code": code, "public_jwk": key.public_jwk(), "serial": serial},
    )
    assert response.status_code == 200, response.text
    return EnrolledTerminal(terminal_id, store_id, serial, key, response.json()["token_endpoint"])
