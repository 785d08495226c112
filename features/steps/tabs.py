"""Tabs: a table's bill kept in smarttab — items, a discount, a tip — split into parts that
customers pay one by one on the terminal; a part whose card is declined is paid again
(``docs/smarttab.md``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pytest_bdd import given, step, then, when

from features.support.backoffice import Backoffice
from features.support.deployment import Deployment
from features.support.terminals import Terminal, Transaction, expect
from features.support.vocabulary import DeclineReason, step_text, yen
from features.support.world import Merchant
from terminal_emulator.contract import Status
from tests.support.smarttab import Tabs


@dataclass
class Tab:
    """A tab as its cashier last saw it (``data`` is smarttab's answer)."""

    tabs: Tabs
    data: dict[str, Any] = field(repr=False)

    @property
    def id(self) -> str:
        return str(self.data["id"])

    def reload(self) -> dict[str, Any]:
        self.data = self.tabs.get(self.id)
        return self.data

    def part(self, number: int) -> dict[str, Any]:
        parts = (self.data.get("split") or {}).get("parts", [])
        for part in parts:
            if part["number"] == number:
                return dict(part)
        raise AssertionError(f"the tab has no part {number} (it has {len(parts)})")

    def __repr__(self) -> str:
        return f"Tab({self.id}, {self.data.get('status')}, total ¥{self.data['totals']['total']:,})"


@given(step_text('"{person:Name}" opens a tab for table "{table:Name}"'), target_fixture="tab")
def person_opens_tab(deployment: Deployment, merchant: Merchant, person: str, table: str) -> Tab:
    """A new tab of the person's store (smarttab, as that cashier)."""
    tabs = Tabs(deployment.smarttab, merchant.person(person).headers)
    return Tab(tabs, tabs.open_ok(table=table))


@step(step_text('{quantity:Count} "{item:Name}" at {price:Yen} each are added to the tab'))
def items_added(tab: Tab, quantity: int, item: str, price: int) -> None:
    """A line of the bill (prices exclude tax; standard rate, 10 %)."""
    tab.data = tab.tabs.add_item_ok(tab.data, name=item, unit_price=price, quantity=quantity)


@step(step_text("a discount of {amount:Yen} is given on the tab"))
def tab_discount(tab: Tab, amount: int) -> None:
    """A fixed discount on the whole bill, shared by its lines before tax."""
    tab.data = tab.tabs.update_ok(tab.data, discount={"kind": "fixed", "amount": amount})


@step(step_text("a tip of {amount:Yen} is added to the tab"))
def tab_tip(tab: Tab, amount: int) -> None:
    """A tip on the bill: neither taxed nor discounted."""
    tab.data = tab.tabs.update_ok(tab.data, tip_amount=amount)


@then(step_text("the tab's total is {amount:Yen}"))
def tab_total(tab: Tab, amount: int) -> None:
    """Subtotal - discounts + consumption tax (once per rate, rounded down) + tip."""
    totals = tab.reload()["totals"]
    assert totals["total"] == amount, (
        f"the tab's total is {yen(totals['total'])} (subtotal {yen(totals['subtotal'])}, "
        f"discount {yen(totals['discount_total'])}, tax {yen(totals['tax_total'])}, "
        f"tip {yen(totals['tip'])}), expected {yen(amount)}"
    )


@when(step_text("the tab is split into {count:Count} equal parts"))
def tab_split_equally(tab: Tab, count: int) -> None:
    """Equal parts (the first ones a yen more when the total does not divide)."""
    tab.data = tab.tabs.split_ok(tab.data, mode="equal", count=count)


@then(step_text("the tab's parts are {first:Yen} and {second:Yen}"))
def tab_parts(tab: Tab, first: int, second: int) -> None:
    """Each part's amount, its share of the tip included."""
    amounts = [part["amount"] for part in (tab.reload().get("split") or {}).get("parts", [])]
    assert amounts == [first, second], f"the parts are {[yen(a) for a in amounts]}"


@when(step_text("part {number:Count} of the tab is charged on the terminal"), target_fixture="sale")
def part_charged(terminal: Terminal, tab: Tab, number: int) -> Transaction:
    """A PAYMENT with the tab's id for that part's amount: the Credit Card App pays the part
    through smarttab (the customer presents a card next)."""
    part = tab.part(number)
    return terminal.charge(part["amount"], tab_id=tab.id)


@then(step_text("part {number:Count} of the tab is paid"))
def part_paid(tab: Tab, sale: Transaction, number: int) -> None:
    """The terminal answers approved; smarttab shows the part paid."""
    expect(sale.result(), Status.APPROVED, what=f"the payment of part {number}")
    tab.reload()
    part = tab.part(number)
    assert part["status"] == "paid", f"smarttab shows part {number} {part['status']}"


@then(step_text('part {number:Count} of the tab failed for "{reason:DeclineReason}"'))
def part_failed(tab: Tab, sale: Transaction, number: int, reason: DeclineReason) -> None:
    """The terminal says why; smarttab keeps the part failed, to be paid again."""
    expect(sale.result(), Status.DECLINED, reason.error_code, what=f"the payment of part {number}")
    tab.reload()
    part = tab.part(number)
    assert part["status"] == "failed", f"smarttab shows part {number} {part['status']}"
    failure = (part.get("last_attempt") or {}).get("failure_code")
    assert failure == reason.failure_code, f"smarttab recorded {failure!r}"


@then(step_text("the tab is paid in full"))
def tab_paid_in_full(tab: Tab) -> None:
    """smarttab shows the tab paid, nothing due."""
    data = tab.reload()
    assert (data["status"], data["amount_due"]) == ("paid", 0), (
        f"the tab is {data['status']} with {yen(data['amount_due'])} due"
    )


@then(step_text("the gateway holds {count:Count} captured payment(s) for the tab"))
def gateway_tab_payments(backoffice: Backoffice, tab: Tab, count: int) -> None:
    """Declined attempts stay declined; only the paid parts' payments are captured."""
    payments = [
        payment
        for payment in backoffice.payments(store_id=str(tab.data["store_id"]), limit=200)
        if (payment.get("metadata") or {}).get("tab_id") == tab.id
    ]
    captured = [payment for payment in payments if payment["status"] == "captured"]
    assert len(captured) == count, (
        f"pgw holds {len(captured)} captured payment(s) for the tab "
        f"({[payment['status'] for payment in payments]})"
    )
    total = sum(payment["amount_captured"] for payment in captured)
    assert total == tab.data["amount_paid"], (
        f"pgw captured {yen(total)} for the tab, smarttab says {yen(tab.data['amount_paid'])} paid"
    )
