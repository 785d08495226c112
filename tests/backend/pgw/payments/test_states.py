"""The written state machine: every legal move, and every illegal one refused."""

from __future__ import annotations

import itertools

import pytest

from backend.pgw.payments.states import (
    SETTLED_STATUSES,
    TERMINAL_STATUSES,
    TRANSITIONS,
    PaymentStatus,
    can_transition,
)

S = PaymentStatus

LEGAL = {
    (S.PENDING, S.PROCESSING),
    (S.PENDING, S.REQUIRES_ACTION),
    (S.PENDING, S.AUTHORIZED),
    (S.PENDING, S.CAPTURED),
    (S.PENDING, S.DECLINED),
    (S.PENDING, S.FAILED),
    (S.PENDING, S.CANCELED),
    (S.PROCESSING, S.REQUIRES_ACTION),
    (S.PROCESSING, S.AUTHORIZED),
    (S.PROCESSING, S.CAPTURED),
    (S.PROCESSING, S.DECLINED),
    (S.PROCESSING, S.FAILED),
    (S.PROCESSING, S.EXPIRED),
    (S.REQUIRES_ACTION, S.CAPTURED),
    (S.REQUIRES_ACTION, S.DECLINED),
    (S.REQUIRES_ACTION, S.EXPIRED),
    (S.REQUIRES_ACTION, S.CANCELED),
    (S.AUTHORIZED, S.CAPTURED),
    (S.AUTHORIZED, S.VOIDED),
    (S.CAPTURED, S.PARTIALLY_REFUNDED),
    (S.CAPTURED, S.REFUNDED),
    (S.PARTIALLY_REFUNDED, S.PARTIALLY_REFUNDED),
    (S.PARTIALLY_REFUNDED, S.REFUNDED),
}


@pytest.mark.parametrize(("current", "target"), list(itertools.product(S, S)))
def test_each_pair_is_legal_exactly_when_the_written_machine_says_so(
    current: PaymentStatus, target: PaymentStatus
) -> None:
    assert can_transition(current, target) is ((current, target) in LEGAL)


def test_every_status_has_an_entry() -> None:
    assert set(TRANSITIONS) == set(S)


def test_final_statuses_allow_nothing() -> None:
    assert {S.REFUNDED, S.VOIDED, S.DECLINED, S.FAILED, S.CANCELED, S.EXPIRED} == TERMINAL_STATUSES


def test_money_has_moved_only_in_settled_statuses() -> None:
    assert {S.CAPTURED, S.PARTIALLY_REFUNDED, S.REFUNDED} == SETTLED_STATUSES
