"""Refunds and voids: the cashier gives money back on the terminal (part or all of a captured
payment, never more), or voids an authorization before it is captured."""

from __future__ import annotations

from pytest_bdd import given, then, when

from features.support.backoffice import Backoffice
from features.support.terminals import Payment, Terminal, Transaction, expect
from features.support.vocabulary import Card, step_text, yen
from features.support.world import Merchant
from terminal_emulator.contract import ErrorCode, Status

# -- refunds ------------------------------------------------------------------------------------


@when(
    step_text("the cashier refunds {amount:Yen} of the payment on the terminal"),
    target_fixture="refund",
)
def cashier_refunds_part(terminal: Terminal, payment: Payment, amount: int) -> Transaction:
    """A REFUND of part of the payment (the Credit Card App asks pgw)."""
    return terminal.refund(payment.payment_id, amount)


@when(step_text("the cashier refunds the whole payment on the terminal"), target_fixture="refund")
def cashier_refunds_all(terminal: Terminal, payment: Payment) -> Transaction:
    """A REFUND without an amount: all that is left to refund."""
    return terminal.refund(payment.payment_id)


@then(step_text("the refund is approved for {amount:Yen}"))
def refund_approved(refund: Transaction, amount: int) -> None:
    """The terminal answers approved, for that amount, with a refund id."""
    result = expect(refund.result(), Status.APPROVED, what="the refund")
    assert result.refund_id, "an approved refund without a refund id"
    assert result.amount == amount, f"refunded {yen(result.amount or 0)}, expected {yen(amount)}"


@then(step_text("the refund is refused because it is more than is left to refund"))
def refund_refused_too_much(refund: Transaction) -> None:
    """The terminal answers REFUND_EXCEEDS_CAPTURED: nothing was refunded."""
    expect(refund.result(), Status.ERROR, ErrorCode.REFUND_EXCEEDS_CAPTURED, what="the refund")


# -- what the gateway says about the payment ----------------------------------------------------


@then(step_text("the gateway shows the payment as {status:PaymentStatus}"))
def gateway_payment_status(backoffice: Backoffice, payment: Payment, status: str) -> None:
    """pgw's status of the payment (waited for a few seconds: a webhook or the reconciler may
    settle it just after the terminal answered)."""
    record = backoffice.payment_when(payment.payment_id, {status})
    assert record["status"] == status, (
        f"pgw shows the payment {record['status']}, expected {status}"
    )


@then(step_text("the gateway shows {amount:Yen} of the payment left to refund"))
def gateway_refundable(backoffice: Backoffice, payment: Payment, amount: int) -> None:
    """What pgw would still refund: captured minus refunded."""
    record = backoffice.payment(payment.payment_id)
    assert record["amount_refundable"] == amount, (
        f"pgw shows {yen(record['amount_refundable'])} left to refund, expected {yen(amount)}"
    )


@then(step_text("the gateway shows nothing captured for the payment"))
def gateway_nothing_captured(backoffice: Backoffice, payment: Payment) -> None:
    """pgw captured nothing of the payment."""
    record = backoffice.payment(payment.payment_id)
    assert record["amount_captured"] == 0, f"pgw captured {yen(record['amount_captured'])}"


# -- voids --------------------------------------------------------------------------------------


@given(
    step_text(
        '"{person:Name}" took an authorization of {amount:Yen} with the {card:Card} '
        'at the store "{store:Name}", not captured yet'
    ),
    target_fixture="payment",
)
def authorization_not_captured(
    backoffice: Backoffice, merchant: Merchant, person: str, amount: int, card: Card, store: str
) -> Payment:
    """An authorize-only payment, taken through pgw's API by store staff: the Credit Card App
    always captures at once, so there is no way to take one on the terminal."""
    record = backoffice.authorize_only(merchant.person(person), merchant.store(store), card, amount)
    return Payment(str(record["id"]), amount, card)


@when(step_text("the cashier voids the payment on the terminal"), target_fixture="void")
def cashier_voids(terminal: Terminal, payment: Payment) -> Transaction:
    """A VOID: the authorization is released, nothing is charged."""
    return terminal.void(payment.payment_id)


@then(step_text("the void is approved"))
def void_approved(void: Transaction) -> None:
    """The terminal answers approved for the VOID."""
    expect(void.result(), Status.APPROVED, what="the void")


@then(step_text("the void is refused because the payment is already captured"))
def void_refused_captured(void: Transaction) -> None:
    """The terminal answers ILLEGAL_STATE: a captured payment is refunded, not voided."""
    expect(void.result(), Status.ERROR, ErrorCode.ILLEGAL_STATE, what="the void")
