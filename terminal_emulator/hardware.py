"""The card reader boundary: an interface, the emulator's simulated reader, a scripted fake.

The Credit Card App only sees :class:`CardReader`: it asks for a card (contactless tap, chip
insert or magnetic swipe) and, when the issuer wants one, a PIN. The customer may cancel on
the reader. How long to wait is the app's business (``run_with_timeout`` with the request's
``timeout_ms``), so a reader that never gets a card simply never answers.

- :class:`SimulatedCardReader` is the emulator's "real" reader: the UI (or a headless driver)
  presents one of the provider's test cards (``presentation.TEST_CARDS``), types a PIN or
  presses Cancel; calls may come from any thread.
- :class:`ScriptedCardReader` is the fake for tests: it plays a script of steps.

PAN and PIN stay in memory: never logged, never stored (``CardData.__repr__`` hides them).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from terminal_emulator.contract import CARD_ENTRY_MODES, EntryMode
from terminal_emulator.presentation import TEST_CARDS, TestCard

# How the UI names the three ways to present a card.
PRESENT_METHODS: dict[str, EntryMode] = {
    "tap": EntryMode.CONTACTLESS,
    "insert": EntryMode.CHIP,
    "swipe": EntryMode.SWIPE,
}


def entry_mode_of(method: str) -> EntryMode:
    """``tap``/``insert``/``swipe`` (or the entry mode itself) → the entry mode."""
    if method in PRESENT_METHODS:
        return PRESENT_METHODS[method]
    mode = EntryMode(method)
    if mode not in CARD_ENTRY_MODES:
        raise ValueError(f"{method!r} is not a card entry method")
    return mode


class CustomerCancelled(Exception):
    """The customer pressed Cancel on the card reader."""


@dataclass(frozen=True)
class CardData:
    """What the reader read. ``pan`` never appears in repr or logs."""

    entry_mode: EntryMode
    pan: str = field(repr=False)
    exp_month: int = 12
    exp_year: int = 2030

    @property
    def last4(self) -> str:
        return self.pan[-4:]

    def test_card(self) -> TestCard | None:
        return next((card for card in TEST_CARDS if card.pan == self.pan), None)


class CardReader(Protocol):
    """The card reader as the Credit Card App uses it."""

    def reset(self) -> None:
        """Forget input left over from an earlier transaction."""
        ...

    async def read_card(self, allowed: tuple[EntryMode, ...]) -> CardData:
        """Wait for a card presented in one of ``allowed`` modes; raises
        :class:`CustomerCancelled`."""
        ...

    async def read_pin(self) -> str:
        """Wait for the customer's PIN; raises :class:`CustomerCancelled`."""
        ...


@dataclass(frozen=True)
class ReaderState:
    """What a reader waits for now: ``waiting_for`` is None (idle), ``"card"`` (presented in
    one of ``modes``) or ``"pin"``."""

    waiting_for: str | None = None
    modes: tuple[EntryMode, ...] = ()

    def matches(self, kind: str | None) -> bool:
        """Waiting for ``kind`` (``"card"`` or ``"pin"``), or for anything when None."""
        return self.waiting_for is not None if kind is None else self.waiting_for == kind


IDLE = ReaderState()


@dataclass(frozen=True)
class _Input:
    kind: str  # "card" | "pin" | "cancel"
    card: CardData | None = None
    pin: str | None = field(default=None, repr=False)


class SimulatedCardReader:
    """The emulator's reader, driven by the UI: present a test card, type a PIN, cancel.

    ``present_card``, ``enter_pin`` and ``cancel`` are thread-safe; input that arrives when
    nothing waits is kept for the next read (``reset`` drops it). ``state`` is what the reader
    waits for now (``waiting_for``: None, ``"card"`` with the allowed ``modes``, or ``"pin"``);
    listeners hear its changes and the notices (a card presented in a mode the request does not
    allow); ``wait_for_prompt`` (any event loop) and ``wait_for_prompt_blocking`` (any other
    thread) wait until it asks for input — so a host presents a card only once the app asks.
    """

    def __init__(self, *, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._inputs: deque[_Input] = deque()
        self._wakeup: asyncio.Event | None = None
        # One immutable value, replaced whole, so other threads never see half a change.
        self._state = IDLE
        self.notice: str | None = None
        self._listeners: list[Callable[[], None]] = []

    @property
    def state(self) -> ReaderState:
        return self._state

    @property
    def waiting_for(self) -> str | None:
        return self._state.waiting_for

    def _set_state(self, state: ReaderState) -> None:
        self._state = state
        self._changed()

    def add_listener(self, listener: Callable[[], None]) -> None:
        """``listener()`` after every change of state or notice, on the device's loop."""
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[], None]) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def _changed(self) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener()

    async def wait_for_prompt(self, kind: str | None = None) -> ReaderState:
        """Until the reader waits for ``kind`` (``"card"``, ``"pin"``; None: either); its
        state then. Runs on any event loop; wrap it in ``asyncio.wait_for`` for a deadline."""
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()

        def wake() -> None:
            if loop is _running_loop():
                changed.set()
                return
            with contextlib.suppress(RuntimeError):  # the waiter's loop is closed: it is gone
                loop.call_soon_threadsafe(changed.set)

        self.add_listener(wake)
        try:
            while True:
                changed.clear()
                state = self._state
                if state.matches(kind):
                    return state
                await changed.wait()
        finally:
            self.remove_listener(wake)

    def wait_for_prompt_blocking(
        self, kind: str | None = None, *, timeout_s: float
    ) -> ReaderState | None:
        """:meth:`wait_for_prompt` for a thread other than the device's: the state once it
        waits for ``kind``, or None after ``timeout_s``."""
        changed = threading.Event()
        self.add_listener(changed.set)
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                changed.clear()
                state = self._state
                if state.matches(kind):
                    return state
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not changed.wait(remaining):
                    state = self._state
                    return state if state.matches(kind) else None
        finally:
            self.remove_listener(changed.set)

    # -- input (any thread) -----------------------------------------------------------------

    def present_card(
        self, method: str, pan: str, *, exp_month: int = 12, exp_year: int = 2030
    ) -> None:
        card = CardData(entry_mode_of(method), pan, exp_month, exp_year)
        self._post(_Input("card", card=card))

    def enter_pin(self, pin: str) -> None:
        self._post(_Input("pin", pin=pin))

    def cancel(self) -> None:
        self._post(_Input("cancel"))

    def _post(self, item: _Input) -> None:
        with self._lock:
            self._inputs.append(item)
            wakeup, loop = self._wakeup, self._loop
        if wakeup is None or loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            wakeup.set()
        else:
            loop.call_soon_threadsafe(wakeup.set)

    # -- the app's side (device loop) -------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            self._inputs.clear()
        self.notice = None

    async def _next(self, kinds: set[str]) -> _Input:
        loop = asyncio.get_running_loop()
        with self._lock:
            self._loop = loop
            if self._wakeup is None:
                self._wakeup = asyncio.Event()
            wakeup = self._wakeup
        while True:
            with self._lock:
                while self._inputs:
                    item = self._inputs.popleft()
                    if item.kind == "cancel" or item.kind in kinds:
                        return item
                wakeup.clear()
            await wakeup.wait()

    async def read_card(self, allowed: tuple[EntryMode, ...] = CARD_ENTRY_MODES) -> CardData:
        self._set_state(ReaderState("card", tuple(allowed)))
        try:
            while True:
                item = await self._next({"card"})
                if item.kind == "cancel":
                    raise CustomerCancelled()
                assert item.card is not None
                if item.card.entry_mode in allowed:
                    self.notice = None
                    return item.card
                self.notice = f"{item.card.entry_mode.value} is not allowed for this payment"
                self._changed()
        finally:
            self._set_state(IDLE)

    async def read_pin(self) -> str:
        self._set_state(ReaderState("pin"))
        try:
            item = await self._next({"pin"})
            if item.kind == "cancel":
                raise CustomerCancelled()
            assert item.pin is not None
            return item.pin
        finally:
            self._set_state(IDLE)


# -- the scripted fake --------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    kind: str  # "card", "pin", "cancel", "hang", "delay"
    card: CardData | None = None
    pin: str | None = field(default=None, repr=False)
    seconds: float = 0.0


def tap(pan: str) -> Step:
    return Step("card", card=CardData(EntryMode.CONTACTLESS, pan))


def insert(pan: str) -> Step:
    return Step("card", card=CardData(EntryMode.CHIP, pan))


def swipe(pan: str) -> Step:
    return Step("card", card=CardData(EntryMode.SWIPE, pan))


def pin(value: str) -> Step:
    return Step("pin", pin=value)


def cancel() -> Step:
    return Step("cancel")


def hang() -> Step:
    """The customer never presents anything: the app's timeout decides."""
    return Step("hang")


def delay(seconds: float) -> Step:
    """Wait before the next step (a customer looking for their card)."""
    return Step("delay", seconds=seconds)


class ScriptedCardReader:
    """A fake reader that plays ``steps`` in order: each ``read_card`` / ``read_pin`` takes the
    next steps (after any ``delay``). An empty script hangs. ``requests`` records what the app
    asked for; ``card_requested`` / ``pin_requested`` are set when it asks."""

    def __init__(self, steps: Iterable[Step] = ()) -> None:
        self.steps: deque[Step] = deque(steps)
        self.requests: list[str] = []
        self.card_requested = asyncio.Event()
        self.pin_requested = asyncio.Event()

    def add(self, *steps: Step) -> None:
        self.steps.extend(steps)

    def reset(self) -> None:
        """Scripts are deliberate: nothing to drop."""

    async def _take(self) -> Step:
        while True:
            if not self.steps:
                await asyncio.Event().wait()  # hangs until cancelled
            step = self.steps.popleft()
            if step.kind == "delay":
                await asyncio.sleep(step.seconds)
                continue
            if step.kind == "hang":
                await asyncio.Event().wait()
            return step

    async def read_card(self, allowed: tuple[EntryMode, ...] = CARD_ENTRY_MODES) -> CardData:
        self.requests.append("card")
        self.card_requested.set()
        step = await self._take()
        if step.kind == "cancel":
            raise CustomerCancelled()
        if step.kind != "card" or step.card is None:
            raise AssertionError(f"script gave {step.kind} when a card was asked for")
        if step.card.entry_mode not in allowed:
            raise AssertionError(f"script presented {step.card.entry_mode} (allowed {allowed})")
        return step.card

    async def read_pin(self) -> str:
        self.requests.append("pin")
        self.pin_requested.set()
        step = await self._take()
        if step.kind == "cancel":
            raise CustomerCancelled()
        if step.kind != "pin" or step.pin is None:
            raise AssertionError(f"script gave {step.kind} when a PIN was asked for")
        return step.pin


def catalogue() -> tuple[TestCard, ...]:
    return TEST_CARDS


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
