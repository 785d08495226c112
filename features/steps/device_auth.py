"""Device authentication: a terminal proves who it is with its own key (signed assertions for
device tokens), and the platform refuses what it must — an assertion sent twice, an expired
token, a suspended terminal."""

from __future__ import annotations

import asyncio

from pytest_bdd import given, then, when

from features.support.backoffice import Backoffice
from features.support.deployment import Deployment
from features.support.devices import Device
from features.support.scene import Scene
from features.support.terminals import Terminal, Transaction, expect
from features.support.vocabulary import Card, step_text
from features.support.world import Merchant
from terminal_emulator.contract import ErrorCode, Status
from terminal_emulator.identity import IdentityError
from tests.support.pgw import card_payment


def _problem(device: Device) -> tuple[int, str | None]:
    response = device.last_response
    assert response is not None, "the device sent nothing yet"
    try:
        body = response.json()
    except ValueError:
        body = {}
    return response.status_code, body.get("code") or body.get("error")


@given(
    step_text(
        'a device enrolled as the terminal "{terminal_name:Name}" at the store "{store:Name}"'
    ),
    target_fixture="device",
)
def device_enrolled(
    deployment: Deployment, merchant: Merchant, terminal_name: str, store: str
) -> Device:
    """A terminal registered and enrolled with a key of its own, driven at the HTTP level."""
    return Device.enroll(deployment, merchant.store(store), terminal_name)


@when(step_text("the device asks the portal for a token"))
def device_asks_for_token(device: Device) -> None:
    """``POST /oauth2/token`` with a freshly signed assertion."""
    device.ask_for_token()


@when(step_text("the device sends the same assertion again"))
def device_replays_assertion(device: Device) -> None:
    """The assertion of the last token request, word for word (what an eavesdropper would
    replay)."""
    assert device.last_assertion is not None, "the device sent no assertion yet"
    device.ask_for_token(device.last_assertion)


@then(step_text("the portal gives the device a token"))
def portal_gives_token(device: Device) -> None:
    """200 with a bearer device token."""
    status, code = _problem(device)
    assert status == 200, f"the portal answered {status} {code}"
    assert device.last_response is not None
    assert device.last_response.json().get("token_type", "").lower() == "bearer"


@then(step_text('the portal refuses the device: "{code:Name}"'))
def portal_refuses_device(device: Device, code: str) -> None:
    """A 401 with that code (``assertion_replayed``, ``assertion_client_suspended``, ...)."""
    status, answered = _problem(device)
    assert (status, answered) == (401, code), f"the portal answered {status} {answered}"


@when(
    step_text(
        "the device pays {amount:Yen} with the {card:Card} using a token that expired "
        "two minutes ago"
    )
)
def device_pays_with_expired_token(device: Device, amount: int, card: Card) -> None:
    """A token the portal really signed, whose ``exp`` lies two minutes back (operator)."""
    token = device.expired_token(expired_s=120)
    device.last_response = device.pay(card_payment(card.pan, amount=amount), token=token)


@then(step_text('the gateway refuses the device: "{code:Name}"'))
def gateway_refuses_device(device: Device, code: str) -> None:
    """401 or 403 from pgw with that code (`token_expired`, `terminal_not_active`, ...)."""
    status, answered = _problem(device)
    assert status in (401, 403), f"pgw answered {status} {answered}"
    assert answered == code, f"pgw refused with {answered!r}, expected {code!r}"


@then(step_text("the gateway records no payment from the device"))
def no_payment_from_device(backoffice: Backoffice, device: Device) -> None:
    """Nothing reached pgw from the device: nobody was charged."""
    payments = backoffice.payments(terminal_id=device.terminal_id)
    assert payments == [], f"pgw holds {len(payments)} payment(s) from the device"


# -- suspension ---------------------------------------------------------------------------------


@when(step_text('"{person:Name}" suspends the terminal "{terminal_name:Name}" in the portal'))
def person_suspends_terminal(merchant: Merchant, person: str, terminal_name: str) -> None:
    """``POST /v1/terminals/{id}/suspend`` as that person."""
    registration = merchant.registration(terminal_name)
    response = merchant.deployment.portal.post(
        f"/v1/terminals/{registration.terminal_id}/suspend",
        json={"reason": "lost at the counter"},
        headers=merchant.person(person).headers,
    )
    assert response.status_code == 200, f"the portal refused: {response.text[:300]}"


@then(step_text("the gateway learns that the terminal is suspended"))
def gateway_learns_suspension(scene: Scene, terminal: Terminal) -> None:
    """pgw's copy of the directory catches up (asynchronously, docs/pgw.md)."""
    assert terminal.emulated is not None
    scene.fleet.wait_until_gateway_knows(terminal.emulated, status="suspended")


@then(step_text("the payment is refused because the terminal is not active"))
def payment_refused_inactive(sale: Transaction) -> None:
    """The terminal answers TERMINAL_NOT_ACTIVE: pgw refused before charging anything."""
    expect(sale.result(), Status.ERROR, ErrorCode.TERMINAL_NOT_ACTIVE)


@then(step_text("the portal refuses the terminal a new token because it is suspended"))
def portal_refuses_new_token(terminal: Terminal) -> None:
    """The terminal drops its token and asks for a new one: ``assertion_client_suspended``."""
    emulated = terminal.emulated
    assert emulated is not None

    async def new_token() -> IdentityError | None:
        emulated.identity.invalidate_token()
        try:
            await emulated.identity.access_token()
        except IdentityError as error:
            return error
        return None

    error = asyncio.run_coroutine_threadsafe(new_token(), emulated.device.loop).result(30)
    assert error is not None, "the portal gave the suspended terminal a new token"
    assert error.code is ErrorCode.TERMINAL_NOT_ACTIVE, f"refused with {error.code}: {error}"
    assert error.problem == "assertion_client_suspended", error.problem
