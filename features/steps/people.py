"""Stores and people: the merchant of the scenario, its stores and its staff, built through the
portal's real API (``features/support/world.py``)."""

from __future__ import annotations

from pytest_bdd import given

from features.support.deployment import Deployment
from features.support.vocabulary import step_text
from features.support.world import ROLE_NAMES, Merchant, Person


@given(
    step_text('the merchant "{merchant_name:Name}" with a store "{store:Name}"'),
    target_fixture="merchant",
)
def merchant_with_a_store(deployment: Deployment, merchant_name: str, store: str) -> Merchant:
    """A new merchant of the PSP with one store (every scenario builds its own)."""
    merchant = Merchant.create(deployment, merchant_name)
    merchant.open_store(store)
    return merchant


@given(
    step_text(
        'the merchant "{merchant_name:Name}" with the stores "{first:Name}" and "{second:Name}"'
    ),
    target_fixture="merchant",
)
def merchant_with_two_stores(
    deployment: Deployment, merchant_name: str, first: str, second: str
) -> Merchant:
    """A new merchant with two stores."""
    merchant = Merchant.create(deployment, merchant_name)
    merchant.open_store(first)
    merchant.open_store(second)
    return merchant


@given(step_text('the merchant also has a store "{store:Name}"'))
def another_store(merchant: Merchant, store: str) -> None:
    """One more store of the scenario's merchant."""
    merchant.open_store(store)


@given(
    step_text('"{person:Name}" is a {role:Role} at the store "{store:Name}"'),
    target_fixture="person",
)
def store_staff(merchant: Merchant, person: str, role: str, store: str) -> Person:
    """A portal user of the store (cashier or store manager), logged in."""
    return merchant.hire(person, ROLE_NAMES[role], merchant.store(store))


@given(step_text('"{person:Name}" is the merchant\'s {role:Role}'), target_fixture="person")
def merchant_staff(merchant: Merchant, person: str, role: str) -> Person:
    """A portal user of the whole merchant (merchant admin or auditor), logged in."""
    return merchant.hire(person, ROLE_NAMES[role])
