"""Terminals and onboarding: a store's terminal ready to take payments, and the way a new one
gets there — registered at the portal, switched on, activated with its one-time code at the
counter, its first device token."""

from __future__ import annotations

import jwt
from pytest_bdd import given, then, when

from android_bridge.driver import TerminalDriver
from features.support.scene import Scene
from features.support.terminals import Terminal
from features.support.vocabulary import step_text
from features.support.world import Merchant, Person, Registration


@given(
    step_text('the store "{store:Name}" has a terminal "{terminal_name:Name}"'),
    target_fixture="terminal",
)
def store_has_terminal(
    scene: Scene, merchant: Merchant, store: str, terminal_name: str
) -> Terminal:
    """A terminal registered, enrolled and known to the gateway (on ``--terminal=adb``: the
    device, in whatever store it is enrolled)."""
    return scene.open_terminal(merchant, merchant.store(store), terminal_name)


@given(step_text("a terminal ready to take payments"), target_fixture="terminal")
def any_terminal(scene: Scene, terminal_driver: TerminalDriver) -> Terminal:
    """The ``--terminal`` target's terminal as ``android_bridge``'s ``terminal_driver`` gives
    it: an emulated terminal enrolled in a store of a merchant of its own, or the device. For
    scenarios about the terminal alone (no store, no staff)."""
    return scene.adopt("Terminal", terminal_driver)


# -- registering at the portal ------------------------------------------------------------------


@when(
    step_text(
        '"{person:Name}" registers the terminal "{terminal_name:Name}" at the store "{store:Name}"'
    ),
    target_fixture="registration",
)
def person_registers_terminal(
    merchant: Merchant, person: str, terminal_name: str, store: str
) -> Registration:
    """Through the portal, as that person: the terminal is pending, with an activation code."""
    staff: Person = merchant.person(person)
    return merchant.register_terminal(merchant.store(store), terminal_name, by=staff)


@given(
    step_text('the terminal "{terminal_name:Name}" is registered at the store "{store:Name}"'),
    target_fixture="registration",
)
def terminal_registered(merchant: Merchant, terminal_name: str, store: str) -> Registration:
    """Registered by the PSP admin, not switched on yet."""
    return merchant.register_terminal(merchant.store(store), terminal_name)


@then(step_text("the portal hands out a one-time activation code for it"))
def activation_code_handed_out(registration: Registration) -> None:
    """The registration came with an activation code (shown once, single use)."""
    code = registration.activation_code
    assert len(code.strip()) >= 6, f"activation code {code!r}"


@then(step_text('the portal shows the terminal "{terminal_name:Name}" as {status:TerminalStatus}'))
def portal_shows_terminal(merchant: Merchant, terminal_name: str, status: str) -> None:
    """The portal's record of the terminal has that status."""
    record = merchant.terminal_record(merchant.registration(terminal_name).terminal_id)
    assert record["status"] == status, (
        f'the portal shows "{terminal_name}" as {record["status"]}, expected {status}'
        + (f" ({record['status_reason']})" if record.get("status_reason") else "")
    )


# -- at the counter -----------------------------------------------------------------------------


@when(step_text('the terminal "{terminal_name:Name}" is switched on'), target_fixture="terminal")
def terminal_switched_on(scene: Scene, merchant: Merchant, terminal_name: str) -> Terminal:
    """First boot of a registered terminal: no identity yet."""
    return scene.power_on(merchant.registration(terminal_name))


@then(step_text("the terminal asks for its activation code"))
def terminal_asks_for_code(terminal: Terminal) -> None:
    """The Business App shows its enroll screen."""
    screen = terminal.screen()
    assert screen.name == "enroll", f"the terminal shows {screen.name!r}: {screen.lines}"


@when(step_text("the person at the counter enters the terminal's activation code"))
def enter_own_code(terminal: Terminal) -> None:
    """Types the code the portal gave for this terminal and presses Enroll."""
    assert terminal.registration is not None
    terminal.enter_activation_code(terminal.registration.activation_code)


@when(step_text('the person at the counter enters the activation code "{code:Name}"'))
def enter_given_code(terminal: Terminal, code: str) -> None:
    """Types that code (a mistyped one, say) and presses Enroll."""
    terminal.enter_activation_code(code)


@when(
    step_text('the person at the counter enters the activation code of the terminal "{other:Name}"')
)
def enter_code_of_other(merchant: Merchant, terminal: Terminal, other: str) -> None:
    """Types the code the portal gave for another terminal and presses Enroll."""
    terminal.enter_activation_code(merchant.registration(other).activation_code)


@then(step_text("the terminal is activated"))
def terminal_activated(scene: Scene, terminal: Terminal) -> None:
    """Enrolled as the registered terminal, showing the sale screen, known to the gateway."""
    screen = terminal.screen()
    assert screen.name == "amount_entry", (
        f"the terminal still shows {screen.name!r}: {' / '.join(screen.lines)}"
    )
    assert terminal.emulated is not None
    assert terminal.registration is not None
    enrollment = terminal.emulated.identity.enrollment
    assert enrollment is not None, "the terminal shows the sale screen but holds no enrollment"
    assert enrollment.terminal_id == terminal.registration.terminal_id, (
        f"enrolled as terminal {enrollment.terminal_id}, registered as "
        f"{terminal.registration.terminal_id}"
    )
    scene.fleet.wait_until_gateway_knows(terminal.emulated)


@then(step_text('the terminal refuses the activation: "{reason:Name}"'))
def terminal_refuses_activation(terminal: Terminal, reason: str) -> None:
    """The enroll screen stays, saying why (the portal's reason)."""
    screen = terminal.screen()
    shown = " / ".join(screen.lines)
    assert screen.name == "enroll", f"the terminal went on to {screen.name!r} ({shown})"
    assert reason.lower() in shown.lower(), f'the terminal says "{shown}", expected "{reason}"'
    assert terminal.emulated is not None
    assert not terminal.emulated.identity.enrolled, "the terminal enrolled anyway"


@then(step_text("the terminal obtains its first access token"))
def first_access_token(terminal: Terminal) -> None:
    """A device token from the portal (private_key_jwt), naming this terminal and its store."""
    token = terminal.access_token()
    claims = jwt.decode(token, options={"verify_signature": False})
    assert terminal.registration is not None
    assert claims.get("terminal_id") == terminal.registration.terminal_id, claims
    assert claims.get("store_id") == terminal.registration.store.id, claims
