"""kill -9 of pgw while card payments are in flight: every payment is recorded once, ends in a
final state, and nobody is charged twice.

The terminals behave as the Credit Card App does after a lost answer: they send the same request
with the same Idempotency-Key again until pgw gives a final answer. pgw is SIGKILLed (no shutdown
hook, open transactions cut) while some payments are answered, some wait on the provider and some
are not sent yet, then started again. The money is then checked at both ends: pgw's payments
against the provider's own authorizations table.

A payment pgw had committed but not yet sent to the provider when it died is sent again by the
terminal's retry; when the reconciler looks at it in the same moment, the defect pinned down by
``test_provider_faults.py::test_a_retry_racing_the_reconciler_never_records_a_charge_as_failed``
shows here too (now and then, more often on a busy machine).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.support.fault_platform import (
    FINAL_STATUSES,
    FaultPlatform,
    FaultTerminal,
    Ledger,
    TerminalPayment,
    card_body,
    new_key,
    pay_until_final,
)

PAYMENTS = 30
# Long enough that a third of the payments wait on the provider when pgw dies.
PROVIDER_LATENCY_MS = 500
# The terminals start one after another, so at the kill some are answered, some in flight and
# some not sent yet.
STAGGER_S = 0.04
SETTLE_TIMEOUT_S = 40.0

pytestmark = pytest.mark.slow


def _report(record_property: Any, figures: dict[str, Any]) -> None:
    print("pgw kill -9 during payments:", figures)
    for name, value in figures.items():
        record_property(name, value)


def test_pgw_killed_mid_payment_records_each_payment_once_and_never_double_charges(
    fault_platform: FaultPlatform, fault_terminal: FaultTerminal, record_property: Any
) -> None:
    platform, terminal = fault_platform, fault_terminal
    platform.provider_config(latency_ms=PROVIDER_LATENCY_MS)
    run = new_key()[:8]
    payments = [
        TerminalPayment(
            f"crash-{run}-{i:02d}", new_key(), card_body(f"crash-{run}-{i:02d}", 1000 + i)
        )
        for i in range(PAYMENTS)
    ]
    started = time.monotonic()
    give_up_at = started + SETTLE_TIMEOUT_S
    go = threading.Barrier(PAYMENTS + 1)

    def terminal_pays(index: int) -> TerminalPayment:
        go.wait()
        time.sleep(index * STAGGER_S)
        return pay_until_final(
            platform.url_of("pgw"), terminal.headers, payments[index], give_up_at=give_up_at
        )

    with ThreadPoolExecutor(max_workers=PAYMENTS) as pool:
        futures = [pool.submit(terminal_pays, i) for i in range(PAYMENTS)]
        go.wait()

        def some_answered_some_waiting() -> bool:
            answered = sum(1 for p in payments if p.answered_at is not None)
            return answered >= 3 and sum(1 for p in payments if p.in_flight) >= 5

        deadline = time.monotonic() + 10
        while not some_answered_some_waiting() and time.monotonic() < deadline:
            time.sleep(0.005)
        answered_before_kill = sum(1 for p in payments if p.answered_at is not None)
        in_flight_at_kill = sum(1 for p in payments if p.in_flight)
        not_sent_at_kill = sum(1 for p in payments if p.sent_at is None)
        killed_pids = platform.kill("pgw")
        killed_at = time.monotonic()

        platform.start("pgw")
        pgw_ready_at = time.monotonic()
        for future in futures:
            future.result()
    last_final = max((p.final_at or time.monotonic()) for p in payments)

    ledger = Ledger.read(platform, terminal.merchant_id)
    by_reference = ledger.payments_by_reference()
    ours = {p.reference for p in payments}
    statuses = Counter(str(p["status"]) for p in ledger.payments)
    failure_codes = Counter(str(p["failure_code"]) for p in ledger.payments if p["failure_code"])
    answers = Counter(entry for p in payments for entry in p.log)
    figures: dict[str, Any] = {
        "attempted": PAYMENTS,
        "answered_before_kill": answered_before_kill,
        "in_flight_at_kill": in_flight_at_kill,
        "not_sent_at_kill": not_sent_at_kill,
        "pgw_pids_killed": len(killed_pids),
        "pgw_restart_s": round(pgw_ready_at - killed_at, 2),
        "all_final_s_after_restart": round(last_final - pgw_ready_at, 2),
        "requests_sent": sum(answers.values()),
        "answers": dict(answers),
        "recorded_at_pgw": len(by_reference),
        "max_payments_per_reference": max((len(v) for v in by_reference.values()), default=0),
        "statuses": dict(statuses),
        "failure_codes": dict(failure_codes),
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
    _report(record_property, figures)

    assert in_flight_at_kill > 0, "the kill must hit payments waiting on the provider"
    unanswered = [(p.reference, p.log) for p in payments if p.final is None]
    assert not unanswered, f"no final answer: {unanswered}"
    assert not [p.server_errors for p in payments if p.server_errors]
    assert set(by_reference) == ours
    assert all(len(rows) == 1 for rows in by_reference.values()), by_reference
    assert set(statuses) <= FINAL_STATUSES, statuses
    for payment in payments:
        assert payment.final is not None
        (row,) = by_reference[payment.reference]
        # What the terminal was told is what pgw recorded.
        assert (payment.final["id"], payment.final["status"]) == (row["id"], row["status"])
    assert figures["double_charged"] == 0
    assert ledger.orphan_authorizations() == []
    assert ledger.amount_mismatches() == [], "pgw's record differs from the money moved"
    assert figures["captured_and_charged"] + figures["cleanly_failed"] == PAYMENTS
