"""The tab arithmetic (backend/smarttab/tabs/pricing.py): pure integers, no services needed.

The worked examples are the ones in docs/smarttab.md; the property checks run many seeded
random tabs through every rule that could create or lose a minor unit.
"""

from __future__ import annotations

import random

import pytest

from backend.smarttab.tabs.pricing import (
    Adjustment,
    AdjustmentKind,
    Bill,
    Line,
    Rounding,
    TaxCategory,
    allocate,
    divide,
    percentage_of,
    price,
    split_amounts,
    split_equal,
    split_equally,
    split_full,
    split_items,
    tax_on,
)

S, R, E = TaxCategory.STANDARD, TaxCategory.REDUCED, TaxCategory.EXEMPT


def pct(percent: float) -> Adjustment:
    return Adjustment(AdjustmentKind.PERCENTAGE, round(percent * 100))


def fixed(amount: int) -> Adjustment:
    return Adjustment(AdjustmentKind.FIXED, amount)


IZAKAYA = [
    Line("beer", 2, 583, S),
    Line("edamame", 1, 379, S),
    Line("bento", 1, 863, R),  # taken out: reduced rate
]


class TestRounding:
    @pytest.mark.parametrize(
        ("numerator", "denominator", "floor", "half_even"),
        [
            (1545, 10, 154, 154),  # 154.5: floor down, half-even to the even 154
            (1235, 10, 123, 124),  # 123.5: half-even up to the even 124
            (1225, 10, 122, 122),
            (1226, 10, 122, 123),
            (1224, 10, 122, 122),
            (0, 7, 0, 0),
            (7, 7, 1, 1),
        ],
    )
    def test_floor_and_half_even(
        self, numerator: int, denominator: int, floor: int, half_even: int
    ) -> None:
        assert divide(numerator, denominator, Rounding.FLOOR) == floor
        assert divide(numerator, denominator, Rounding.HALF_EVEN) == half_even

    def test_negative_numerators_are_refused(self) -> None:
        with pytest.raises(ValueError, match="non-negative"):
            divide(-1, 10, Rounding.FLOOR)

    @pytest.mark.parametrize(
        ("base", "category", "currency", "tax"),
        [
            (1545, S, "JPY", 154),  # ¥154.5 -> ¥154 (floor, yen)
            (1549, S, "JPY", 154),  # ¥154.9 -> ¥154 (never up)
            (863, R, "JPY", 69),  # ¥69.04
            (1000, E, "JPY", 0),
            (1225, S, "USD", 122),  # 122.5 cents -> 122 (half-even)
            (1235, S, "USD", 124),  # 123.5 cents -> 124 (half-even)
            (1235, R, "USD", 99),  # 98.8 cents -> 99
            (1231, R, "EUR", 98),  # 98.48 cents -> 98
        ],
    )
    def test_tax_rounds_per_currency(
        self, base: int, category: TaxCategory, currency: str, tax: int
    ) -> None:
        assert tax_on(base, category, currency) == tax

    def test_percentages_round_half_even(self) -> None:
        assert percentage_of(2308, 1000) == 231  # 230.8
        assert percentage_of(2305, 1000) == 230  # 230.5 -> even
        assert percentage_of(2315, 1000) == 232  # 231.5 -> even
        assert percentage_of(999, 1250) == 125  # 12.5 % of 999 = 124.875


class TestTax:
    def test_tax_is_rounded_once_per_rate_on_the_sum_of_its_lines(self) -> None:
        bill = price(IZAKAYA, currency="JPY")

        assert bill.subtotal == 2408
        assert (bill.rate(S).base, bill.rate(S).tax) == (1545, 154)  # 154.5 floored
        assert (bill.rate(R).base, bill.rate(R).tax) == (863, 69)  # 69.04 floored
        assert bill.tax_total == 223
        assert bill.total == 2631
        # Rounding each line instead would give 116 + 37 = 153 at the standard rate.
        per_line = sum(tax_on(line.gross, S, "JPY") for line in IZAKAYA[:2])
        assert per_line == 153 != bill.rate(S).tax

    def test_each_rate_is_taxed_at_its_own_percentage(self) -> None:
        bill = price(
            [Line("a", 1, 1000, S), Line("b", 1, 1000, R), Line("c", 1, 1000, E)], currency="JPY"
        )
        assert [(rate.category, rate.rate_percent, rate.tax) for rate in bill.rates] == [
            (S, 10, 100),
            (R, 8, 80),
            (E, 0, 0),
        ]
        assert bill.total == 3180

    def test_two_decimal_currencies_round_half_even_per_rate(self) -> None:
        bill = price([Line("a", 1, 1225, S), Line("b", 1, 1235, R)], currency="USD")
        assert bill.rate(S).tax == 122
        assert bill.rate(R).tax == 99
        assert price([Line("a", 1, 1235, S)], currency="USD").tax_total == 124

    def test_an_empty_tab_costs_nothing(self) -> None:
        bill = price([], currency="JPY")
        assert (bill.subtotal, bill.tax_total, bill.total) == (0, 0, 0)

    def test_free_items_are_allowed(self) -> None:
        assert price([Line("water", 3, 0, S)], currency="JPY").total == 0


class TestDiscounts:
    def test_item_discounts_apply_before_tax(self) -> None:
        bill = price(
            [Line("a", 2, 1000, S, pct(10)), Line("b", 1, 500, R, fixed(120))], currency="JPY"
        )
        assert bill.item_discounts == 200 + 120
        assert [line.net for line in bill.lines] == [1800, 380]
        assert bill.rate(S).tax == 180
        assert bill.rate(R).tax == 30  # 30.4
        assert bill.total == 2500 - 320 + 210

    def test_a_discount_never_takes_a_line_or_the_tab_below_zero(self) -> None:
        bill = price([Line("a", 1, 300, S, fixed(1000))], currency="JPY", discount=fixed(50))
        assert bill.lines[0].net == 0
        assert bill.tab_discount == 0
        assert bill.total == 0
        capped = price([Line("a", 1, 300, S)], currency="JPY", discount=fixed(10_000))
        assert capped.tab_discount == 300
        assert capped.total == 0
        assert price([Line("a", 1, 300, S)], currency="JPY", discount=pct(100)).total == 0

    def test_the_tab_discount_is_shared_in_proportion_with_the_remainder_to_the_largest_line(
        self,
    ) -> None:
        # 100 over 1166 / 379 / 863 (2408): floors 48 / 15 / 35 = 98, the 2 left to the beer.
        bill = price(IZAKAYA, currency="JPY", discount=fixed(100))
        assert [line.tab_discount for line in bill.lines] == [50, 15, 35]
        assert bill.rate(S).base == 1116 + 364
        assert bill.rate(R).base == 828
        assert bill.rate(S).tax == 148
        assert bill.rate(R).tax == 66  # 66.24

    def test_a_percentage_tab_discount_is_rounded_half_even_then_shared(self) -> None:
        bill = price(IZAKAYA, currency="JPY", discount=pct(5))
        assert bill.tab_discount == 120  # 120.4
        assert sum(line.tab_discount for line in bill.lines) == 120

    def test_the_tab_discount_applies_after_item_discounts(self) -> None:
        bill = price(
            [Line("a", 1, 1000, S, fixed(400)), Line("b", 1, 400, S)],
            currency="JPY",
            discount=pct(50),
        )
        assert bill.tab_discount == 500  # 50 % of 600 + 400
        assert [line.tab_discount for line in bill.lines] == [300, 200]


class TestServiceChargeAndTip:
    def test_worked_example_with_discount_service_charge_and_tip(self) -> None:
        bill = price(IZAKAYA, currency="JPY", discount=fixed(100), service_charge_bp=1000, tip=300)
        assert bill.subtotal == 2408
        assert bill.discount_total == 100
        assert bill.service_charge == 231  # 10 % of 2308 = 230.8
        # The service charge is taxed at the standard rate.
        assert bill.rate(S).base == 1116 + 364 + 231
        assert bill.rate(S).tax == 171  # 171.1
        assert bill.rate(R).tax == 66
        assert bill.tax_total == 237
        assert bill.total == 2408 - 100 + 237 + 231 + 300 == 3076

    def test_the_tip_is_neither_taxed_nor_discounted(self) -> None:
        plain = price(IZAKAYA, currency="JPY")
        tipped = price(IZAKAYA, currency="JPY", tip=1000, discount=pct(10))
        discounted = price(IZAKAYA, currency="JPY", discount=pct(10))
        assert tipped.tax_total == discounted.tax_total
        assert tipped.total == discounted.total + 1000
        assert plain.tip == 0

    def test_total_is_subtotal_minus_discounts_plus_tax_service_charge_and_tip(self) -> None:
        for bill in random_bills(200, seed=7):
            assert bill.total == (
                bill.subtotal
                - bill.discount_total
                + bill.tax_total
                + bill.service_charge
                + bill.tip
            )


class TestAllocate:
    def test_remainder_goes_to_the_largest_weight(self) -> None:
        assert allocate(10, [1, 1, 1]) == [4, 3, 3]
        assert allocate(10, [1, 5, 1]) == [1, 8, 1]
        assert allocate(2, [3, 3]) == [1, 1]

    def test_capped_shares_never_exceed_their_weight(self) -> None:
        # Uncapped, the largest line would take 0 + 2 > 1.
        assert allocate(2, [1, 1, 1], capped=True) == [1, 1, 0]
        assert allocate(3, [1, 1, 1], capped=True) == [1, 1, 1]
        with pytest.raises(ValueError, match="exceed"):
            allocate(4, [1, 1, 1], capped=True)

    def test_zero_weights_put_everything_on_the_first(self) -> None:
        assert allocate(5, [0, 0]) == [5, 0]
        assert allocate(0, []) == []

    def test_shares_always_sum_to_the_amount(self) -> None:
        rng = random.Random(11)
        for _ in range(2000):
            weights = [rng.randint(0, 5000) for _ in range(rng.randint(1, 8))]
            amount = rng.randint(0, sum(weights))
            shares = allocate(amount, weights, capped=True)
            assert sum(shares) == amount
            assert all(0 <= share <= weight for share, weight in zip(shares, weights, strict=True))
            free = allocate(rng.randint(0, 10**6), weights)
            assert all(share >= 0 for share in free)


class TestSplits:
    def bill(self) -> Bill:
        return price(IZAKAYA, currency="JPY", discount=fixed(100), service_charge_bp=1000, tip=300)

    def test_full(self) -> None:
        [part] = split_full(self.bill())
        assert (part.amount, part.tip_share) == (3076, 300)

    def test_equal_parts_give_the_remainder_to_the_first_parts(self) -> None:
        assert split_equally(3076, 3) == [1026, 1025, 1025]
        assert split_equally(2401, 4) == [601, 600, 600, 600]
        assert split_equally(10, 5) == [2, 2, 2, 2, 2]
        parts = split_equal(self.bill(), 3)
        assert [part.amount for part in parts] == [1026, 1025, 1025]
        assert [part.tip_share for part in parts] == [100, 100, 100]

    def test_by_amounts(self) -> None:
        parts = split_amounts(self.bill(), [1000, 2076])
        assert [part.amount for part in parts] == [1000, 2076]
        assert sum(part.tip_share for part in parts) == 300
        with pytest.raises(ValueError, match="sum"):
            split_amounts(self.bill(), [1000, 2000])

    def test_by_items_shares_service_charge_tax_and_tip_by_the_same_rules(self) -> None:
        beer, rest = split_items(self.bill(), [["beer"], ["edamame", "bento"]])
        # Service charge 231 over nets 1116 / 1192: 111 / 119, the 1 left to the larger.
        assert (beer.net, beer.service_charge) == (1116, 111)
        assert (rest.net, rest.service_charge) == (1192, 120)
        # Standard tax 171 over 1116+111 / 364+120: 122 / 48, the 1 left to the larger.
        assert beer.taxes == {"standard": 123, "reduced": 0, "exempt": 0}
        assert rest.taxes == {"standard": 48, "reduced": 66, "exempt": 0}
        assert (beer.tip_share, rest.tip_share) == (145, 155)
        assert (beer.amount, rest.amount) == (1495, 1581)
        assert beer.amount + rest.amount == 3076

    def test_by_items_needs_every_line_exactly_once(self) -> None:
        with pytest.raises(ValueError, match="exactly one"):
            split_items(self.bill(), [["beer"], ["edamame"]])
        with pytest.raises(ValueError, match="exactly one"):
            split_items(self.bill(), [["beer", "edamame"], ["edamame", "bento"]])

    def test_every_split_sums_to_the_total_and_its_tips_to_the_tip(self) -> None:
        rng = random.Random(5)
        for bill in random_bills(300, seed=3):
            keys = [line.key for line in bill.lines]
            count = rng.randint(1, 6)
            cuts = sorted(rng.sample(range(1, bill.total), min(count - 1, bill.total - 1)))
            amounts = [b - a for a, b in zip([0, *cuts], [*cuts, bill.total], strict=True)]
            rng.shuffle(keys)
            groups = [keys[index::count] for index in range(count)]
            groups = [group for group in groups if group]
            splits = {
                "full": split_full(bill),
                "equal": split_equal(bill, count),
                "amounts": split_amounts(bill, amounts),
                "items": split_items(bill, groups),
            }
            for mode, parts in splits.items():
                assert sum(part.amount for part in parts) == bill.total, mode
                assert sum(part.tip_share for part in parts) == bill.tip, mode
                assert all(part.tip_share >= 0 for part in parts), mode
            items = splits["items"]
            for rate in bill.rates:
                assert sum(part.taxes[rate.category.value] for part in items) == rate.tax
            assert sum(part.service_charge or 0 for part in items) == bill.service_charge
            assert sum(part.net or 0 for part in items) == bill.net
            equal = [part.amount for part in splits["equal"]]
            assert max(equal) - min(equal) <= 1
            assert equal == sorted(equal, reverse=True)


def random_bills(count: int, *, seed: int) -> list[Bill]:
    rng = random.Random(seed)
    bills = []
    while len(bills) < count:
        lines = [
            Line(
                f"line{index}",
                rng.randint(1, 5),
                rng.randint(0, 5000),
                rng.choice([S, R, E]),
                rng.choice([None, pct(rng.randint(1, 100)), fixed(rng.randint(1, 3000))]),
            )
            for index in range(rng.randint(1, 8))
        ]
        bill = price(
            lines,
            currency=rng.choice(["JPY", "USD"]),
            discount=rng.choice([None, pct(rng.randint(1, 50)), fixed(rng.randint(1, 2000))]),
            service_charge_bp=rng.choice([None, 500, 1000, 1250]),
            tip=rng.choice([0, 0, rng.randint(1, 2000)]),
        )
        if bill.total > 1:
            bills.append(bill)
    return bills
