"""The pure rules: which terminal or store a close means, and how totals add up."""

from __future__ import annotations

import uuid

import pytest

from backend.core.authz import Principal, Role, TenantScope
from backend.core.errors import Problem
from backend.pgw.settlement.repository import ClosedPayment, ClosedRefund
from backend.pgw.settlement.schemas import SettlementClose
from backend.pgw.settlement.service import compute_totals, resolve_target

PSP, MERCHANT, STORE, OTHER_STORE = (uuid.uuid4() for _ in range(4))
TERMINAL = uuid.uuid4()


def _device() -> Principal:
    return Principal(
        kind="device",
        subject_id=TERMINAL,
        role=Role.TERMINAL,
        scope=TenantScope(PSP, MERCHANT, STORE),
    )


def _user(role: Role, store: uuid.UUID | None = None) -> Principal:
    merchant = None if role is Role.PSP_ADMIN else MERCHANT
    return Principal(
        kind="user",
        subject_id=uuid.uuid4(),
        role=role,
        scope=TenantScope(PSP, merchant, store),
    )


class TestResolveTarget:
    def test_a_device_closes_its_own_terminal_by_default(self) -> None:
        target = resolve_target(_device(), SettlementClose())

        assert (target.scope, target.store_id, target.terminal_id) == ("terminal", STORE, TERMINAL)

    def test_a_device_may_close_its_store(self) -> None:
        target = resolve_target(_device(), SettlementClose(scope="store"))

        assert (target.scope, target.store_id, target.terminal_id) == ("store", STORE, None)

    def test_a_store_manager_closes_their_store_by_default(self) -> None:
        target = resolve_target(_user(Role.STORE_MANAGER, STORE), SettlementClose())

        assert (target.scope, target.store_id, target.terminal_id) == ("store", STORE, None)

    def test_naming_a_terminal_means_a_terminal_close(self) -> None:
        target = resolve_target(_user(Role.MERCHANT_ADMIN), SettlementClose(terminal_id=TERMINAL))

        assert (target.scope, target.store_id, target.terminal_id) == ("terminal", None, TERMINAL)

    @pytest.mark.parametrize(
        ("principal", "body", "code"),
        [
            (_device(), SettlementClose(terminal_id=uuid.uuid4()), "terminal_mismatch"),
            (_device(), SettlementClose(store_id=OTHER_STORE), "store_mismatch"),
            (
                _device(),
                SettlementClose(scope="store", terminal_id=TERMINAL),
                "terminal_not_allowed",
            ),
            (_user(Role.MERCHANT_ADMIN), SettlementClose(), "store_required"),
            (_user(Role.PSP_ADMIN), SettlementClose(scope="store"), "store_required"),
            (
                _user(Role.STORE_MANAGER, STORE),
                SettlementClose(store_id=OTHER_STORE),
                "store_mismatch",
            ),
            (
                _user(Role.STORE_MANAGER, STORE),
                SettlementClose(scope="terminal"),
                "terminal_required",
            ),
        ],
    )
    def test_refusals(self, principal: Principal, body: SettlementClose, code: str) -> None:
        with pytest.raises(Problem) as refused:
            resolve_target(principal, body)

        assert refused.value.code == code


def _payment(
    amount: int,
    *,
    tip: int = 0,
    currency: str = "JPY",
    method: str = "card_present",
    brand: str | None = "visa",
    entry_mode: str | None = "contactless",
) -> ClosedPayment:
    return ClosedPayment(uuid.uuid4(), currency, amount, tip, method, brand, entry_mode)


def _refund(amount: int, paid: ClosedPayment) -> ClosedRefund:
    return ClosedRefund(
        uuid.uuid4(),
        paid.id,
        paid.currency,
        amount,
        paid.method,
        paid.card_brand,
        paid.entry_mode,
    )


class TestComputeTotals:
    def test_nothing_makes_empty_totals(self) -> None:
        assert compute_totals([], []) == {}

    def test_gross_tips_refunds_and_net_per_currency_with_breakdowns(self) -> None:
        visa = _payment(1300, tip=100)
        qr = _payment(800, method="qr_wallet", brand=None, entry_mode=None)
        usd = _payment(1999, currency="USD", brand="mastercard", entry_mode="chip")
        earlier = _payment(5000, brand="jcb")

        totals = compute_totals([visa, qr, usd], [_refund(500, visa), _refund(200, earlier)])

        assert list(totals) == ["JPY", "USD"]
        jpy = totals["JPY"]
        assert {k: jpy[k] for k in ("payment_count", "refund_count", "gross", "tips")} == {
            "payment_count": 2,
            "refund_count": 2,
            "gross": 2100,
            "tips": 100,
        }
        assert (jpy["refunds"], jpy["net"]) == (700, 1400)
        assert jpy["by_method"] == {
            "card_present": {
                "count": 1,
                "amount": 1300,
                "refund_count": 2,
                "refund_amount": 700,
                "net": 600,
            },
            "qr_wallet": {
                "count": 1,
                "amount": 800,
                "refund_count": 0,
                "refund_amount": 0,
                "net": 800,
            },
        }
        assert jpy["by_card_brand"]["jcb"] == {
            "count": 0,
            "amount": 0,
            "refund_count": 1,
            "refund_amount": 200,
            "net": -200,
        }
        assert jpy["by_card_brand"]["none"]["amount"] == 800
        assert jpy["by_entry_mode"]["none"]["count"] == 1
        assert totals["USD"]["gross"] == totals["USD"]["net"] == 1999
        assert totals["USD"]["by_card_brand"] == {
            "mastercard": {
                "count": 1,
                "amount": 1999,
                "refund_count": 0,
                "refund_amount": 0,
                "net": 1999,
            }
        }
