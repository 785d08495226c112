"""Faults: PostgreSQL and Redis restarted for real while a store's traffic runs.

One platform for the module (``tests/support/fault_platform.py``, on
``loadtest/bench_platform.py``): every service its own ``mpac serve`` process, PostgreSQL and
Redis embedded in its state directory. Not the other fault modules' platform: a restart that
went wrong here must not take their tests down with it. A test keeps a store's traffic running
(device tokens, card payments, payment reads, tabs, staff logins) while a server is stopped for
``DOWN_S`` and started again on the same data, socket and configuration
(``tests/support/restartable_infra.py``), then checks that

- every request got an answer within its client timeout, and every 5xx was a 503
  problem+json with a ``code`` (a client can tell "retry in a moment" from a defect);
- every service's ``/readyz`` said 503 during the outage and went back to 200 by itself,
  within ``READY_BOUND_S``, and requests succeed again from then on;
- no acknowledged payment was lost, and retrying any payment with its Idempotency-Key after
  the outage gives exactly one payment, in a final status.

The Redis tests also keep a device on the smarttab WebSocket and check that replay protection
(client assertion ``jti``, kept in Redis and PostgreSQL) survives a restart, even one that
loses Redis's data. Figures (requests during the outage by status, seconds until each service
was ready) are printed and recorded as junit properties.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import pytest
import redis.exceptions
from fastapi import FastAPI
from sqlalchemy.exc import DBAPIError, IntegrityError

from backend.core.authz import Role
from backend.core.errors import (
    PROBLEM_CONTENT_TYPE,
    DependencyUnreachable,
    install_problem_handlers,
)
from tests.helpers import asyncpg_dsn
from tests.support.fault_platform import FaultPlatform, FaultTerminal, run_fault_platform
from tests.support.pgw import wait_until
from tests.support.portal import PASSWORD, EnrolledTerminal, bearer, create_user, token_form
from tests.support.restartable_infra import (
    CLIENT_TIMEOUT_S,
    FINAL_PAYMENT_STATUSES,
    Actors,
    Call,
    ReadinessProbe,
    RestartablePostgres,
    RestartableRedis,
    StreamWatcher,
    Traffic,
    outcomes_by_op,
    unclean_answers,
)

# Traffic before the stop (every service holds connections the stop cuts), the outage itself.
BEFORE_S = 1.0
DOWN_S = 2.0
# Every service must answer /readyz 200 again within this after the server is back.
READY_BOUND_S = 10.0
# Requests started this long after the last service was ready again must all succeed; the
# traffic goes on for SETTLED_S past that, so that there are such requests however long the
# services took to be ready.
SETTLE_S = 1.0
SETTLED_S = 2.0
STAFF_PER_TEST = 4


@dataclass
class Faulty:
    platform: FaultPlatform
    postgres: RestartablePostgres
    redis: RestartableRedis
    # The store whose traffic runs through every outage.
    store: FaultTerminal

    @property
    def terminal(self) -> EnrolledTerminal:
        return self.store.terminal

    @property
    def service_urls(self) -> dict[str, str]:
        return {name: self.platform.url_of(name) for name in self.platform.services}

    def client(self, service: str) -> httpx.Client:
        return httpx.Client(base_url=self.platform.url_of(service), timeout=CLIENT_TIMEOUT_S)

    def device_token(self) -> str:
        with self.client("portal") as portal:
            return self.terminal.fresh_token(portal)

    def staff(self, count: int) -> list[str]:
        """Fresh store managers: a lock-out left by one test must not spill into the next."""
        with self.client("portal") as portal:
            return [
                create_user(
                    portal,
                    self.store.admin,
                    Role.STORE_MANAGER,
                    merchant_id=self.store.merchant_id,
                    store_id=self.store.store_id,
                ).email
                for _ in range(count)
            ]

    def actors(self) -> Actors:
        return Actors(
            portal_url=self.platform.url_of("portal"),
            pgw_url=self.platform.url_of("pgw"),
            smarttab_url=self.platform.url_of("smarttab"),
            terminal=self.terminal,
            staff_emails=self.staff(STAFF_PER_TEST),
            password=PASSWORD,
        )

    def wait_ready(self, after: float) -> dict[str, float | None]:
        with ReadinessProbe(self.service_urls) as probe:
            return probe.wait_ready(after, timeout_s=READY_BOUND_S)


@pytest.fixture(scope="module")
def faulty() -> Iterator[Faulty]:
    # FAULT_SETTINGS' idempotency claims go stale after 3 s: the retries after an outage need
    # not wait a minute for a claim the outage left "in progress".
    with run_fault_platform() as platform:
        embedded_pg, embedded_redis = platform.infra.postgres, platform.infra.redis
        assert embedded_pg is not None, "bench_platform embeds PostgreSQL when given no URL"
        assert embedded_redis is not None, "bench_platform embeds Redis when given no URL"
        yield Faulty(
            platform,
            RestartablePostgres(embedded_pg),
            RestartableRedis(embedded_redis),
            platform.paying_terminal(),
        )


# --------------------------------------------------------------------------------------------
# One outage under traffic


@dataclass
class Outage:
    traffic: Traffic
    down_at: float
    # When the stop command returned (the server is gone) and when the start command did.
    stopped_at: float
    up_at: float
    # Seconds from the server being back until each service's /readyz answered 200 for good.
    ready_after_s: dict[str, float | None]
    unready_during: dict[str, bool]

    @property
    def all_ready_at(self) -> float:
        known = [s for s in self.ready_after_s.values() if s is not None]
        return self.up_at + (max(known) if known else READY_BOUND_S)

    def figures(self) -> dict[str, Any]:
        during = self.traffic.between(self.down_at, self.up_at)
        recovering = self.traffic.between(self.up_at, self.all_ready_at)
        slowest = max((c.ended - c.started for c in during + recovering), default=0.0)
        return {
            "outage_s": round(self.up_at - self.down_at, 2),
            "stop_command_s": round(self.stopped_at - self.down_at, 2),
            "requests_total": len(self.traffic.calls),
            "during_outage": outcomes_by_op(during),
            "while_recovering": outcomes_by_op(recovering),
            "problem_codes": sorted(
                {f"{c.status} {c.code}" for c in during + recovering if c.code}
            ),
            "slowest_answer_s": round(slowest, 2),
            "readyz_503_during_outage": self.unready_during,
            "ready_after_s": self.ready_after_s,
        }

    def describe(self, calls: list[Call], limit: int = 12) -> str:
        return "\n".join(
            f"{c.op}: {c.outcome} {c.code or ''} at {c.started - self.down_at:+.2f} s "
            f"({c.ended - c.started:.2f} s)"
            for c in calls[:limit]
        )


def run_outage(
    faulty: Faulty, actors: Actors, stop: Callable[[], None], start: Callable[[], None]
) -> Outage:
    with ReadinessProbe(faulty.service_urls) as probe, Traffic(actors) as traffic:
        time.sleep(BEFORE_S)
        down_at = time.monotonic()
        stop()
        stopped_at = time.monotonic()
        time.sleep(DOWN_S)
        start()
        up_at = time.monotonic()
        ready = probe.wait_ready(up_at, timeout_s=READY_BOUND_S)
        outage = Outage(traffic, down_at, stopped_at, up_at, ready, unready_during={})
        time.sleep(max(0.0, outage.all_ready_at + SETTLE_S + SETTLED_S - time.monotonic()))
    outage.unready_during = {s: probe.saw_unready(s, down_at, up_at) for s in faulty.service_urls}
    return outage


def report(name: str, figures: dict[str, Any], record_property: Callable[[str, Any], None]) -> None:
    print(f"\n{name}:\n{json.dumps(figures, indent=2)}")
    for key, value in figures.items():
        record_property(f"{name}.{key}", json.dumps(value))


def assert_failed_cleanly_and_recovered(faulty: Faulty, outage: Outage) -> None:
    traffic = outage.traffic
    assert traffic.calls, "the traffic sent nothing"
    assert not traffic.hung, f"requests still running past the client timeout: {traffic.hung}"
    unclean = unclean_answers(traffic.calls)
    assert not unclean, (
        f"{len(unclean)} requests were not refused cleanly (503 problem+json with a code):\n"
        + outage.describe(unclean)
    )
    assert all(outage.unready_during.values()), (
        f"/readyz must say 503 while the server is down: {outage.unready_during}"
    )
    not_ready = [s for s, after in outage.ready_after_s.items() if after is None]
    assert not not_ready, f"/readyz not 200 again within {READY_BOUND_S} s: {not_ready}"
    settled = traffic.started_after(outage.all_ready_at + SETTLE_S)
    assert settled, "no traffic after the services were ready again"
    failing = [c for c in settled if c.status is None or c.status >= 500]
    assert not failing, "requests still fail after /readyz is 200:\n" + outage.describe(failing)
    for name, service in faulty.platform.services.items():
        assert service.process is not None
        assert service.process.poll() is None, f"{name} exited: nothing may restart it"


# --------------------------------------------------------------------------------------------
# Payments after the outage


def _retry_payment(pgw: httpx.Client, token: str, key: str, body: dict[str, Any]) -> httpx.Response:
    """What a terminal does with a payment it has no answer for: the same key, until 2xx."""
    deadline = time.monotonic() + 20
    while True:
        response = pgw.post(
            "/v1/payments", json=body, headers={**bearer(token), "Idempotency-Key": key}
        )
        if response.is_success or time.monotonic() > deadline:
            return response
        # 409: a claim the outage left "in progress", until it is stale; 503: not yet back.
        assert response.status_code in (409, 503), response.text
        time.sleep(float(response.headers.get("retry-after", "1")))


def _final_status(pgw: httpx.Client, token: str, payment_id: str) -> str:
    def final() -> str | None:
        status = pgw.get(f"/v1/payments/{payment_id}", headers=bearer(token)).json()["status"]
        return status if status in FINAL_PAYMENT_STATUSES else None

    result: str = wait_until(final, timeout_s=15, what=f"payment {payment_id} to end")
    return result


async def _payments_per_reference(database_url: str, references: list[str]) -> dict[str, int]:
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        rows = await connection.fetch(
            "SELECT reference, count(*) AS n FROM pgw.payments "
            "WHERE reference = ANY($1::text[]) GROUP BY reference",
            references,
        )
    finally:
        await connection.close()
    return {row["reference"]: int(row["n"]) for row in rows}


def assert_payments_intact(faulty: Faulty, traffic: Traffic) -> dict[str, int]:
    """Every payment acknowledged stays, in a final status; every attempt retried with its key
    ends as exactly one payment (an acknowledged one replays the same payment)."""
    token = faulty.device_token()
    acknowledged = unanswered = 0
    with faulty.client("pgw") as pgw:
        for attempt in traffic.payments:
            retried = _retry_payment(pgw, token, attempt.key, attempt.body)
            assert retried.is_success, f"retry of {attempt.key}: {retried.text}"
            payment_id = retried.json()["id"]
            if attempt.payment_id is not None:
                acknowledged += 1
                assert payment_id == attempt.payment_id, "a retry made another payment"
            else:
                unanswered += 1
            status = retried.json()["status"]
            # A final payment stays final: only one answered before it was needs waiting for.
            if status not in FINAL_PAYMENT_STATUSES:
                status = _final_status(pgw, token, payment_id)
            assert status in FINAL_PAYMENT_STATUSES
    references = [attempt.body["reference"] for attempt in traffic.payments]
    counts = asyncio.run(_payments_per_reference(faulty.platform.settings.database_url, references))
    duplicated = {ref: n for ref, n in counts.items() if n != 1}
    assert not duplicated, f"payments created more than once: {duplicated}"
    assert len(counts) == len(references), "an attempt retried with its key left no payment"
    return {"acknowledged_2xx": acknowledged, "retried_after_no_2xx": unanswered}


async def _tabs_with_labels(database_url: str, labels: list[str]) -> list[str]:
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        rows = await connection.fetch(
            "SELECT label FROM smarttab.tabs WHERE label = ANY($1::text[])", labels
        )
    finally:
        await connection.close()
    return [row["label"] for row in rows]


def assert_refusals_changed_nothing(faulty: Faulty, traffic: Traffic) -> int:
    """A tab open answered with an error must not have opened a tab: the terminal would open
    another when it retries (POST /v1/tabs has no Idempotency-Key)."""
    refused = [label for label, status in traffic.tabs if status != 201]
    landed = asyncio.run(_tabs_with_labels(faulty.platform.settings.database_url, refused))
    assert not landed, f"{len(landed)} of {len(refused)} refused tab opens opened a tab anyway"
    return len(refused)


# --------------------------------------------------------------------------------------------
# Device tokens and their replay protection


def _token_request(faulty: Faulty, assertion: str) -> httpx.Response:
    with faulty.client("portal") as portal:
        return portal.post("/oauth2/token", data=token_form(assertion))


def _used_assertion(faulty: Faulty) -> tuple[str, str]:
    """An assertion exchanged once for a token, and the Redis key that marks its jti used."""
    terminal = faulty.terminal
    jti = uuid.uuid4().hex
    assertion = terminal.key.assertion(terminal.terminal_id, terminal.token_endpoint, jti=jti)
    first = _token_request(faulty, assertion)
    assert first.status_code == 200, first.text
    marker = f"replay:client_assertion_jti:{terminal.terminal_id}:{jti}"
    assert faulty.redis.exists(marker), "the jti is remembered in Redis"
    return assertion, marker


# --------------------------------------------------------------------------------------------
# Which errors are an unreachable dependency (503) and which stay defects (500)


def _wrapped(driver_error: Exception, wrapper: type[DBAPIError] = DBAPIError) -> DBAPIError:
    """What SQLAlchemy raises for an asyncpg error: wrapper from adapter from driver error."""
    try:
        try:
            raise Exception(str(driver_error)) from driver_error
        except Exception as adapted:
            raise wrapper("SELECT 1", {}, adapted) from adapted
    except DBAPIError as wrapped:
        return wrapped


def _answer(exc: Exception) -> httpx.Response:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/fails")
    async def fails() -> None:
        raise exc

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/fails")

    return asyncio.run(call())


@pytest.mark.parametrize(
    "exc",
    [
        DependencyUnreachable("cannot connect to the database: [Errno 2] No such file"),
        _wrapped(asyncpg.exceptions.CannotConnectNowError("the database system is starting up")),
        _wrapped(asyncpg.exceptions.AdminShutdownError("terminating connection")),
        _wrapped(asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed")),
        redis.exceptions.ConnectionError("Error 111 connecting to /tmp/redis.socket"),
        redis.exceptions.TimeoutError("Timeout reading from socket"),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_a_lost_database_or_redis_is_a_503_to_retry(exc: Exception) -> None:
    response = _answer(exc)

    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM_CONTENT_TYPE
    assert response.json()["code"] == "dependency_unavailable"
    assert response.headers["retry-after"] == "1"


@pytest.mark.parametrize(
    "exc",
    [
        _wrapped(asyncpg.exceptions.UniqueViolationError("duplicate key"), IntegrityError),
        _wrapped(asyncpg.exceptions.UndefinedColumnError("no such column")),
        redis.exceptions.ResponseError("WRONGTYPE Operation against a key"),
        FileNotFoundError("a file a defect looked for"),
    ],
    ids=lambda exc: type(exc).__name__,
)
def test_any_other_database_or_redis_error_is_still_a_defect(exc: Exception) -> None:
    response = _answer(exc)

    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"


# --------------------------------------------------------------------------------------------
# The tests


@pytest.mark.slow
def test_postgresql_restart_during_traffic(
    faulty: Faulty, record_property: Callable[[str, Any], None]
) -> None:
    outage = run_outage(faulty, faulty.actors(), faulty.postgres.stop, faulty.postgres.start)

    figures = outage.figures()
    report("postgres_restart", figures, record_property)
    assert_failed_cleanly_and_recovered(faulty, outage)
    refused_tabs = assert_refusals_changed_nothing(faulty, outage.traffic)
    payments = assert_payments_intact(faulty, outage.traffic)
    report(
        "postgres_restart",
        {"payments": payments, "refused_tab_opens": refused_tabs},
        record_property,
    )


@pytest.mark.slow
def test_redis_restart_during_traffic(
    faulty: Faulty, record_property: Callable[[str, Any], None]
) -> None:
    actors = faulty.actors()
    assertion, marker = _used_assertion(faulty)
    with StreamWatcher(actors.smarttab_url, faulty.device_token) as stream:
        # Redis is restarted as `redis-cli shutdown` would: it writes its RDB file first.
        outage = run_outage(faulty, actors, faulty.redis.stop, faulty.redis.start)
        with faulty.client("smarttab") as smarttab:
            notice = smarttab.post(
                "/v1/stream/notices",
                json={"text": "after the Redis restart"},
                headers=bearer(faulty.device_token()),
            )
        assert notice.status_code == 201, notice.text
        notice_seq = int(notice.json()["seq"])
        delivered = stream.wait_for(notice_seq, timeout_s=10)
    websocket = {
        "events_received": len(stream.seqs),
        "server_closes": [(code, reason) for _, code, reason in stream.closes],
        "reconnects": stream.reconnects,
        "resyncs": stream.resyncs,
        "missing_seqs": stream.missing(stream.head_seq + 1, notice_seq),
    }
    marker_kept = faulty.redis.exists(marker)
    replayed = _token_request(faulty, assertion)
    replay = {
        "jti_marker_kept": marker_kept,
        "replayed_assertion_status": replayed.status_code,
        "replayed_assertion_code": replayed.json().get("code"),
    }

    figures = {**outage.figures(), "websocket": websocket, "replay_protection": replay}
    report("redis_restart", figures, record_property)
    assert_failed_cleanly_and_recovered(faulty, outage)
    assert delivered, f"the device got no event after Redis came back: {websocket}"
    assert not websocket["missing_seqs"], "events lost across the Redis restart"
    assert replayed.status_code == 401, "a used assertion was accepted again"
    assert replay["replayed_assertion_code"] == "assertion_replayed"
    refused_tabs = assert_refusals_changed_nothing(faulty, outage.traffic)
    payments = assert_payments_intact(faulty, outage.traffic)
    report(
        "redis_restart", {"payments": payments, "refused_tab_opens": refused_tabs}, record_property
    )


@pytest.mark.slow
def test_redis_losing_its_data_does_not_reopen_used_assertions(
    faulty: Faulty, record_property: Callable[[str, Any], None]
) -> None:
    assertion, marker = _used_assertion(faulty)
    # A crash of a Redis that persists nothing (or a fresh container): SIGKILL, no RDB file.
    faulty.redis.stop(keep_data=False)
    faulty.redis.start()
    up_at = time.monotonic()
    ready = faulty.wait_ready(up_at)
    assert all(after is not None for after in ready.values()), ready
    marker_kept = faulty.redis.exists(marker)
    replayed = _token_request(faulty, assertion)
    figures = {
        "ready_after_s": ready,
        "jti_marker_kept": marker_kept,
        "replayed_assertion_status": replayed.status_code,
        "replayed_assertion_code": replayed.json().get("code"),
    }
    report("redis_data_loss", figures, record_property)

    assert not marker_kept, "the restart must have lost Redis's data for this to prove anything"
    assert replayed.status_code == 401, "the replayed assertion was exchanged for a token"
    assert figures["replayed_assertion_code"] == "assertion_replayed"


@pytest.mark.slow
def test_logins_during_a_database_outage_do_not_lock_the_account(
    faulty: Faulty, record_property: Callable[[str, Any], None]
) -> None:
    """Logins the outage refused (503) are not failures: enough of them to lock the account
    (``login_max_failures`` + 1) leave it usable once the database is back."""
    (email,) = faulty.staff(1)
    attempts = faulty.platform.settings.login_max_failures + 1
    faulty.postgres.stop()
    try:
        with faulty.client("portal") as portal:
            answers = [
                portal.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
                for _ in range(attempts)
            ]
    finally:
        faulty.postgres.start()
    ready = faulty.wait_ready(time.monotonic())
    with faulty.client("portal") as portal:
        login = portal.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    figures = {
        "logins_during_outage": dict(Counter(str(a.status_code) for a in answers)),
        "ready_after_s": ready,
        "login_after_outage": login.status_code,
    }
    report("logins_during_db_outage", figures, record_property)

    assert {a.status_code for a in answers} == {503}, [a.text for a in answers]
    assert all(after is not None for after in ready.values()), ready
    assert login.status_code == 200, login.text
