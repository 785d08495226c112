"""``mpac loadtest provision``: the fleet a load run needs, built through the real portal API.

As a PSP admin (by default the demo one that ``mpac up --demo`` seeds) it creates N merchants,
M stores each, a merchant admin and an auditor per merchant, a store manager and a cashier per
store, and K terminals per store. Each terminal is registered (activation code), generates its
own EC P-256 key and enrolls it (``POST /v1/devices/enroll``), exactly as a SmartPOS device
does. Then every terminal obtains a device token with a ``private_key_jwt`` assertion, and the
provisioner waits until pgw accepts it at its store: pgw learns merchants, stores and terminals
from the portal's outbox asynchronously, and a load run starting earlier would count
``unknown_terminal`` refusals as errors. The probe is a WebView payment token issued and at
once revoked (``POST /v1/payment-tokens``), which checks the same directory as a payment
without moving money.

Requests run concurrently (``concurrency`` at a time). Names carry a run tag, so a second run
adds a new slice of the fleet and :func:`write_fleet` merges it into the existing file.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx

from loadtest.fleet import (
    DeviceIdentity,
    Fleet,
    FleetError,
    FleetMerchant,
    FleetStore,
    FleetTerminal,
    FleetUser,
    generate_private_key_pem,
    load_fleet,
    save_fleet,
)

# The demo PSP admin of backend/portal/seed.py (`mpac up --demo`).
DEMO_ADMIN_EMAIL = "psp.admin@demo.mpac.example"
DEMO_ADMIN_PASSWORD = "demo-password-123"  # the public demo login
DEFAULT_PORTAL_URL = "http://127.0.0.1:8010"
DEFAULT_SMARTTAB_URL = "http://127.0.0.1:8020"
DEFAULT_PGW_URL = "http://127.0.0.1:8030"
EMAIL_DOMAIN = "loadtest.mpac.example"
# pgw's answers while its copy of the directory has not caught up with the portal.
NOT_YET_SYNCED = frozenset(
    {
        "unknown_store",
        "unknown_terminal",
        "unknown_merchant",
        "store_not_active",
        "terminal_not_active",
        "merchant_not_active",
    }
)
MERCHANT_ROLES = ("merchant_admin", "auditor")
STORE_ROLES = ("store_manager", "cashier")

T = TypeVar("T")


class ProvisionError(Exception):
    """The platform refused or failed a provisioning step."""


@dataclass(frozen=True)
class ProvisionPlan:
    merchants: int
    stores_per_merchant: int
    terminals_per_store: int
    portal_url: str = DEFAULT_PORTAL_URL
    smarttab_url: str = DEFAULT_SMARTTAB_URL
    pgw_url: str = DEFAULT_PGW_URL
    admin_email: str = DEMO_ADMIN_EMAIL
    admin_password: str = DEMO_ADMIN_PASSWORD
    users: bool = True
    concurrency: int = 16
    wait_for_pgw: bool = True
    wait_timeout_s: float = 120.0
    timeout_s: float = 30.0
    tag: str | None = None

    def __post_init__(self) -> None:
        for name in ("merchants", "stores_per_merchant", "terminals_per_store", "concurrency"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")

    @property
    def store_count(self) -> int:
        return self.merchants * self.stores_per_merchant

    @property
    def terminal_count(self) -> int:
        return self.store_count * self.terminals_per_store


def run_tag() -> str:
    """``lt`` + UTC time + 4 random hex digits: unique per run, sortable, short."""
    return f"lt{dt.datetime.now(dt.UTC):%Y%m%d%H%M%S}{secrets.token_hex(2)}"


def _problem(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        return str(body.get("code") or body.get("detail") or body)[:200]
    return str(body)[:200]


def _expect(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    if response.status_code not in statuses:
        request = response.request
        raise ProvisionError(
            f"{request.method} {request.url.path} answered {response.status_code}: "
            f"{_problem(response)}"
        )
    body = response.json() if response.content else {}
    return body if isinstance(body, dict) else {"items": body}


class Provisioner:
    """One provisioning run: an admin session on the portal and a bounded request pool."""

    def __init__(
        self,
        plan: ProvisionPlan,
        client: httpx.AsyncClient,
        *,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.plan = plan
        self.client = client
        self.tag = plan.tag or run_tag()
        self.password = f"Lt-{secrets.token_urlsafe(12)}"
        self._slots = asyncio.Semaphore(plan.concurrency)
        self._admin_token = ""
        self._login_lock = asyncio.Lock()
        self._progress = progress or (lambda _line: None)

    # --- HTTP -------------------------------------------------------------------------------

    async def _send(
        self, method: str, url: str, *, retries: int = 0, **kwargs: Any
    ) -> httpx.Response:
        attempt = 0
        while True:
            try:
                async with self._slots:
                    return await self.client.request(method, url, **kwargs)
            except httpx.TransportError as exc:
                if attempt >= retries:
                    raise ProvisionError(f"{method} {url}: {exc!r}") from exc
                attempt += 1
                await asyncio.sleep(0.2 * attempt)

    async def _login(self) -> None:
        response = await self._send(
            "POST",
            f"{self.plan.portal_url}/v1/auth/login",
            json={"email": self.plan.admin_email, "password": self.plan.admin_password},
            retries=2,
        )
        if response.status_code != 200:
            raise ProvisionError(
                f"cannot log in as {self.plan.admin_email} at {self.plan.portal_url}: "
                f"{response.status_code} {_problem(response)}"
            )
        self._admin_token = str(response.json()["access_token"])

    async def _admin(
        self, method: str, path: str, *statuses: int, json: Any = None, params: Any = None
    ) -> dict[str, Any]:
        """A portal call as the PSP admin; logs in again once if the token expired."""
        for _ in range(2):
            token = self._admin_token
            response = await self._send(
                method,
                f"{self.plan.portal_url}{path}",
                json=json,
                params=params,
                headers={"authorization": f"Bearer {token}"},
                retries=2 if method == "GET" else 0,
            )
            if response.status_code != 401:
                return _expect(response, *statuses)
            async with self._login_lock:
                if self._admin_token == token:
                    await self._login()
        return _expect(response, *statuses)

    # --- steps ------------------------------------------------------------------------------

    async def _gather(self, what: str, jobs: Sequence[Awaitable[T]]) -> list[T]:
        started = time.monotonic()
        results = list(await asyncio.gather(*jobs))
        self._progress(f"  {len(results)} {what} in {time.monotonic() - started:.1f} s")
        return results

    async def _merchant(self, index: int) -> FleetMerchant:
        name = f"Load {self.tag} merchant {index:04d}"
        body = await self._admin("POST", "/v1/merchants", 201, json={"name": name})
        return FleetMerchant(id=str(body["id"]), name=name)

    async def _store(self, merchant: FleetMerchant, index: int) -> FleetStore:
        name = f"{merchant.name} store {index:03d}"
        body = await self._admin(
            "POST", "/v1/stores", 201, json={"merchant_id": merchant.id, "name": name}
        )
        return FleetStore(id=str(body["id"]), merchant_id=merchant.id, name=name)

    async def _user(self, role: str, merchant_id: str, store_id: str | None, n: int) -> FleetUser:
        email = f"{role.replace('_', '.')}.{self.tag}.{n:06d}@{EMAIL_DOMAIN}"
        body = await self._admin(
            "POST",
            "/v1/users",
            201,
            json={
                "email": email,
                "display_name": f"Load {role.replace('_', ' ')} {n}",
                "password": self.password,
                "role": role,
                "merchant_id": merchant_id,
                "store_id": store_id,
            },
        )
        return FleetUser(
            id=str(body["id"]),
            role=role,
            email=email,
            password=self.password,
            merchant_id=merchant_id,
            store_id=store_id,
        )

    async def _terminal(self, store: FleetStore, index: int) -> FleetTerminal:
        serial = f"LT-{self.tag}-{store.id[:8]}-{index:03d}".upper()
        registered = await self._admin(
            "POST",
            "/v1/terminals",
            201,
            json={"store_id": store.id, "serial": serial, "name": f"Load counter {index}"},
        )
        code = registered["activation"]["activation_code"]
        pem = generate_private_key_pem()
        public_jwk = _public_jwk(pem)
        enrolled = _expect(
            await self._send(
                "POST",
                f"{self.plan.portal_url}/v1/devices/enroll",
                json={"activation_code": code, "public_jwk": public_jwk, "serial": serial},
            ),
            200,
        )
        return FleetTerminal(
            terminal_id=str(enrolled["terminal_id"]),
            client_id=str(enrolled["client_id"]),
            serial=serial,
            store_id=store.id,
            merchant_id=store.merchant_id,
            token_endpoint=str(enrolled["token_endpoint"]),
            private_key_pem=pem,
        )

    async def device_token(self, identity: DeviceIdentity) -> str:
        response = await self._send(
            "POST",
            f"{self.plan.portal_url}/oauth2/token",
            data=identity.token_form(),
            retries=2,
        )
        return str(_expect(response, 200)["access_token"])

    async def _ready_at_pgw(self, terminal: FleetTerminal, deadline: float) -> None:
        """Wait until pgw accepts the terminal at its store (a payment token, revoked at once)."""
        identity = DeviceIdentity(terminal)
        token = await self.device_token(identity)
        token_at = time.monotonic()
        delay = 0.1
        while True:
            if time.monotonic() - token_at > 60:
                token, token_at = await self.device_token(identity), time.monotonic()
            response = await self._send(
                "POST",
                f"{self.plan.pgw_url}/v1/payment-tokens",
                json={"amount": 100, "currency": "JPY", "reference": "loadtest-provision"},
                headers={"authorization": f"Bearer {token}"},
                retries=2,
            )
            if response.status_code == 201:
                payment_token = response.json()["token"]
                revoked = await self._send(
                    "DELETE",
                    f"{self.plan.pgw_url}/v1/payment-tokens/current",
                    headers={"authorization": f"Bearer {payment_token}"},
                    retries=2,
                )
                _expect(revoked, 204)
                return
            code = _problem(response)
            if response.status_code != 403 or code not in NOT_YET_SYNCED:
                _expect(response, 201)
            if time.monotonic() > deadline:
                raise ProvisionError(
                    f"pgw still refuses terminal {terminal.terminal_id} ({code}) after "
                    f"{self.plan.wait_timeout_s:.0f} s: is the portal's outbox relay running?"
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _tokens_only(self, terminal: FleetTerminal) -> None:
        await self.device_token(DeviceIdentity(terminal))

    async def run(self) -> Fleet:
        plan = self.plan
        await self._login()
        me = await self._admin("GET", "/v1/auth/me", 200)
        if me.get("role") != "psp_admin":
            raise ProvisionError(f"{plan.admin_email} is {me.get('role')}, not a psp_admin")
        self._progress(
            f"provisioning {plan.merchants} merchants x {plan.stores_per_merchant} stores x "
            f"{plan.terminals_per_store} terminals (tag {self.tag}) at {plan.portal_url}"
        )
        merchants = await self._gather(
            "merchants", [self._merchant(i) for i in range(plan.merchants)]
        )
        stores = await self._gather(
            "stores",
            [
                self._store(merchant, i)
                for merchant in merchants
                for i in range(plan.stores_per_merchant)
            ],
        )
        users: list[FleetUser] = []
        if plan.users:
            jobs = [
                self._user(role, merchant.id, None, n)
                for n, merchant in enumerate(merchants)
                for role in MERCHANT_ROLES
            ] + [
                self._user(role, store.merchant_id, store.id, n)
                for n, store in enumerate(stores)
                for role in STORE_ROLES
            ]
            users = await self._gather("users", jobs)
        terminals = await self._gather(
            "terminals enrolled",
            [self._terminal(store, i) for store in stores for i in range(plan.terminals_per_store)],
        )
        if plan.wait_for_pgw:
            deadline = time.monotonic() + plan.wait_timeout_s
            await self._gather(
                "terminals with a device token, accepted by pgw",
                [self._ready_at_pgw(terminal, deadline) for terminal in terminals],
            )
        else:
            await self._gather(
                "terminals with a device token", [self._tokens_only(t) for t in terminals]
            )
        return Fleet(
            portal_url=plan.portal_url,
            smarttab_url=plan.smarttab_url,
            pgw_url=plan.pgw_url,
            psp_id=str(me.get("psp_id") or ""),
            merchants=merchants,
            stores=stores,
            users=users,
            terminals=terminals,
            runs=[
                {
                    "tag": self.tag,
                    "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    "merchants": len(merchants),
                    "stores": len(stores),
                    "users": len(users),
                    "terminals": len(terminals),
                }
            ],
        )


def _public_jwk(private_key_pem: str) -> dict[str, Any]:
    from jwt.algorithms import ECAlgorithm

    from loadtest.fleet import load_private_key

    jwk: dict[str, Any] = ECAlgorithm.to_jwk(
        load_private_key(private_key_pem).public_key(), as_dict=True
    )
    return jwk | {"alg": "ES256", "use": "sig"}


async def provision(plan: ProvisionPlan, *, progress: Callable[[str], None] | None = None) -> Fleet:
    """Run ``plan`` against the platform; returns the new slice of the fleet."""
    limits = httpx.Limits(
        max_connections=plan.concurrency, max_keepalive_connections=plan.concurrency
    )
    async with httpx.AsyncClient(timeout=plan.timeout_s, limits=limits) as client:
        return await Provisioner(plan, client, progress=progress).run()


def write_fleet(new: Fleet, path: str | Path, *, replace: bool = False) -> Fleet:
    """Save ``new`` at ``path``, merged into the fleet already there unless ``replace``."""
    target = Path(path)
    fleet = new
    if target.exists() and not replace:
        try:
            existing = load_fleet(target)
        except FleetError as exc:
            raise ProvisionError(f"{exc} (use --replace to overwrite it)") from exc
        if existing.portal_url != new.portal_url:
            raise ProvisionError(
                f"{target} describes the platform at {existing.portal_url}, not "
                f"{new.portal_url}: use another --out or --replace"
            )
        fleet = existing.merge(new)
    save_fleet(fleet, target)
    return fleet
