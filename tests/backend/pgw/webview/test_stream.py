"""GET /v1/payments/{id}/stream: the payment as server-sent events until it stops waiting."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Any

import httpx

from backend.core.authz import Principal, Role, TenantScope
from backend.core.database import create_engine, create_sessionmaker
from backend.core.models import utcnow
from backend.core.settings import Settings
from backend.pgw.payments.routes import payment_read
from backend.pgw.payments.service import payment_service
from backend.pgw.webview.service import PaymentStream, StreamLimits
from tests.backend.pgw.payment_tokens.support import Shop, db_execute, token_headers
from tests.backend.pgw.webview.support import (
    ORIGIN,
    SseComment,
    SseEvent,
    events_only,
    read_sse,
)
from tests.helpers import run
from tests.support.pgw import card_payment, qr_payment, simulate_qr

PAYMENT_FIELDS = {"id", "status", "amount", "currency", "qr_payload", "amount_captured"}


def create_qr_payment(shop: Shop, pgw: httpx.Client) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the token as issued, the QR payment it created, waiting for the customer)."""
    issued = shop.issue(amount=800, currency="JPY")
    created = pgw.post(
        "/v1/payments",
        json=qr_payment(amount=800),
        headers=token_headers(issued["token"], idempotency_key=True),
    )
    assert created.status_code == 201, created.text
    return issued, created.json()


def stream_url(payment_id: str) -> str:
    return f"/v1/payments/{payment_id}/stream"


class TestUntilTheEnd:
    def test_a_qr_payment_streams_waiting_then_captured_then_ends(
        self, shop: Shop, pgw: httpx.Client, settings: Settings
    ) -> None:
        issued, payment = create_qr_payment(shop, pgw)
        items: list[SseEvent | SseComment] = []

        with pgw.stream(
            "GET",
            stream_url(payment["id"]),
            headers={**token_headers(issued["token"]), "origin": ORIGIN},
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
            assert response.headers["cache-control"] == "no-store"
            assert response.headers["access-control-allow-origin"] == "*"
            for item in read_sse(response):
                items.append(item)
                if len(events_only(items)) == 1:
                    # The customer's wallet pays once the page shows the code.
                    simulate_qr(settings, payment["id"], "paid")
        # The loop ended: the server closed the stream after the final status.

        events = events_only(items)
        assert [event.event for event in events] == ["status", "status"]
        first, last = events[0].json(), events[1].json()
        assert first["status"] == "requires_action"
        assert first["qr_payload"] == payment["qr_payload"]
        assert last["status"] == "captured"
        assert last["amount_captured"] == 800
        assert set(first) >= PAYMENT_FIELDS
        # id: the payment's version, increasing with every change.
        assert int(events[0].id or 0) < int(events[1].id or 0)
        # The same document GET /v1/payments/{id} answers.
        read = pgw.get(f"/v1/payments/{payment['id']}", headers=token_headers(issued["token"]))
        assert read.json() == last

    def test_a_declined_qr_payment_ends_with_declined(
        self, shop: Shop, pgw: httpx.Client, settings: Settings
    ) -> None:
        issued, payment = create_qr_payment(shop, pgw)
        statuses = []

        with pgw.stream(
            "GET", stream_url(payment["id"]), headers=token_headers(issued["token"])
        ) as response:
            for event in read_sse(response):
                if isinstance(event, SseEvent):
                    statuses.append(event.json()["status"])
                    if len(statuses) == 1:
                        simulate_qr(settings, payment["id"], "declined")

        assert statuses == ["requires_action", "declined"]

    def test_a_payment_already_final_sends_one_event_and_ends(
        self, shop: Shop, pgw: httpx.Client
    ) -> None:
        token = shop.issue(amount=1200, currency="JPY")["token"]
        paid = pgw.post(
            "/v1/payments",
            json=card_payment(amount=1200),
            headers=token_headers(token, idempotency_key=True),
        ).json()

        with pgw.stream("GET", stream_url(paid["id"]), headers=token_headers(token)) as response:
            events = events_only(list(read_sse(response)))

        assert [event.json()["status"] for event in events] == ["captured"]

    def test_the_terminal_may_follow_its_stores_payment(
        self, shop: Shop, pgw: httpx.Client
    ) -> None:
        issued, payment = create_qr_payment(shop, pgw)
        pgw.post(
            f"/v1/payments/{payment['id']}/void",
            headers=token_headers(issued["token"], idempotency_key=True),
        ).raise_for_status()

        with pgw.stream(
            "GET", stream_url(payment["id"]), headers=shop.device_headers()
        ) as response:
            events = events_only(list(read_sse(response)))

        assert [event.json()["status"] for event in events] == ["canceled"]


class TestRefusedBeforeTheStream:
    def test_no_token_is_a_401_problem_readable_by_the_page(
        self, shop: Shop, pgw: httpx.Client
    ) -> None:
        _, payment = create_qr_payment(shop, pgw)

        response = pgw.get(stream_url(payment["id"]), headers={"origin": ORIGIN})

        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["access-control-allow-origin"] == "*"

    def test_another_tenant_and_another_token_get_404(
        self, shop: Shop, other_shop: Shop, pgw: httpx.Client
    ) -> None:
        _, payment = create_qr_payment(shop, pgw)
        other_token, _ = create_qr_payment(shop, pgw)

        for headers in (
            other_shop.device_headers(),
            token_headers(other_token["token"]),
            token_headers(shop.issue()["token"]),
        ):
            response = pgw.get(stream_url(payment["id"]), headers=headers)
            assert response.status_code == 404, response.text
            assert response.json()["code"] == "payment_not_found"
        unknown = pgw.get(stream_url(str(uuid.uuid4())), headers=shop.device_headers())
        assert unknown.status_code == 404


class TestTheTokenGoesBad:
    def test_an_expired_payment_token_ends_the_stream_with_an_error_event(
        self, shop: Shop, pgw: httpx.Client, settings: Settings
    ) -> None:
        issued, payment = create_qr_payment(shop, pgw)
        items: list[SseEvent | SseComment] = []

        with pgw.stream(
            "GET", stream_url(payment["id"]), headers=token_headers(issued["token"])
        ) as response:
            for item in read_sse(response):
                items.append(item)
                if len(events_only(items)) == 1:
                    # Its 5 minutes are over.
                    db_execute(
                        settings,
                        "UPDATE pgw.payment_tokens SET expires_at = now() - interval '1 second' "
                        "WHERE id = $1",
                        uuid.UUID(issued["id"]),
                    )

        events = events_only(items)
        assert [event.event for event in events] == ["status", "error"]
        problem = events[1].json()
        assert problem["code"] == "payment_token_expired"
        assert problem["status"] == 401
        assert problem["instance"] == stream_url(payment["id"])

    def test_a_revoked_payment_token_ends_the_stream_too(
        self, shop: Shop, pgw: httpx.Client
    ) -> None:
        issued, payment = create_qr_payment(shop, pgw)
        codes = []

        with pgw.stream(
            "GET", stream_url(payment["id"]), headers=token_headers(issued["token"])
        ) as response:
            for event in read_sse(response):
                if isinstance(event, SseEvent) and event.event == "status":
                    pgw.delete(
                        "/v1/payment-tokens/current", headers=token_headers(issued["token"])
                    ).raise_for_status()
                elif isinstance(event, SseEvent):
                    codes.append(event.json()["code"])

        assert codes == ["payment_token_revoked"]

    def test_an_access_token_expiring_ends_the_stream_with_token_expired(
        self, shop: Shop, pgw: httpx.Client, settings: Settings
    ) -> None:
        """A terminal's device token lives 90 s: the stream ends when it does (driven here
        in-process with a principal whose token expires in 0.3 s, on the real database)."""
        _, payment = create_qr_payment(shop, pgw)
        principal = Principal(
            kind="device",
            subject_id=uuid.UUID(shop.terminal_id),
            role=Role.TERMINAL,
            scope=TenantScope(
                psp_id=uuid.UUID(payment["psp_id"]),
                merchant_id=uuid.UUID(payment["merchant_id"]),
                store_id=uuid.UUID(payment["store_id"]),
            ),
            expires_at=utcnow() + dt.timedelta(seconds=0.3),
        )

        async def stream() -> list[str]:
            engine = create_engine(settings, application_name="mpac-pgw-test")
            try:
                sessionmaker = create_sessionmaker(engine)
                async with sessionmaker() as session:
                    first = await payment_service.get(session, principal, uuid.UUID(payment["id"]))
                limits = StreamLimits(poll_interval_s=0.05, heartbeat_s=10, max_duration_s=30)
                events = PaymentStream(
                    sessionmaker, principal, first, read=payment_read, limits=limits, instance="/s"
                ).events()
                return [chunk async for chunk in events]
            finally:
                await engine.dispose()

        started = time.monotonic()
        chunks = run(stream())

        assert 0.25 < time.monotonic() - started < 3
        assert len(chunks) == 2, chunks
        assert chunks[0].startswith("id: ")
        assert "event: status\n" in chunks[0]
        assert chunks[1].startswith("event: error\n")
        assert '"code":"token_expired"' in chunks[1]


class TestOpenEnded:
    """On the fast pgw: polls every 50 ms, a heartbeat after 200 ms of silence, 1 s at most."""

    def test_an_idle_stream_beats_then_ends_at_its_maximum_duration(
        self, shop: Shop, pgw: httpx.Client, fast_pgw: httpx.Client
    ) -> None:
        issued, payment = create_qr_payment(shop, pgw)
        started = time.monotonic()

        with fast_pgw.stream(
            "GET", stream_url(payment["id"]), headers=token_headers(issued["token"])
        ) as response:
            items = list(read_sse(response))
        elapsed = time.monotonic() - started

        assert 0.9 <= elapsed < 5.0, elapsed
        events = events_only(items)
        assert [event.json()["status"] for event in events] == ["requires_action"]
        heartbeats = [item for item in items if isinstance(item, SseComment)]
        assert len(heartbeats) >= 3, items  # 1 s of silence, a beat every 200 ms
        assert "heartbeat" in heartbeats[0].text

    def test_the_stream_holds_no_transaction_open(
        self, shop: Shop, pgw: httpx.Client, fast_pgw: httpx.Client, settings: Settings
    ) -> None:
        issued, payment = create_qr_payment(shop, pgw)
        oldest: list[float] = []
        heartbeats = 0

        with fast_pgw.stream(
            "GET", stream_url(payment["id"]), headers=token_headers(issued["token"])
        ) as response:
            for item in read_sse(response):
                heartbeats += isinstance(item, SseComment)
                if heartbeats == 3 and not oldest:
                    # 0.6 s and a dozen polls in: no pgw connection is in a transaction that
                    # old (one held for the stream would be as old as the stream).
                    rows = db_execute(
                        settings,
                        "SELECT coalesce(max(extract(epoch FROM now() - xact_start)), 0) AS age "
                        "FROM pg_stat_activity WHERE application_name = 'mpac-pgw' "
                        "AND xact_start IS NOT NULL",
                    )
                    oldest.append(float(rows[0]["age"]))

        assert oldest, "fewer than 3 heartbeats arrived"
        assert oldest[0] < 0.3, oldest
