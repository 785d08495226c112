"""The provider's webhook receiver (pgw) is down when the customer pays by QR wallet: the provider
keeps the event, records each failed delivery, and delivers it once pgw is back, which completes
the payment.

Only the webhook can complete a QR payment waiting for the customer (the reconciler looks at
``processing`` payments, not ``requires_action`` ones), so the payment reaching ``captured``
proves the late delivery, not some other path.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest

from tests.support.fault_platform import FaultPlatform, FaultTerminal, new_key
from tests.support.pgw import qr_payment, simulate_qr_with, wait_until

# Failed attempts to see before pgw comes back (the schedule retries every second).
FAILED_ATTEMPTS_WANTED = 3

pytestmark = pytest.mark.slow


def _event(platform: FaultPlatform, payment_id: str) -> dict[str, Any] | None:
    with platform.provider() as provider:
        events = provider.get(
            "/v1/_control/webhooks",
            params={"reference": payment_id, "type": "qr_payment.succeeded"},
        ).json()
    return dict(events[0]) if events else None


def test_webhooks_missed_while_pgw_is_down_are_delivered_after_it_restarts(
    fault_platform: FaultPlatform, fault_terminal: FaultTerminal, record_property: Any
) -> None:
    platform, terminal = fault_platform, fault_terminal
    with platform.client("pgw") as pgw:
        created = pgw.post(
            "/v1/payments",
            json=qr_payment(amount=800, reference=f"qr-{new_key()[:8]}"),
            headers={**terminal.headers, "Idempotency-Key": new_key()},
        )
    assert created.status_code == 201, created.text
    payment_id = created.json()["id"]
    assert created.json()["status"] == "requires_action"

    platform.kill("pgw")
    killed_at = time.monotonic()
    with platform.provider() as provider:
        simulate_qr_with(provider, payment_id, "paid")

    def failed_enough() -> dict[str, Any] | None:
        event = _event(platform, payment_id)
        return event if event and event["delivery_count"] >= FAILED_ATTEMPTS_WANTED else None

    while_down: dict[str, Any] = wait_until(
        failed_enough, timeout_s=15, interval_s=0.1, what="failed deliveries while pgw is down"
    )
    started_at_wall = dt.datetime.now(dt.UTC)
    started_at = time.monotonic()
    platform.start("pgw")
    ready_at = time.monotonic()

    def delivered() -> dict[str, Any] | None:
        event = _event(platform, payment_id)
        return event if event and event["status"] == "delivered" else None

    event: dict[str, Any] = wait_until(
        delivered, timeout_s=15, interval_s=0.05, what="the delivery after pgw restarts"
    )
    with platform.client("pgw") as pgw:

        def captured() -> dict[str, Any] | None:
            body = pgw.get(f"/v1/payments/{payment_id}", headers=terminal.headers).json()
            return dict(body) if body.get("status") == "captured" else None

        payment: dict[str, Any] = wait_until(captured, timeout_s=10, what="the payment captured")
        captured_after_s = time.monotonic() - ready_at
        history = pgw.get(f"/v1/payments/{payment_id}/events", headers=terminal.headers).json()

    attempts = event["attempts"]
    failed = [a for a in attempts if a["status_code"] is None or a["status_code"] >= 300]
    succeeded = [a for a in attempts if a["status_code"] is not None and a["status_code"] < 300]
    assert len(succeeded) == 1, attempts
    # The successful attempt's answer, on the provider's clock (the same machine's).
    delivered_at = dt.datetime.fromisoformat(succeeded[0]["at"]) + dt.timedelta(
        milliseconds=succeeded[0]["duration_ms"]
    )
    figures: dict[str, Any] = {
        "event": event["type"],
        "failed_attempts_while_down": while_down["delivery_count"],
        "failed_attempts_before_success": len(failed),
        "delivered_on_attempt": succeeded[0]["attempt_no"] if succeeded else None,
        "first_error": failed[0]["error"] if failed else None,
        "pgw_down_s": round(started_at - killed_at, 2),
        "pgw_start_to_ready_s": round(ready_at - started_at, 2),
        "delivered_s_after_pgw_start": round((delivered_at - started_at_wall).total_seconds(), 2),
        "captured_s_after_pgw_ready": round(captured_after_s, 2),
    }
    print("webhook receiver down:", figures)
    for name, value in figures.items():
        record_property(name, value)

    assert while_down["status"] == "pending", "the provider must keep retrying, not give up"
    assert all(a["status_code"] is None and a["error"] for a in while_down["attempts"])
    assert len(failed) >= FAILED_ATTEMPTS_WANTED
    assert attempts[-1] == succeeded[0], "nothing is sent after a successful delivery"
    assert payment["amount_captured"] == 800
    assert history[-1]["to_status"] == "captured"
    assert history[-1]["data"]["via"] == "webhook"
