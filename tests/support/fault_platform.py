"""A platform to break on purpose: every service an OS process that a test may SIGKILL.

``loadtest/bench_platform.py``'s platform (each service ``mpac serve`` in a process of its
own, PostgreSQL/Redis embedded in its state directory) with the settings a fault test needs:
short provider and reconciler timeouts, a short webhook retry schedule, idempotency claims of a
killed request taken over after seconds instead of a minute, and cheap password hashing. Tests
change the provider's behaviour at runtime through its control API (:meth:`provider_config`)
and read the databases directly (:meth:`fetch`) to count what really happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from backend.core.authz import Role
from loadtest.bench_platform import BenchPlatform, ServiceProcess, bench_platform
from tests.helpers import asyncpg_dsn
from tests.support.pgw import wait_for_directory
from tests.support.portal import (
    EnrolledTerminal,
    PortalUser,
    bearer,
    create_merchant,
    create_psp_with_admin,
    create_store,
    enroll_terminal,
    login,
    unique,
)

# Every value is chosen so a fault settles within seconds; a test may override any of them.
FAULT_SETTINGS: dict[str, Any] = {
    # Logins hash passwords; at production cost they would dominate provisioning.
    "password_hash_time_cost": 1,
    "password_hash_memory_kib": 8192,
    "login_max_failures_per_ip": 100_000,
    "outbox_relay_interval_s": 0.1,
    "key_ring_refresh_s": 1.0,
    "jwks_min_refetch_interval_s": 1.0,
    "signing_key_activation_delay_s": 1.5,
    # pgw gives the provider 2 s; the reconciler looks at payments older than that (+1 s).
    "pgw_provider_timeout_s": 2.0,
    "reconciler_interval_s": 0.5,
    "reconciler_min_age_s": 0.5,
    # A claim left "in progress" by a killed pgw is taken over by a retry after 3 s (not 60).
    "idempotency_stale_after_s": 3,
    # The timeout card stalls longer than pgw waits, but not for long.
    "provider_timeout_delay_s": 3.0,
    # About 20 s of delivery attempts, every half-second: a webhook missed while pgw was down
    # arrives soon after it is back.
    "provider_webhook_retry_schedule_s": ",".join(["0.5"] * 40),
    "provider_webhook_timeout_s": 2.0,
    "provider_latency_ms": 0,
    "provider_failure_rate": 0.0,
}

FINAL_STATUSES = frozenset({"captured", "authorized", "failed", "declined"})


@dataclass
class FaultTerminal:
    """An enrolled terminal of a fresh merchant's store that pgw knows about."""

    psp_id: str
    merchant_id: str
    store_id: str
    admin: PortalUser
    terminal: EnrolledTerminal
    access_token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.access_token)


@dataclass
class FaultPlatform(BenchPlatform):
    """:class:`BenchPlatform` with what a fault test does to it and reads back from it."""

    # -- processes ----------------------------------------------------------------------------

    def kill(self, service: str) -> list[int]:
        """SIGKILL every process of ``service`` (no shutdown hooks run); returns their pids."""
        return kill_service(self.services[service])

    def start(self, service: str) -> ServiceProcess:
        """A new process of ``service`` on the same port and settings (after :meth:`kill`)."""
        old = self.services[service]
        if self.is_running(service):
            raise RuntimeError(f"{service} is still running (pids {old.server_pids()})")
        return self.restart(service, workers=old.workers)

    def is_running(self, service: str) -> bool:
        process = self.services[service].process
        return process is not None and process.poll() is None

    def heal(self) -> None:
        """Every service running and ready again, the provider's knobs back to the settings."""
        for name, process in self.services.items():
            if self.is_running(name):
                process.wait_ready()
            else:
                self.start(name)
        with self.provider() as provider:
            provider.delete("/v1/_control/config").raise_for_status()

    # -- clients ------------------------------------------------------------------------------

    def client(self, service: str, *, timeout_s: float = 10.0) -> httpx.Client:
        return httpx.Client(base_url=self.url_of(service), timeout=timeout_s)

    def provider(self) -> httpx.Client:
        """The simulated acquirer with its API key (what pgw sends)."""
        client = self.client("provider")
        client.headers["authorization"] = f"Bearer {self.settings.provider_api_key}"
        return client

    def provider_config(self, **knobs: Any) -> dict[str, Any]:
        """``latency_ms``, ``failure_rate``, ``timeout_delay_s`` of the running provider process
        (a restarted one starts again from the settings)."""
        with self.provider() as provider:
            response = provider.post("/v1/_control/config", json=knobs)
            response.raise_for_status()
            return dict(response.json())

    def fetch(self, sql: str, *args: Any) -> list[dict[str, Any]]:
        """Rows of a query on the platform's database, read directly (not through a service)."""

        async def query() -> list[dict[str, Any]]:
            connection = await asyncpg.connect(asyncpg_dsn(self.settings.database_url))
            try:
                return [dict(row) for row in await connection.fetch(sql, *args)]
            finally:
                await connection.close()

        return asyncio.run(query())

    # -- tenants ------------------------------------------------------------------------------

    def paying_terminal(self) -> FaultTerminal:
        """A fresh PSP, merchant and store with one enrolled terminal pgw knows, and its token.

        Leaner than ``tests.support.pgw.paying_terminal`` (one user, one store): each fault test
        makes its own merchant, so its payments can be counted by merchant id.
        """
        psp_id, admin_email = create_psp_with_admin(self.settings)
        with self.client("portal") as portal:
            tokens = login(portal, admin_email)
            admin = PortalUser(
                Role.PSP_ADMIN,
                "",
                admin_email,
                tokens["access_token"],
                tokens["refresh_token"],
            )
            merchant_id = create_merchant(portal, admin, unique("merchant"))
            store_id = create_store(portal, admin, merchant_id, "Fault store")
            terminal = enroll_terminal(portal, admin, store_id)
            wait_for_directory(self.settings, store_id=store_id, terminal_id=terminal.terminal_id)
            token = terminal.fresh_token(portal)
        return FaultTerminal(psp_id, merchant_id, store_id, admin, terminal, token)


@contextlib.contextmanager
def run_fault_platform(**overrides: Any) -> Iterator[FaultPlatform]:
    """:func:`bench_platform` on :data:`FAULT_SETTINGS` updated with ``overrides``."""
    with bench_platform(settings_overrides={**FAULT_SETTINGS, **overrides}) as bench:
        platform = FaultPlatform(bench.settings, bench.infra, bench.services, bench.state_dir)
        try:
            yield platform
        finally:
            # A throwaway platform: a graceful stop would only wait for open connections.
            for process in platform.services.values():
                kill_service(process)


def kill_service(process: ServiceProcess) -> list[int]:
    """SIGKILL the service's server processes and the process itself; returns the pids."""
    pids = process.server_pids()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if process.process is not None:
        with contextlib.suppress(ProcessLookupError):
            process.process.kill()
        process.process.wait(timeout=10)
    return pids


def new_key() -> str:
    return uuid.uuid4().hex


# -- a terminal that pays through a fault -------------------------------------------------------

# Answers after which a terminal tries again with the same Idempotency-Key: the outcome is not
# known yet (202), the first request still holds the key (409), the service is busy or restarting.
RETRY_STATUS_CODES = frozenset({202, 409, 429, 502, 503, 504})


@dataclass
class TerminalPayment:
    """One payment as a terminal makes it: one Idempotency-Key and one body, retried as they
    are until a final answer (what the Credit Card App does after a lost answer)."""

    reference: str
    key: str
    body: dict[str, Any]
    # One entry per try: "201 captured", "202 processing", "409 idempotency_request_in_progress",
    # "refused" (nothing listened), "cut:ReadError" (the connection died mid-request), ...
    log: list[str] = field(default_factory=list)
    sent_at: float | None = None
    answered_at: float | None = None
    final: dict[str, Any] | None = None
    final_at: float | None = None

    @property
    def in_flight(self) -> bool:
        return self.sent_at is not None and self.answered_at is None

    @property
    def server_errors(self) -> list[str]:
        return [entry for entry in self.log if entry.startswith("500")]


def card_body(reference: str, amount: int, pan: str = "4242424242424242") -> dict[str, Any]:
    return {
        "amount": amount,
        "currency": "JPY",
        "method": "card_present",
        "entry_mode": "contactless",
        "card": {"pan": pan, "exp_month": 12, "exp_year": 2030},
        "reference": reference,
    }


def pay_until_final(
    pgw_url: str,
    headers: dict[str, str],
    payment: TerminalPayment,
    *,
    give_up_at: float,
    retry_every_s: float = 0.5,
    request_timeout_s: float = 8.0,
) -> TerminalPayment:
    """Send ``payment`` until pgw gives a final answer or ``give_up_at`` (monotonic) passes."""
    with httpx.Client(base_url=pgw_url, timeout=request_timeout_s) as client:
        while True:
            if payment.sent_at is None:
                payment.sent_at = time.monotonic()
            try:
                response = client.post(
                    "/v1/payments",
                    json=payment.body,
                    headers={**headers, "Idempotency-Key": payment.key},
                )
            except httpx.ConnectError:
                payment.log.append("refused")
            except httpx.TransportError as exc:
                payment.log.append(f"cut:{type(exc).__name__}")
            else:
                if payment.answered_at is None:
                    payment.answered_at = time.monotonic()
                body: dict[str, Any] = response.json() if response.content else {}
                what = body.get("status") if response.is_success else body.get("code")
                payment.log.append(f"{response.status_code} {what or ''}".strip())
                if response.status_code == 201 and body.get("status") in FINAL_STATUSES:
                    payment.final, payment.final_at = body, time.monotonic()
                    return payment
                if response.status_code not in RETRY_STATUS_CODES | {500}:
                    return payment  # a refusal the terminal cannot fix by retrying
            if time.monotonic() >= give_up_at:
                return payment
            time.sleep(retry_every_s)


def card_payments(prefix: str, count: int, first_amount: int) -> list[TerminalPayment]:
    """``count`` card payments, each with a reference, amount and Idempotency-Key of its own."""
    run = new_key()[:8]
    references = [f"{prefix}-{run}-{index:02d}" for index in range(count)]
    return [
        TerminalPayment(reference, new_key(), card_body(reference, first_amount + index))
        for index, reference in enumerate(references)
    ]


@dataclass(frozen=True)
class AtTheFault:
    """Where the terminals' payments stood when the test broke something."""

    answered: int
    in_flight: int
    not_sent: int


@contextlib.contextmanager
def paying_concurrently(
    platform: FaultPlatform,
    terminal: FaultTerminal,
    payments: list[TerminalPayment],
    *,
    stagger_s: float,
    give_up_s: float,
    answered: int = 3,
    in_flight: int = 5,
) -> Iterator[AtTheFault]:
    """Each payment paid by a terminal of its own (:func:`pay_until_final`), started
    ``stagger_s`` apart: the body (the fault) runs once ``answered`` payments have an answer and
    ``in_flight`` wait for one, while the last ones are not sent yet. Leaves when every terminal
    has a final answer or gave up, ``give_up_s`` after the start."""
    give_up_at = time.monotonic() + give_up_s
    # Released together once every thread is up, so the stagger alone sets who is where.
    go = threading.Barrier(len(payments) + 1)

    def terminal_pays(index: int) -> TerminalPayment:
        go.wait()
        time.sleep(index * stagger_s)
        return pay_until_final(
            platform.url_of("pgw"), terminal.headers, payments[index], give_up_at=give_up_at
        )

    def now() -> AtTheFault:
        return AtTheFault(
            answered=sum(1 for p in payments if p.answered_at is not None),
            in_flight=sum(1 for p in payments if p.in_flight),
            not_sent=sum(1 for p in payments if p.sent_at is None),
        )

    with ThreadPoolExecutor(max_workers=len(payments)) as pool:
        futures = [pool.submit(terminal_pays, index) for index in range(len(payments))]
        go.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            state = now()
            if state.answered >= answered and state.in_flight >= in_flight:
                break
            time.sleep(0.005)
        yield now()
        for future in futures:
            future.result()


# -- what the money says: pgw's payments against the provider's authorizations ----------------


@dataclass
class Ledger:
    """pgw's payments of a merchant and the provider's card authorizations for them."""

    payments: list[dict[str, Any]]
    authorizations: list[dict[str, Any]]

    @classmethod
    def read(cls, platform: FaultPlatform, merchant_id: str) -> Ledger:
        payments = platform.fetch(
            "SELECT id::text AS id, reference, status, amount + tip_amount AS total,"
            " amount_captured, failure_code FROM pgw.payments WHERE merchant_id = $1",
            uuid.UUID(merchant_id),
        )
        authorizations = platform.fetch(
            "SELECT id, reference, status, captured, amount_captured"
            " FROM provider.authorizations WHERE merchant_id = $1",
            merchant_id,
        )
        return cls(payments, authorizations)

    def payments_by_reference(self) -> dict[str, list[dict[str, Any]]]:
        grouped: dict[str, list[dict[str, Any]]] = {}
        for payment in self.payments:
            grouped.setdefault(str(payment["reference"]), []).append(payment)
        return grouped

    def authorizations_of(self, payment_id: str) -> list[dict[str, Any]]:
        # The provider's reference is pgw's payment id (unique at the provider).
        return [a for a in self.authorizations if a["reference"] == payment_id]

    def orphan_authorizations(self) -> list[dict[str, Any]]:
        """Authorizations at the provider that no pgw payment knows about."""
        ids = {payment["id"] for payment in self.payments}
        return [a for a in self.authorizations if a["reference"] not in ids]

    def captured_at_provider(self, payment_id: str) -> int:
        return sum(int(a["amount_captured"]) for a in self.authorizations_of(payment_id))

    def double_charged(self) -> int:
        """References charged more than once at the provider, plus charges pgw has no payment
        for (either is a customer charged twice for one purchase)."""
        twice = 0
        for payments in self.payments_by_reference().values():
            charges = [
                a
                for payment in payments
                for a in self.authorizations_of(payment["id"])
                if a["captured"]
            ]
            twice += max(0, len(charges) - 1)
        return twice + sum(1 for a in self.orphan_authorizations() if a["captured"])

    def amount_mismatches(self) -> list[str]:
        """Payments whose captured amount at pgw differs from what the provider captured."""
        return [
            f"{p['reference']}: pgw {p['status']} captured {p['amount_captured']}, "
            f"provider captured {self.captured_at_provider(p['id'])}"
            for p in self.payments
            if int(p["amount_captured"]) != self.captured_at_provider(p["id"])
        ]


def payment_figures(payments: list[TerminalPayment], ledger: Ledger) -> dict[str, Any]:
    """What the terminals were told and what the money says, for a test's report."""
    by_reference = ledger.payments_by_reference()
    answers = Counter(entry for payment in payments for entry in payment.log)
    return {
        "attempted": len(payments),
        "requests_sent": sum(answers.values()),
        "answers": dict(answers),
        "recorded_at_pgw": len(by_reference),
        "max_payments_per_reference": max((len(v) for v in by_reference.values()), default=0),
        "statuses": dict(Counter(str(p["status"]) for p in ledger.payments)),
        "failure_codes": dict(
            Counter(str(p["failure_code"]) for p in ledger.payments if p["failure_code"])
        ),
        "captured_and_charged": sum(
            1
            for p in ledger.payments
            if p["status"] == "captured" and ledger.captured_at_provider(p["id"]) > 0
        ),
        "cleanly_failed": sum(
            1
            for p in ledger.payments
            if p["status"] in ("failed", "declined") and ledger.captured_at_provider(p["id"]) == 0
        ),
        "provider_authorizations": len(ledger.authorizations),
        "double_charged": ledger.double_charged(),
        "amount_mismatches": len(ledger.amount_mismatches()),
    }


def assert_each_recorded_once_as_told(payments: list[TerminalPayment], ledger: Ledger) -> None:
    """Every terminal got a final answer and never a 500; pgw recorded each payment once, as
    the terminal was told; and the money agrees: nobody charged twice, no charge pgw does not
    know about, every captured amount the provider's."""
    # Messages carry the values: pytest does not rewrite asserts outside test modules.
    unanswered = [(p.reference, p.log) for p in payments if p.final is None]
    assert not unanswered, f"no final answer: {unanswered}"
    server_errors = {p.reference: p.server_errors for p in payments if p.server_errors}
    assert not server_errors, f"500s: {server_errors}"
    by_reference = ledger.payments_by_reference()
    references = {p.reference for p in payments}
    assert set(by_reference) == references, (
        f"not recorded: {references - set(by_reference)}, "
        f"not sent: {set(by_reference) - references}"
    )
    twice = {reference: rows for reference, rows in by_reference.items() if len(rows) != 1}
    assert not twice, f"recorded more than once: {twice}"
    for payment in payments:
        assert payment.final is not None
        (row,) = by_reference[payment.reference]
        told = (payment.final["id"], payment.final["status"])
        assert told == (row["id"], row["status"]), (
            f"{payment.reference}: the terminal was told {told}, pgw recorded {row}"
        )
    assert ledger.double_charged() == 0, f"charged twice: {ledger.authorizations}"
    orphans = ledger.orphan_authorizations()
    assert not orphans, f"charges pgw has no payment for: {orphans}"
    mismatches = ledger.amount_mismatches()
    assert not mismatches, f"pgw's record differs from the money moved: {mismatches}"
