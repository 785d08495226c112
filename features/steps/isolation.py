"""Isolation: store staff see their own store's payments and nothing of another store's — not
by listing, not by asking for one by id (``docs/permissions.md``)."""

from __future__ import annotations

from pytest_bdd import then

from features.support.deployment import Deployment
from features.support.terminals import Payment
from features.support.vocabulary import step_text
from features.support.world import Merchant

# pgw answers a payment outside the caller's scope as if it did not exist.
NOT_VISIBLE = (403, 404)


def _listed(deployment: Deployment, merchant: Merchant, person: str, **params: str) -> list[str]:
    response = deployment.pgw.get(
        "/v1/payments", params={"limit": "200", **params}, headers=merchant.person(person).headers
    )
    if response.status_code in NOT_VISIBLE:
        return []
    assert response.status_code == 200, response.text
    return [str(item["id"]) for item in response.json()["items"]]


@then(step_text('"{person:Name}" can see the payment'))
def person_sees_payment(
    deployment: Deployment, merchant: Merchant, payment: Payment, person: str
) -> None:
    """By id, and in the list of their payments."""
    response = deployment.pgw.get(
        f"/v1/payments/{payment.payment_id}", headers=merchant.person(person).headers
    )
    assert response.status_code == 200, f"{person} gets {response.status_code} for the payment"
    assert payment.payment_id in _listed(deployment, merchant, person), (
        f"{person}'s list of payments leaves the payment out"
    )


@then(step_text('"{person:Name}" cannot see the payment'))
def person_cannot_see_payment(
    deployment: Deployment, merchant: Merchant, payment: Payment, person: str
) -> None:
    """Asked by id, the payment does not exist for them; their list leaves it out."""
    response = deployment.pgw.get(
        f"/v1/payments/{payment.payment_id}", headers=merchant.person(person).headers
    )
    assert response.status_code in NOT_VISIBLE, (
        f"{person} gets {response.status_code} for another store's payment: {response.text[:200]}"
    )
    assert payment.payment_id not in _listed(deployment, merchant, person), (
        f"{person}'s list of payments shows another store's payment"
    )


@then(step_text('"{person:Name}" cannot list the payments of the store "{store:Name}"'))
def person_cannot_list_store(
    deployment: Deployment, merchant: Merchant, payment: Payment, person: str, store: str
) -> None:
    """Naming the other store in the query changes nothing: its payments stay out of reach."""
    listed = _listed(deployment, merchant, person, store_id=merchant.store(store).id)
    assert payment.payment_id not in listed, f"{person} listed the payments of {store}"
