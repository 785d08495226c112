"""The benchmark's tenant: one PSP, merchant and store with enrolled terminals (device keys).

Built through the portal's real API, the way an operator and the terminals would: the PSP and
its admin are the operator's bootstrap (straight into the database, as ``mpac seed`` does), the
rest is HTTP. Each terminal enrolls its own EC P-256 key and gets device tokens with
``private_key_jwt``; pgw learns the store and terminals through the portal's directory sync.
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

from backend.core.database import create_engine, create_sessionmaker
from backend.core.hmac_signing import HmacAuth
from backend.core.passwords import Passwords
from backend.core.settings import Settings
from backend.core.tokens import public_jwk
from backend.portal.devices.service import CLIENT_ASSERTION_TYPE
from backend.portal.psps.service import psp_service

ADMIN_PASSWORD = "bench-password-123"  # a throwaway tenant in the bench's own database
# Device tokens live 60-120 s; a client asks for a new one well before.
TOKEN_MAX_AGE_S = 45.0
_SYNC_TIMEOUT_S = 60.0


@dataclass
class Device:
    """An enrolled terminal: its id, its own key and its current device access token."""

    terminal_id: str
    private_key: ec.EllipticCurvePrivateKey
    token_endpoint: str
    token: str = ""
    fetched_at: float = 0.0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    def assertion(self) -> str:
        """A fresh ``private_key_jwt`` client assertion (new jti, 60 s)."""
        now = int(time.time())
        claims = {
            "iss": self.terminal_id,
            "sub": self.terminal_id,
            "aud": self.token_endpoint,
            "iat": now,
            "exp": now + 60,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self.private_key, algorithm="ES256")

    def token_form(self) -> dict[str, str]:
        return {
            "grant_type": "client_credentials",
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": self.assertion(),
        }

    async def fresh_token(
        self, portal: httpx.AsyncClient, max_age_s: float = TOKEN_MAX_AGE_S
    ) -> str:
        """The current device token, renewed at the portal once it is ``max_age_s`` old."""
        async with self._lock:
            if not self.token or time.monotonic() - self.fetched_at > max_age_s:
                response = await portal.post("/oauth2/token", data=self.token_form())
                response.raise_for_status()
                self.token = str(response.json()["access_token"])
                self.fetched_at = time.monotonic()
            return self.token


@dataclass
class Fleet:
    psp_id: str
    merchant_id: str
    store_id: str
    admin_token: str
    devices: list[Device]


async def _create_psp(settings: Settings, email: str) -> str:
    engine = create_engine(settings, application_name="mpac-bench")
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            psp, _ = await psp_service.create_with_admin(
                session,
                Passwords(settings),
                name=f"Bench PSP {uuid.uuid4().hex[:6]}",
                admin_email=email,
                admin_password=ADMIN_PASSWORD,
            )
            return str(psp.id)
    finally:
        await engine.dispose()


def _expect(response: httpx.Response, status: int) -> dict[str, Any]:
    if response.status_code != status:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: "
            f"{response.status_code} {response.text[:300]}"
        )
    body: dict[str, Any] = response.json()
    return body


async def _enroll(portal: httpx.AsyncClient, admin: dict[str, str], store_id: str) -> Device:
    serial = f"BENCH-{uuid.uuid4().hex[:12].upper()}"
    registered = _expect(
        await portal.post(
            "/v1/terminals",
            headers=admin,
            json={"store_id": store_id, "serial": serial, "name": "Bench terminal"},
        ),
        201,
    )
    key = ec.generate_private_key(ec.SECP256R1())
    enrolled = _expect(
        await portal.post(
            "/v1/devices/enroll",
            json={
                "activation_code": registered["activation"]["activation_code"],
                "public_jwk": public_jwk(key.public_key(), kid=None, algorithm="ES256"),
                "serial": serial,
            },
        ),
        200,
    )
    return Device(registered["terminal"]["id"], key, enrolled["token_endpoint"])


async def _wait_for_directory(settings: Settings, fleet: Fleet) -> None:
    """Until pgw has the store and every terminal from the portal's outbox relay."""
    paths = [f"/internal/v1/directory/stores/{fleet.store_id}"] + [
        f"/internal/v1/directory/terminals/{device.terminal_id}" for device in fleet.devices
    ]
    auth = HmacAuth.from_settings(settings, "smarttab")
    deadline = time.monotonic() + _SYNC_TIMEOUT_S
    async with httpx.AsyncClient(base_url=settings.url_of("pgw"), auth=auth, timeout=10) as pgw:
        for path in paths:
            while True:
                response = await pgw.get(path)
                if response.status_code == 200 and response.json().get("status") == "active":
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"pgw did not learn {path} within {_SYNC_TIMEOUT_S:.0f} s")
                await asyncio.sleep(0.1)


async def provision(settings: Settings, *, terminals: int) -> Fleet:
    """A tenant with one store and ``terminals`` enrolled terminals that pgw knows."""
    email = f"bench-admin-{uuid.uuid4().hex[:8]}@bench.mpac.example"
    psp_id = await _create_psp(settings, email)
    async with httpx.AsyncClient(base_url=settings.url_of("portal"), timeout=30) as portal:
        login = _expect(
            await portal.post("/v1/auth/login", json={"email": email, "password": ADMIN_PASSWORD}),
            200,
        )
        admin = {"authorization": f"Bearer {login['access_token']}"}
        merchant = _expect(
            await portal.post("/v1/merchants", headers=admin, json={"name": "Bench Merchant"}), 201
        )
        store = _expect(
            await portal.post(
                "/v1/stores",
                headers=admin,
                json={"merchant_id": merchant["id"], "name": "Bench Store"},
            ),
            201,
        )
        devices: list[Device] = []
        for start in range(0, terminals, 8):
            batch = min(8, terminals - start)
            devices += await asyncio.gather(
                *(_enroll(portal, admin, store["id"]) for _ in range(batch))
            )
    fleet = Fleet(
        psp_id, str(merchant["id"]), str(store["id"]), str(login["access_token"]), devices
    )
    await _wait_for_directory(settings, fleet)
    return fleet
