"""Tab arithmetic: pure functions on integers in the currency's minor unit (docs/smarttab.md).

No floats, no I/O. Every rule that creates or moves a minor unit is written here once:

* Prices are tax-exclusive. Percentages are basis points (1 % = 100 bp).
* A percentage discount or service charge is ``amount * bp / 10000`` rounded half-even to the
  minor unit; a fixed discount is capped at what it discounts (nothing goes below zero).
* The tab discount is shared across the lines in proportion to their amounts after item
  discounts; the units left by flooring go to the largest line (:func:`allocate`).
* The service charge is a percentage of the discounted lines and is itself taxed at the
  standard rate (Japan treats it as consideration for a standard-rated service).
* Consumption tax is computed once per rate on the sum of that rate's discounted lines:
  rounded down to the yen for zero-decimal currencies (the qualified-invoice rule: one rounding
  per rate per invoice), half-even in minor units for two-decimal currencies.
* ``total = subtotal - discounts + tax + service charge + tip``.
* Splitting never creates or loses a unit: every split's parts sum to the total.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

BASIS_POINTS = 10_000
MAX_AMOUNT = 10**12

# ISO 4217 currencies a tab may use, with their minor-unit exponent (JPY: yen, USD: cents).
CURRENCY_EXPONENTS: dict[str, int] = {
    "JPY": 0,
    "KRW": 0,
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "AUD": 2,
    "SGD": 2,
    "THB": 2,
    "TWD": 2,
}


class TaxCategory(StrEnum):
    STANDARD = "standard"  # 10 %
    REDUCED = "reduced"  # 8 %: food and drink taken out (軽減税率)
    EXEMPT = "exempt"  # 0 %


# Japanese consumption tax, percent.
TAX_RATE_PERCENT: dict[TaxCategory, int] = {
    TaxCategory.STANDARD: 10,
    TaxCategory.REDUCED: 8,
    TaxCategory.EXEMPT: 0,
}


class Rounding(StrEnum):
    FLOOR = "floor"
    HALF_EVEN = "half_even"


class AdjustmentKind(StrEnum):
    PERCENTAGE = "percentage"
    FIXED = "fixed"


def divide(numerator: int, denominator: int, rounding: Rounding) -> int:
    """``numerator / denominator`` for ``numerator >= 0``, ``denominator > 0``, rounded."""
    if numerator < 0 or denominator <= 0:
        raise ValueError("divide() takes a non-negative numerator and a positive denominator")
    quotient, remainder = divmod(numerator, denominator)
    if rounding is Rounding.FLOOR:
        return quotient
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        return quotient + 1
    return quotient


def tax_rounding(currency: str) -> Rounding:
    """Yen-like currencies floor each rate's tax; two-decimal currencies round half-even."""
    return Rounding.FLOOR if CURRENCY_EXPONENTS[currency] == 0 else Rounding.HALF_EVEN


def percentage_of(amount: int, basis_points: int) -> int:
    """``amount * bp / 10000``, half-even to the minor unit (discounts and service charge)."""
    return divide(amount * basis_points, BASIS_POINTS, Rounding.HALF_EVEN)


def tax_on(base: int, category: TaxCategory, currency: str) -> int:
    return divide(base * TAX_RATE_PERCENT[category], 100, tax_rounding(currency))


@dataclass(frozen=True)
class Adjustment:
    """A discount: ``basis_points`` of what it applies to, or a fixed ``amount``."""

    kind: AdjustmentKind
    value: int  # basis points (percentage) or minor units (fixed)

    def amount_off(self, base: int) -> int:
        """What it takes off ``base``: never more than ``base`` (nothing goes below zero)."""
        if self.kind is AdjustmentKind.PERCENTAGE:
            return min(base, percentage_of(base, self.value))
        return min(base, self.value)


def allocate(amount: int, weights: Sequence[int], *, capped: bool = False) -> list[int]:
    """Share ``amount`` in proportion to ``weights``; the shares always sum to ``amount``.

    Each share is first ``floor(amount * weight / sum(weights))``; the units this leaves go to
    the largest weight (the earliest one on a tie). With ``capped`` no share may exceed its
    weight (a discount never takes a line below zero): the largest line takes what it can and
    the next largest the rest. With all weights zero, the first share takes everything.
    """
    if amount < 0 or any(weight < 0 for weight in weights):
        raise ValueError("allocate() shares a non-negative amount by non-negative weights")
    if not weights:
        if amount:
            raise ValueError("nothing to allocate to")
        return []
    total_weight = sum(weights)
    if capped and amount > total_weight:
        raise ValueError("a capped allocation cannot exceed the sum of its weights")
    if total_weight == 0:
        return [amount] + [0] * (len(weights) - 1)
    shares = [amount * weight // total_weight for weight in weights]
    left = amount - sum(shares)
    order = sorted(range(len(weights)), key=lambda index: (-weights[index], index))
    for index in order:
        if left == 0:
            break
        room = weights[index] - shares[index] if capped else left
        given = min(room, left)
        shares[index] += given
        left -= given
    return shares


def split_equally(amount: int, count: int) -> list[int]:
    """``count`` parts of ``amount``: the first ``amount % count`` parts get one unit more."""
    if count < 1:
        raise ValueError("at least one part")
    base, extra = divmod(amount, count)
    return [base + (1 if index < extra else 0) for index in range(count)]


@dataclass(frozen=True)
class Line:
    """One item of a tab, as the calculator needs it."""

    key: str
    quantity: int
    unit_price: int
    tax_category: TaxCategory
    discount: Adjustment | None = None

    @property
    def gross(self) -> int:
        return self.quantity * self.unit_price


@dataclass(frozen=True)
class PricedLine:
    key: str
    tax_category: TaxCategory
    gross: int  # quantity x unit price
    item_discount: int  # the item's own discount
    tab_discount: int  # its share of the tab discount

    @property
    def net(self) -> int:
        """What the line contributes to its rate's taxable base."""
        return self.gross - self.item_discount - self.tab_discount


@dataclass(frozen=True)
class RateTotal:
    category: TaxCategory
    rate_percent: int
    base: int  # the rate's discounted lines (+ the service charge for the standard rate)
    tax: int


@dataclass(frozen=True)
class Bill:
    currency: str
    lines: tuple[PricedLine, ...]
    subtotal: int
    item_discounts: int
    tab_discount: int
    service_charge: int
    rates: tuple[RateTotal, ...]
    tip: int

    @property
    def discount_total(self) -> int:
        return self.item_discounts + self.tab_discount

    @property
    def net(self) -> int:
        return self.subtotal - self.discount_total

    @property
    def tax_total(self) -> int:
        return sum(rate.tax for rate in self.rates)

    @property
    def total(self) -> int:
        return self.subtotal - self.discount_total + self.tax_total + self.service_charge + self.tip

    @property
    def amount_before_tip(self) -> int:
        return self.total - self.tip

    def rate(self, category: TaxCategory) -> RateTotal:
        return next(rate for rate in self.rates if rate.category is category)


def price(
    lines: Sequence[Line],
    *,
    currency: str,
    discount: Adjustment | None = None,
    service_charge_bp: int | None = None,
    tip: int = 0,
) -> Bill:
    """The whole bill of a tab."""
    if currency not in CURRENCY_EXPONENTS:
        raise ValueError(f"unsupported currency {currency}")
    if tip < 0 or (service_charge_bp is not None and not 0 <= service_charge_bp <= BASIS_POINTS):
        raise ValueError("tip and service charge cannot be negative")
    item_discounts = [
        line.discount.amount_off(line.gross) if line.discount else 0 for line in lines
    ]
    after_items = [line.gross - off for line, off in zip(lines, item_discounts, strict=True)]
    tab_discount = discount.amount_off(sum(after_items)) if discount else 0
    shares = allocate(tab_discount, after_items, capped=True)
    priced = tuple(
        PricedLine(line.key, line.tax_category, line.gross, item_off, share)
        for line, item_off, share in zip(lines, item_discounts, shares, strict=True)
    )
    net = sum(line.net for line in priced)
    service_charge = percentage_of(net, service_charge_bp) if service_charge_bp else 0
    rates = []
    for category in TaxCategory:
        base = sum(line.net for line in priced if line.tax_category is category)
        if category is TaxCategory.STANDARD:
            base += service_charge
        rates.append(
            RateTotal(category, TAX_RATE_PERCENT[category], base, tax_on(base, category, currency))
        )
    return Bill(
        currency=currency,
        lines=priced,
        subtotal=sum(line.gross for line in priced),
        item_discounts=sum(item_discounts),
        tab_discount=tab_discount,
        service_charge=service_charge,
        rates=tuple(rates),
        tip=tip,
    )


# --- splitting -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PartShare:
    """One part of a split: ``amount`` (tip share included) is what the part pays."""

    amount: int
    tip_share: int
    net: int | None = None  # by items only: the part's lines, service charge and taxes
    service_charge: int | None = None
    taxes: dict[str, int] = field(default_factory=dict)

    @property
    def amount_before_tip(self) -> int:
        return self.amount - self.tip_share

    @property
    def tax(self) -> int | None:
        return sum(self.taxes.values()) if self.taxes else None


def _with_tip_shares(amounts: Sequence[int], tip: int) -> list[PartShare]:
    """Parts of known amounts (tip included): the tip is shared in proportion to them."""
    tips = allocate(tip, amounts)
    return [PartShare(amount, tip_share) for amount, tip_share in zip(amounts, tips, strict=True)]


def split_full(bill: Bill) -> list[PartShare]:
    return [PartShare(bill.total, bill.tip)]


def split_equal(bill: Bill, count: int) -> list[PartShare]:
    """``count`` parts; the first ``total % count`` parts pay one minor unit more.

    The tip is shared the same way (the first ``tip % count`` parts carry one unit more of it).
    """
    amounts = split_equally(bill.total, count)
    tips = split_equally(bill.tip, count)
    return [PartShare(amount, tip) for amount, tip in zip(amounts, tips, strict=True)]


def split_amounts(bill: Bill, amounts: Sequence[int]) -> list[PartShare]:
    """Parts of the given amounts, which must sum to the total."""
    if sum(amounts) != bill.total:
        raise ValueError("the amounts must sum to the total")
    return _with_tip_shares(amounts, bill.tip)


def split_items(bill: Bill, groups: Sequence[Iterable[str]]) -> list[PartShare]:
    """Parts made of whole lines; every line in exactly one part.

    Each part pays its lines after discounts; the service charge is shared in proportion to the
    parts' lines, each rate's tax in proportion to the parts' bases at that rate (the service
    charge share counting at the standard rate), the tip in proportion to the parts' amounts
    before tip; each time the left-over units go to the largest part. The tax is never rounded
    again per part, so the parts sum to the bill exactly.
    """
    members = [set(group) for group in groups]
    keys = [line.key for line in bill.lines]
    if sorted(key for group in members for key in group) != sorted(keys) or sum(
        len(group) for group in members
    ) != len(keys):
        raise ValueError("every line must be in exactly one part")
    nets = [sum(line.net for line in bill.lines if line.key in group) for group in members]
    service = allocate(bill.service_charge, nets)
    taxes: list[dict[str, int]] = [{} for _ in members]
    for rate in bill.rates:
        weights = [
            sum(
                line.net
                for line in bill.lines
                if line.key in group and line.tax_category is rate.category
            )
            + (service[index] if rate.category is TaxCategory.STANDARD else 0)
            for index, group in enumerate(members)
        ]
        for index, share in enumerate(allocate(rate.tax, weights)):
            taxes[index][rate.category.value] = share
    before_tip = [
        net + charge + sum(tax.values())
        for net, charge, tax in zip(nets, service, taxes, strict=True)
    ]
    tips = allocate(bill.tip, before_tip)
    return [
        PartShare(
            amount=amount + tip,
            tip_share=tip,
            net=net,
            service_charge=charge,
            taxes=tax,
        )
        for amount, tip, net, charge, tax in zip(
            before_tip, tips, nets, service, taxes, strict=True
        )
    ]
