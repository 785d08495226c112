"""The platform the scenarios run against: in-process (default) or a running deployment.

- **in-process**: the session's own platform (``tests/support/platform.py``: embedded
  PostgreSQL and Redis, every service on a free port); the scenarios' PSP is created by the
  operator's bootstrap, as ``mpac seed`` does.
- **a running deployment** (``--mpac-url``, the portal's URL): the other services' URLs come from
  their options or are derived from the portal's (``mpac up`` puts smarttab, pgw and the provider
  10, 20 and 30 ports above the portal); the scenarios log in as ``--mpac-admin-email`` (default:
  the demo PSP admin of ``mpac up --demo``) and build everything else through the real portal API.

What a target cannot do is a *capability* it lacks; :meth:`Deployment.require` skips the
scenario with the reason. ``operator`` (the database and the services' S2S keys) exists
in-process, and on a deployment only with ``--mpac-state-dir`` (its ``mpac up --state-dir``);
``provider_control`` (the simulated acquirer's API: a customer's wallet, webhooks, latency) needs
the provider's URL and API key.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from backend.core.authz import Role
from backend.core.settings import Settings
from backend.portal.seed import DEMO_PASSWORD, DEMO_PSP_ADMIN
from backend.runtime.embedded import FIELD_KEYS_FILE, S2S_KEYS_FILE, start_postgres
from features.support.http_journal import HttpJournal
from tests.support.pgw import wait_for_directory
from tests.support.portal import PASSWORD, PortalUser, create_psp_with_admin

IN_PROCESS = "in-process"
RUNNING = "deployment"

#: Capabilities a deployment may have.
OPERATOR = "operator"  # the database and the services' S2S keys (what only an operator holds)
PROVIDER_CONTROL = "provider_control"  # the simulated provider's own API

SERVICES = ("portal", "smarttab", "pgw", "provider")
# Where `mpac up` puts each service relative to the portal (8010, 8020, 8030, 8040).
PORT_OFFSETS = {"portal": 0, "smarttab": 10, "pgw": 20, "provider": 30}
HTTP_TIMEOUT_S = 15.0
# The portal relays directory changes to pgw asynchronously (docs/pgw.md, "Directory sync").
DIRECTORY_SYNC_TIMEOUT_S = 15.0
DIRECTORY_LAG_CODES = frozenset({"unknown_store", "unknown_terminal", "unknown_merchant"})
# Human access tokens live 15 minutes; log in again well before.
ADMIN_TOKEN_MAX_AGE_S = 10 * 60


@dataclass(frozen=True)
class ServiceUrls:
    portal: str
    smarttab: str
    pgw: str
    provider: str

    def of(self, service: str) -> str:
        return str(getattr(self, service))

    @classmethod
    def from_settings(cls, settings: Settings) -> ServiceUrls:
        return cls(
            portal=settings.resolved_portal_url,
            smarttab=settings.url_of("smarttab"),
            pgw=settings.url_of("pgw"),
            provider=settings.url_of("provider"),
        )

    @classmethod
    def derived(cls, portal: str, **explicit: str | None) -> ServiceUrls:
        """The portal's URL plus each other service's: given, else at ``mpac up``'s offset."""
        portal = portal.rstrip("/")
        parts = urlsplit(portal)
        if parts.port is None and any(not explicit.get(s) for s in SERVICES[1:]):
            raise pytest.UsageError(
                f"--mpac-url {portal} has no port to derive the other services' URLs from: "
                "give --mpac-smarttab-url, --mpac-pgw-url and --mpac-provider-url"
            )
        urls = {"portal": portal}
        for service in SERVICES[1:]:
            given = explicit.get(service)
            if given:
                urls[service] = given.rstrip("/")
                continue
            assert parts.port is not None
            assert parts.hostname is not None
            netloc = f"{parts.hostname}:{parts.port + PORT_OFFSETS[service]}"
            urls[service] = urlunsplit((parts.scheme, netloc, "", "", ""))
        return cls(**urls)


class Deployment:
    """The platform under test, as the drivers reach it: one HTTP client per service (each
    recording into ``journal``), the PSP admin, and what only some targets allow."""

    def __init__(
        self,
        *,
        target: str,
        urls: ServiceUrls,
        journal: HttpJournal,
        capabilities: frozenset[str],
        operator_settings: Settings | None = None,
        admin_email: str | None = None,
        admin_password: str | None = None,
        provider_api_key: str | None = None,
    ) -> None:
        self.target = target
        self.urls = urls
        self.journal = journal
        self.capabilities = capabilities
        self._operator_settings = operator_settings
        self._admin_email = admin_email
        self._admin_password = admin_password
        self._provider_api_key = provider_api_key
        self._clients: dict[str, httpx.Client] = {}
        self._admin: PortalUser | None = None
        self._admin_since = 0.0
        self._closers: list[Callable[[], None]] = []

    def __repr__(self) -> str:
        return f"<Deployment {self.target} portal={self.urls.portal}>"

    # -- capabilities ---------------------------------------------------------------------------

    def has(self, capability: str) -> bool:
        return capability in self.capabilities

    def require(self, capability: str) -> None:
        """Skip the scenario, saying why, when this target lacks ``capability``."""
        if capability in self.capabilities:
            return
        reasons = {
            OPERATOR: "needs operator access (database, S2S keys): in-process only, or give "
            "--mpac-state-dir of the deployment",
            PROVIDER_CONTROL: "needs the simulated provider's API (--mpac-provider-url and "
            "--mpac-provider-api-key)",
        }
        pytest.skip(
            f"{self.target} backend lacks {capability!r}: "
            f"{reasons.get(capability, 'not available on this target')}"
        )

    @property
    def operator_settings(self) -> Settings:
        """The platform's settings with its secrets (database URL, S2S keys)."""
        self.require(OPERATOR)
        assert self._operator_settings is not None
        return self._operator_settings

    # -- HTTP -----------------------------------------------------------------------------------

    def client(self, service: str) -> httpx.Client:
        """The shared client of ``service`` (portal, smarttab, pgw, provider)."""
        if service not in self._clients:
            headers = {}
            if service == "provider" and self._provider_api_key:
                headers["authorization"] = f"Bearer {self._provider_api_key}"
            self._clients[service] = httpx.Client(
                base_url=self.urls.of(service),
                timeout=HTTP_TIMEOUT_S,
                headers=headers,
                event_hooks=self.journal.hooks(service),
            )
        return self._clients[service]

    @property
    def portal(self) -> httpx.Client:
        return self.client("portal")

    @property
    def pgw(self) -> httpx.Client:
        return self.client("pgw")

    @property
    def smarttab(self) -> httpx.Client:
        return self.client("smarttab")

    @property
    def provider(self) -> httpx.Client:
        self.require(PROVIDER_CONTROL)
        return self.client("provider")

    # -- who acts -------------------------------------------------------------------------------

    @property
    def admin(self) -> PortalUser:
        """The PSP admin the scenarios build their merchants with (logged in, fresh token)."""
        if self._admin is None or time.monotonic() - self._admin_since > ADMIN_TOKEN_MAX_AGE_S:
            self._admin = self._log_in_admin()
            self._admin_since = time.monotonic()
        return self._admin

    def _log_in_admin(self) -> PortalUser:
        if self._admin_email is None:
            # In-process: a PSP of our own, made the way an operator bootstraps one.
            _psp_id, self._admin_email = create_psp_with_admin(self.operator_settings)
            self._admin_password = PASSWORD
        response = self.portal.post(
            "/v1/auth/login",
            json={"email": self._admin_email, "password": self._admin_password},
        )
        if response.status_code != 200:
            raise AssertionError(
                f"cannot log in as the PSP admin {self._admin_email} at {self.urls.portal}: "
                f"{response.status_code} {response.text[:200]} (see --mpac-admin-email)"
            )
        tokens = response.json()
        admin = PortalUser(
            Role.PSP_ADMIN, "", self._admin_email, tokens["access_token"], tokens["refresh_token"]
        )
        admin.id = self.portal.get("/v1/auth/me", headers=admin.headers).json()["id"]
        return admin

    # -- eventual consistency -------------------------------------------------------------------

    def until_gateway_knows(
        self, call: Callable[[], httpx.Response], *, what: str = "the store"
    ) -> httpx.Response:
        """``call()`` again while pgw answers that it does not know the store or terminal yet
        (the portal's directory reaches pgw asynchronously); its first other answer."""
        deadline = time.monotonic() + DIRECTORY_SYNC_TIMEOUT_S
        while True:
            response = call()
            if response.status_code != 403 or _problem_code(response) not in DIRECTORY_LAG_CODES:
                return response
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"pgw still does not know {what} after {DIRECTORY_SYNC_TIMEOUT_S:.0f} s: "
                    f"{response.text[:200]}"
                )
            time.sleep(0.1)

    def wait_for_terminal(
        self,
        store_id: str,
        terminal_id: str,
        *,
        status: str = "active",
        probe: Callable[[], httpx.Response] | None = None,
    ) -> None:
        """Until pgw's copy of the directory holds the terminal with ``status``: read it
        directly (operator), else call ``probe`` (a harmless call with the terminal's own
        token) until pgw's answer shows it (accepted when active, ``terminal_not_active``
        otherwise). Without either, there is nothing to wait on (a real device)."""
        if self.has(OPERATOR):
            wait_for_directory(
                self.operator_settings, store_id=store_id, terminal_id=terminal_id, status=status
            )
            return
        if probe is None:
            return

        def shows_status(response: httpx.Response) -> bool:
            refused_inactive = (
                response.status_code == 403 and _problem_code(response) == "terminal_not_active"
            )
            return response.status_code < 400 if status == "active" else refused_inactive

        deadline = time.monotonic() + DIRECTORY_SYNC_TIMEOUT_S
        while True:
            response = probe()
            if shows_status(response):
                return
            code = _problem_code(response)
            if status == "active":
                # Unknown yet, or still known as pending: the enrollment has not arrived.
                lagging = response.status_code == 403 and code in (
                    DIRECTORY_LAG_CODES | {"terminal_not_active"}
                )
            else:
                # Still accepted: the change has not arrived.
                lagging = response.status_code < 400
            if not lagging or time.monotonic() > deadline:
                # The answer's code only: a 2xx body may hold a credential.
                raise AssertionError(
                    f"pgw does not show terminal {terminal_id} as {status} "
                    f"(it answers {response.status_code} {code or ''})"
                )
            time.sleep(0.1)

    # -- life -----------------------------------------------------------------------------------

    def on_close(self, closer: Callable[[], None]) -> None:
        self._closers.append(closer)

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        for closer in reversed(self._closers):
            with contextlib.suppress(Exception):
                closer()


def _problem_code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return str(body.get("code")) if isinstance(body, dict) and body.get("code") else None


# --------------------------------------------------------------------------------------------
# Building one


def in_process(settings: Settings, journal: HttpJournal) -> Deployment:
    """The session's own platform (``settings`` of ``tests/support/platform.py``)."""
    return Deployment(
        target=IN_PROCESS,
        urls=ServiceUrls.from_settings(settings),
        journal=journal,
        capabilities=frozenset({OPERATOR, PROVIDER_CONTROL}),
        operator_settings=settings,
        provider_api_key=settings.provider_api_key,
    )


@dataclass(frozen=True)
class RunningOptions:
    """The command-line options describing a running deployment."""

    portal_url: str
    smarttab_url: str | None = None
    pgw_url: str | None = None
    provider_url: str | None = None
    admin_email: str = DEMO_PSP_ADMIN
    admin_password: str = DEMO_PASSWORD
    provider_api_key: str | None = "sim_sk_test_local"
    state_dir: Path | None = None


def running(options: RunningOptions, journal: HttpJournal) -> Deployment:
    """A deployment someone started (``mpac up``, a staging cluster), reached over HTTP."""
    urls = ServiceUrls.derived(
        options.portal_url,
        smarttab=options.smarttab_url,
        pgw=options.pgw_url,
        provider=options.provider_url,
    )
    _check_reachable(urls)
    capabilities: set[str] = set()
    if options.provider_api_key and _provider_answers(urls.provider, options.provider_api_key):
        capabilities.add(PROVIDER_CONTROL)
    operator_settings: Settings | None = None
    closers: list[Callable[[], None]] = []
    if options.state_dir is not None:
        operator_settings, closers = _operator_settings(options.state_dir, urls)
        capabilities.add(OPERATOR)
    deployment = Deployment(
        target=RUNNING,
        urls=urls,
        journal=journal,
        capabilities=frozenset(capabilities),
        operator_settings=operator_settings,
        admin_email=options.admin_email,
        admin_password=options.admin_password,
        provider_api_key=options.provider_api_key,
    )
    for closer in closers:
        deployment.on_close(closer)
    return deployment


def _check_reachable(urls: ServiceUrls) -> None:
    for service in ("portal", "smarttab", "pgw"):
        url = urls.of(service) + "/healthz"
        try:
            httpx.get(url, timeout=5.0)
        except httpx.HTTPError as error:
            raise pytest.UsageError(
                f"the deployment's {service} at {url} is unreachable: {error}"
            ) from error


def _provider_answers(provider_url: str, api_key: str) -> bool:
    try:
        response = httpx.get(
            provider_url + "/v1/_control/config",
            headers={"authorization": f"Bearer {api_key}"},
            timeout=5.0,
        )
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def _operator_settings(
    state_dir: Path, urls: ServiceUrls
) -> tuple[Settings, list[Callable[[], None]]]:
    """Settings with a deployment's secrets, from its state dir (as ``mpac serve`` reads them):
    ``MPAC_*`` from the environment first, else the key files, and the embedded PostgreSQL of
    ``<state_dir>/postgres`` joined when ``MPAC_DATABASE_URL`` is unset."""
    base = Settings()
    closers: list[Callable[[], None]] = []
    database_url = base.database_url
    if not database_url:
        if not (state_dir / "postgres").is_dir():
            raise pytest.UsageError(
                f"--mpac-state-dir {state_dir} holds no embedded PostgreSQL; "
                "set MPAC_DATABASE_URL to the deployment's database"
            )
        postgres = start_postgres(state_dir / "postgres")
        closers.append(postgres.stop)
        database_url = postgres.url

    def key_file(value: str, name: str) -> str:
        path = state_dir / name
        if value:
            return value
        if not path.exists():
            raise pytest.UsageError(f"--mpac-state-dir {state_dir} has no {name}")
        return path.read_text().strip()

    pgw = urlsplit(urls.pgw)
    ports = {f"{service}_port": urlsplit(urls.of(service)).port for service in SERVICES}
    settings = Settings(
        **{
            **base.model_dump(),
            "state_dir": state_dir,
            "database_url": database_url,
            "host": pgw.hostname or "127.0.0.1",
            **{name: port for name, port in ports.items() if port is not None},
            "portal_url": urls.portal,
            "s2s_keys": key_file(base.s2s_keys, S2S_KEYS_FILE),
            "field_encryption_keys": key_file(base.field_encryption_keys, FIELD_KEYS_FILE),
        }
    )
    return settings, closers
