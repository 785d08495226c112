"""The payment state machine: every status and every legal move, written once.

```
pending ──► processing ──► authorized ──► captured ──► partially_refunded ──► refunded
   │            │  │  │         │            │                                  ▲
   │            │  │  │         └► voided    └──────────────────────────────────┘
   │            │  │  └► declined / failed
   │            │  └► requires_action (QR shown) ──► captured / declined / expired / canceled
   └► canceled  └► captured (automatic capture)
```
``processing`` means the provider was asked and did not answer: the reconciler asks it again
and moves the payment on; it never becomes ``failed`` while the provider may have charged.
"""

from __future__ import annotations

from enum import StrEnum


class PaymentStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    REQUIRES_ACTION = "requires_action"
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    VOIDED = "voided"
    DECLINED = "declined"
    FAILED = "failed"
    CANCELED = "canceled"
    EXPIRED = "expired"


S = PaymentStatus

TRANSITIONS: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    S.PENDING: frozenset(
        {
            S.PROCESSING,
            S.REQUIRES_ACTION,
            S.AUTHORIZED,
            S.CAPTURED,
            S.DECLINED,
            S.FAILED,
            S.CANCELED,
        }
    ),
    S.PROCESSING: frozenset(
        {S.REQUIRES_ACTION, S.AUTHORIZED, S.CAPTURED, S.DECLINED, S.FAILED, S.EXPIRED}
    ),
    S.REQUIRES_ACTION: frozenset({S.CAPTURED, S.DECLINED, S.EXPIRED, S.CANCELED}),
    S.AUTHORIZED: frozenset({S.CAPTURED, S.VOIDED}),
    S.CAPTURED: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.PARTIALLY_REFUNDED: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.REFUNDED: frozenset(),
    S.VOIDED: frozenset(),
    S.DECLINED: frozenset(),
    S.FAILED: frozenset(),
    S.CANCELED: frozenset(),
    S.EXPIRED: frozenset(),
}

TERMINAL_STATUSES = frozenset(status for status, moves in TRANSITIONS.items() if not moves)
# Money has moved: these count in settlement.
SETTLED_STATUSES = frozenset({S.CAPTURED, S.PARTIALLY_REFUNDED, S.REFUNDED})


def can_transition(current: PaymentStatus, target: PaymentStatus) -> bool:
    return target in TRANSITIONS[current]
