"""``cardreader``: the emulator's card reader from the shell — present a test card, type a PIN,
press Cancel, see and wait for what the reader asks for.

The emulator's counterpart of the Android emulator's console hooks (``adb emu ...``): a host
test drives the customer's side of a payment over ADB. A real terminal has no such command
(``/system/bin/sh: cardreader: inaccessible or not found``, 127), which is how a host learns
that the device cannot present cards by itself. Registered only on terminals whose reader is
the :class:`~terminal_emulator.hardware.SimulatedCardReader`.

::

    cardreader status                        state=waiting_card modes=contactless,chip,swipe
    cardreader wait [card|pin] [--timeout-ms N]
    cardreader tap|insert|swipe PAN          (one of `cardreader cards`)
    cardreader pin DIGITS
    cardreader cancel
    cardreader cards

Input is accepted only when the reader waits for it (``wait`` first), in a mode the payment
allows, and only test cards of the provider's catalogue: a card left lying around for a later
payment would make a test pass or fail by accident. Exit status: 0 done; 1 refused (with the
reason on stderr) or ``wait`` timed out; 2 usage error. PANs and PINs are never echoed in full
and never logged (the ADB endpoint's logs go through ``adb.redaction``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from terminal_emulator.adb import Writer
from terminal_emulator.hardware import (
    PRESENT_METHODS,
    ReaderState,
    SimulatedCardReader,
    catalogue,
)
from terminal_emulator.shell.common import Stdin, println

EXIT_REFUSED = 1
EXIT_USAGE = 2

WAIT_KINDS = ("card", "pin", "any")
PIN_LENGTHS = range(4, 13)

USAGE = """\
usage: cardreader COMMAND [ARGS]

The emulated terminal's card reader (the customer's side of a payment).

  status                          what the reader waits for, one line:
                                  state=idle | state=waiting_card modes=M[,M...] | state=waiting_pin
  wait [card|pin|any] [--timeout-ms N]
                                  block until the reader waits for that (default: any); prints the
                                  state; exit 1 on timeout (default: no timeout)
  tap|insert|swipe PAN            present a test card (contactless, chip, swipe)
  pin DIGITS                      type the PIN (4-12 digits) and press OK
  cancel                          press Cancel on the card or PIN screen
  cards                           list the test cards

Exit status: 0 done, 1 refused or timed out, 2 usage error.
"""


def describe(state: ReaderState) -> str:
    """The machine-readable line of ``cardreader status``."""
    if state.waiting_for == "card":
        return "state=waiting_card modes=" + ",".join(mode.value for mode in state.modes)
    if state.waiting_for == "pin":
        return "state=waiting_pin"
    return "state=idle"


def masked(pan: str) -> str:
    """How a card number appears in messages: its last four characters only."""
    return f"**** {pan[-4:]}"


def card_refusal(state: ReaderState, method: str, pan: str) -> str | None:
    """Why the reader will not take this card now (None: it will). Shared by the shell
    command and the in-process driver, so both refuse alike."""
    if method not in PRESENT_METHODS:
        return f"{method!r} is not a way to present a card (tap, insert, swipe)"
    if not any(card.pan == pan for card in catalogue()):
        return f"{masked(pan)} is not a test card (see `cardreader cards`)"
    if state.waiting_for != "card":
        return f"the reader is not waiting for a card ({describe(state)})"
    mode = PRESENT_METHODS[method]
    if mode not in state.modes:
        allowed = ",".join(m.value for m in state.modes)
        return f"{method} ({mode.value}) is not allowed for this payment (modes={allowed})"
    return None


def pin_refusal(state: ReaderState) -> str | None:
    if state.waiting_for != "pin":
        return f"the reader is not waiting for a PIN ({describe(state)})"
    return None


def cancel_refusal(state: ReaderState) -> str | None:
    if state.waiting_for is None:
        return f"nothing to cancel ({describe(state)})"
    return None


class _Usage(Exception):
    pass


@dataclass
class CardReaderCommand:
    """The ``cardreader`` ShellCommand of one terminal's simulated reader. The reader's input
    calls and its state are thread-safe, so the command runs on whichever loop the ADB server
    uses."""

    reader: SimulatedCardReader

    async def __call__(self, argv: list[str], stdin: Stdin, stdout: Writer, stderr: Writer) -> int:
        words = argv[1:]
        if words and words[0] in ("help", "-h", "--help"):
            await stdout.write(USAGE.encode())
            return 0
        try:
            return await self._run(words, stdout, stderr)
        except _Usage as problem:
            await println(stderr, f"cardreader: {problem}")
            await stderr.write(USAGE.encode())
            return EXIT_USAGE

    async def _run(self, words: list[str], stdout: Writer, stderr: Writer) -> int:
        if not words:
            raise _Usage("no command given")
        command, rest = words[0], words[1:]
        if command in PRESENT_METHODS:
            (pan,) = _arguments(command, rest, "PAN")
            return await self._present(command, pan, stdout, stderr)
        if command == "pin":
            (pin,) = _arguments(command, rest, "DIGITS")
            if not (pin.isascii() and pin.isdigit() and len(pin) in PIN_LENGTHS):
                raise _Usage("a PIN is 4 to 12 digits")
            return await self._pin(pin, stdout, stderr)
        if command == "cancel":
            _arguments(command, rest)
            return await self._cancel(stdout, stderr)
        if command == "status":
            _arguments(command, rest)
            await println(stdout, describe(self.reader.state))
            return 0
        if command == "wait":
            kind, timeout_ms = _wait_arguments(rest)
            return await self._wait(kind, timeout_ms, stdout, stderr)
        if command == "cards":
            _arguments(command, rest)
            width = max(len(card.pan) for card in catalogue())
            for card in catalogue():
                await println(stdout, f"{card.pan:<{width}}  {card.brand:<10}  {card.label}")
            return 0
        raise _Usage(f"unknown command {command!r}")

    async def _present(self, method: str, pan: str, stdout: Writer, stderr: Writer) -> int:
        refusal = card_refusal(self.reader.state, method, pan)
        if refusal is not None:
            await println(stderr, f"cardreader: {refusal}")
            return EXIT_REFUSED
        self.reader.present_card(method, pan)
        mode = PRESENT_METHODS[method]
        await println(stdout, f"card presented: {mode.value} {masked(pan)}")
        return 0

    async def _pin(self, pin: str, stdout: Writer, stderr: Writer) -> int:
        refusal = pin_refusal(self.reader.state)
        if refusal is not None:
            await println(stderr, f"cardreader: {refusal}")
            return EXIT_REFUSED
        self.reader.enter_pin(pin)
        await println(stdout, "PIN entered")
        return 0

    async def _cancel(self, stdout: Writer, stderr: Writer) -> int:
        refusal = cancel_refusal(self.reader.state)
        if refusal is not None:
            await println(stderr, f"cardreader: {refusal}")
            return EXIT_REFUSED
        self.reader.cancel()
        await println(stdout, "cancelled")
        return 0

    async def _wait(
        self, kind: str | None, timeout_ms: int | None, stdout: Writer, stderr: Writer
    ) -> int:
        waiting = self.reader.wait_for_prompt(kind)
        try:
            if timeout_ms is None:
                state = await waiting
            else:
                state = await asyncio.wait_for(waiting, timeout_ms / 1000)
        except TimeoutError:
            await println(
                stderr,
                f"cardreader: timed out after {timeout_ms} ms waiting for "
                f"{kind or 'a card or a PIN'} ({describe(self.reader.state)})",
            )
            return EXIT_REFUSED
        await println(stdout, describe(state))
        return 0


def _arguments(command: str, rest: list[str], *names: str) -> list[str]:
    if len(rest) < len(names):
        raise _Usage(f"{command}: missing {names[len(rest)]}")
    if len(rest) > len(names):
        raise _Usage(f"{command}: unexpected argument {rest[len(names)]!r}")
    return rest


def _wait_arguments(rest: list[str]) -> tuple[str | None, int | None]:
    kind: str | None = None
    timeout_ms: int | None = None
    words = iter(rest)
    for word in words:
        if word == "--timeout-ms" or word.startswith("--timeout-ms="):
            value = word.partition("=")[2] if "=" in word else next(words, None)
            if value is None:
                raise _Usage("wait: --timeout-ms needs a value")
            if not (value.isascii() and value.isdigit()):
                raise _Usage(f"wait: --timeout-ms takes milliseconds, not {value!r}")
            timeout_ms = int(value)
        elif word.startswith("-"):
            raise _Usage(f"wait: unknown option {word!r}")
        elif kind is None and word in WAIT_KINDS:
            kind = word
        else:
            raise _Usage(f"wait: unexpected argument {word!r} (card, pin or any)")
    return (None if kind in (None, "any") else kind), timeout_ms
