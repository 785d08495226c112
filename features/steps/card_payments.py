"""Card payments: the cashier starts a sale on the terminal, the customer presents a card of
the test catalogue (taps, inserts, swipes; a PIN when the card asks), and the result is checked
on the terminal and at the gateway."""

from __future__ import annotations

import json

from pytest_bdd import given, then, when

from features.support.backoffice import Backoffice
from features.support.scene import OWN_TERMINALS, Scene
from features.support.terminals import Payment, Terminal, Transaction, describe, expect
from features.support.vocabulary import Card, DeclineReason, step_text, yen
from terminal_emulator.contract import ErrorCode, Status

CARD_PROMPT_TIMEOUT_S = 10.0


# -- the cashier --------------------------------------------------------------------------------


@when(step_text("the cashier charges {amount:Yen} on the terminal"), target_fixture="sale")
def cashier_charges(terminal: Terminal, amount: int) -> Transaction:
    """Start a sale: the Business App asks the Credit Card App for a PAYMENT."""
    return terminal.charge(amount)


@when(
    step_text(
        "the cashier charges {amount:Yen} on the terminal, "
        "which waits {seconds:Count} seconds for the card"
    ),
    target_fixture="sale",
)
def cashier_charges_with_card_wait(terminal: Terminal, amount: int, seconds: int) -> Transaction:
    """A sale whose card screen gives up after ``seconds`` (the contract's ``timeout_ms``,
    5 to 300 seconds)."""
    return terminal.charge(amount, timeout_ms=seconds * 1000)


# -- the customer -------------------------------------------------------------------------------


@when(step_text("the customer {method:Presentation} the {card:Card}"))
def customer_presents_card(terminal: Terminal, sale: Transaction, method: str, card: Card) -> None:
    """Once the terminal asks for a card, the customer taps, inserts or swipes it."""
    terminal.driver.require("card_presentation")
    terminal.driver.wait_for_card_prompt(timeout_s=CARD_PROMPT_TIMEOUT_S)
    terminal.driver.present_card(method, card.pan)
    sale.card = card


@then(step_text("the terminal asks for the customer's PIN"))
def terminal_asks_for_pin(terminal: Terminal) -> None:
    """The Credit Card App waits for the PIN (the card asked for one)."""
    terminal.driver.wait_for_pin_prompt(timeout_s=CARD_PROMPT_TIMEOUT_S)


@when(step_text("the customer enters the PIN {pin:Digits}"))
def customer_enters_pin(terminal: Terminal, pin: str) -> None:
    """Once the terminal asks for the PIN, the customer types it and presses OK."""
    terminal.driver.require("card_presentation")
    terminal.driver.wait_for_pin_prompt(timeout_s=CARD_PROMPT_TIMEOUT_S)
    terminal.driver.enter_pin(pin)


@when(step_text("the customer presses Cancel on the card screen"))
def customer_cancels(terminal: Terminal) -> None:
    """The customer changes their mind while the terminal waits for the card."""
    terminal.driver.require("card_presentation")
    terminal.driver.wait_for_card_prompt(timeout_s=CARD_PROMPT_TIMEOUT_S)
    terminal.driver.cancel_card()


@when(step_text("the customer presents no card"))
def customer_presents_nothing(terminal: Terminal) -> None:
    """Nothing happens at the card reader (the card screen's wait runs out)."""
    terminal.driver.wait_for_card_prompt(timeout_s=CARD_PROMPT_TIMEOUT_S)


# -- the terminal's answer ----------------------------------------------------------------------


@then(step_text("the payment is approved"), target_fixture="payment")
def payment_approved(sale: Transaction) -> Payment:
    """The terminal answers approved, with a payment id and an auth code."""
    result = expect(sale.result(), Status.APPROVED)
    assert result.payment_id, f"an approved payment without a payment id: {result}"
    assert result.auth_code, f"an approved payment without an auth code: {describe(result)}"
    amount = result.amount if result.amount is not None else 0
    return Payment(result.payment_id, amount, sale.card, result)


@then(step_text('the payment is declined for "{reason:DeclineReason}"'), target_fixture="payment")
def payment_declined(sale: Transaction, reason: DeclineReason) -> Payment | None:
    """The terminal answers declined with the issuer's reason."""
    result = expect(sale.result(), Status.DECLINED, reason.error_code)
    if result.payment_id is None:
        return None
    return Payment(result.payment_id, result.amount or 0, sale.card, result)


@then(step_text("the payment is cancelled by the customer"))
def payment_cancelled(sale: Transaction) -> None:
    """The terminal answers cancelled (CUSTOMER_CANCELLED)."""
    expect(sale.result(), Status.CANCELLED, ErrorCode.CUSTOMER_CANCELLED)


@then(step_text("the payment times out waiting for the card"))
def payment_timed_out(sale: Transaction) -> None:
    """The terminal answers timeout (TIMEOUT): no card came in time."""
    expect(sale.result(), Status.TIMEOUT, ErrorCode.TIMEOUT)


@then(step_text("the terminal shows {amount:Yen} charged"))
def terminal_shows_amount(sale: Transaction, amount: int) -> None:
    """The result carries that amount, in yen."""
    result = sale.result()
    assert (result.amount, result.currency) == (amount, "JPY"), (
        f"the terminal shows {yen(result.amount or 0)} {result.currency}, expected {yen(amount)}"
    )


@then(step_text("the result shows only the card's brand and last four digits"))
def result_masks_the_card(sale: Transaction) -> None:
    """``visa`` and ``**** **** **** 4242``; the full card number appears nowhere."""
    result = sale.result()
    card = sale.card
    assert card is not None, "no card was presented in this scenario"
    assert result.card_brand == card.brand, f"brand {result.card_brand!r}, expected {card.brand}"
    assert result.masked_pan == card.masked_pan, (
        f"card shown as {result.masked_pan!r}, expected {card.masked_pan!r}"
    )
    assert card.pan not in json.dumps(result.to_json()), "the result carries the card number"


@then(step_text('the card was read by "{mode:EntryMode}"'))
def card_entry_mode(sale: Transaction, mode: str) -> None:
    """How the terminal read the card: contactless, chip or swipe."""
    result = sale.result()
    entry = result.entry_mode.value if result.entry_mode is not None else None
    assert entry == mode, f"the card was read by {entry!r}, expected {mode!r}"


# -- the gateway's records ----------------------------------------------------------------------


@then(step_text("the gateway records the payment as captured for {amount:Yen}"))
def gateway_captured(backoffice: Backoffice, payment: Payment, amount: int) -> None:
    """pgw holds the payment captured for exactly that amount."""
    record = backoffice.payment(payment.payment_id)
    assert record["status"] == "captured", f"pgw shows the payment {record['status']}"
    assert (record["amount_captured"], record["currency"]) == (amount, "JPY"), (
        f"pgw captured {yen(record['amount_captured'])} {record['currency']}, expected {yen(amount)}"
    )


@then(step_text('the gateway records the payment as declined for "{reason:DeclineReason}"'))
def gateway_declined(
    backoffice: Backoffice, payment: Payment | None, reason: DeclineReason
) -> None:
    """pgw keeps the declined payment with the reason, and nothing captured."""
    assert payment is not None, "the terminal's answer named no payment to look up"
    record = backoffice.payment(payment.payment_id)
    assert record["status"] == "declined", f"pgw shows the payment {record['status']}"
    assert record["failure_code"] == reason.failure_code, (
        f"pgw recorded {record['failure_code']!r}, expected {reason.failure_code!r}"
    )
    assert record["amount_captured"] == 0, f"pgw captured {yen(record['amount_captured'])}"


@then(step_text("the gateway records no payment from the terminal"))
def gateway_has_no_payment(scene: Scene, backoffice: Backoffice, terminal: Terminal) -> None:
    """Nothing reached pgw: the customer was never charged."""
    scene.require_terminal(OWN_TERMINALS)
    assert terminal.terminal_id is not None
    payments = backoffice.payments(terminal_id=terminal.terminal_id)
    assert payments == [], f"pgw holds {len(payments)} payment(s) from the terminal: {payments}"


@then(step_text('the payment belongs to the store "{store:Name}" and the terminal'))
def payment_belongs_to(
    scene: Scene, backoffice: Backoffice, payment: Payment, terminal: Terminal, store: str
) -> None:
    """pgw files the payment under that store and this terminal."""
    scene.require_terminal(OWN_TERMINALS)
    record = backoffice.payment(payment.payment_id)
    assert terminal.store is not None, "the terminal belongs to no store of the scenario"
    assert terminal.store.name == store, f'the terminal is not at the store "{store}"'
    assert record["store_id"] == terminal.store.id, f"pgw files it under store {record['store_id']}"
    assert record["terminal_id"] == terminal.terminal_id, (
        f"pgw files it under terminal {record['terminal_id']}, not {terminal.terminal_id}"
    )


# -- shortcuts for the Given part of other features ---------------------------------------------


@given(
    step_text("the customer paid {amount:Yen} with the {card:Card} on the terminal"),
    target_fixture="payment",
)
def customer_paid(terminal: Terminal, amount: int, card: Card) -> Payment:
    """A whole approved sale: charge, tap the card, approved."""
    sale = terminal.charge(amount)
    customer_presents_card(terminal, sale, "tap", card)
    return payment_approved(sale)


@given(
    step_text(
        'the customer paid {amount:Yen} with the {card:Card} on the terminal "{terminal_name:Name}"'
    ),
    target_fixture="payment",
)
def customer_paid_at(scene: Scene, amount: int, card: Card, terminal_name: str) -> Payment:
    """The same, on one of several terminals of the scenario."""
    return customer_paid(scene.terminal(terminal_name), amount, card)


# -- a lost answer, asked again -----------------------------------------------------------------


@when(
    step_text("the answer is lost and the Business App sends the same request again"),
    target_fixture="retry",
)
def same_request_again(terminal: Terminal, sale: Transaction) -> Transaction:
    """The same PAYMENT, same request id: the Credit Card App must answer the first result
    instead of charging again (the contract's idempotency)."""
    return terminal.start(sale.request)


@when(step_text("the Credit Card App is killed"))
def credit_card_app_killed(terminal: Terminal) -> None:
    """``am force-stop``: the process dies; its request journal survives on the device."""
    terminal.driver.require("force_stop")
    terminal.driver.force_stop_credit_card_app()


@then(step_text("the terminal answers with the same payment"))
def same_payment_again(retry: Transaction, payment: Payment) -> None:
    """Approved, with the payment id of the first answer: nothing was charged again."""
    result = expect(retry.result(), Status.APPROVED, what="the repeated request")
    assert result.payment_id == payment.payment_id, (
        f"the repeated request answered payment {result.payment_id}, the first was "
        f"{payment.payment_id}: the customer may have been charged twice"
    )


@then(step_text("the gateway holds exactly one payment for the sale"))
def one_payment_for_sale(backoffice: Backoffice, payment: Payment, sale: Transaction) -> None:
    """Among the terminal's payments at pgw, one carries the sale's request id: the customer
    was charged once."""
    record = backoffice.payment(payment.payment_id)
    request_id = sale.request.request_id
    payments = [
        item
        for item in backoffice.payments(terminal_id=str(record["terminal_id"]))
        if (item.get("metadata") or {}).get("request_id") == request_id
    ]
    assert len(payments) == 1, (
        f"pgw holds {len(payments)} payments for request {request_id}: "
        f"{[(item['id'], item['status'], item['amount']) for item in payments]}"
    )
