"""The scenario's terminals: emulated SmartPOS terminals registered and enrolled at the
deployment, or a real device over ADB, always driven through a
:class:`~android_bridge.driver.TerminalDriver` (the contract's Intents).

:class:`TerminalFleet` makes emulated terminals: registered at the portal for a store of the
scenario's merchant, started on one background event loop (as ``mpac terminal`` runs them),
enrolled with their activation code, and known to pgw before a scenario uses them (pgw learns a
terminal asynchronously). :class:`Terminal` is what the steps hold: its name, its store and its
driver, plus the operations a cashier starts (:class:`Transaction`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from android_bridge.driver import TerminalDriver
from features.support.deployment import Deployment
from features.support.vocabulary import Card
from features.support.world import Registration, Store
from terminal_emulator.apps.common import AppConfig
from terminal_emulator.backend_client import BackendUrls
from terminal_emulator.contract import (
    ContractRequest,
    EndOfDayRequest,
    ErrorCode,
    PaymentRequest,
    RefundRequest,
    Status,
    TransactionResult,
    VoidRequest,
)
from terminal_emulator.presentation import Screen
from terminal_emulator.terminal import DevicePresenter, EmulatedTerminal, TerminalConfig
from tests.terminal_emulator.adb.conftest import LoopThread

T = TypeVar("T")

# The apps' waits, shortened so that a scenario takes seconds (AppConfig's docs).
FAST_APPS = {"processing_wait_s": 2.0, "stream": False}
START_TIMEOUT_S = 60.0
RESULT_TIMEOUT_S = 60.0


def request_id() -> str:
    return f"bdd-{uuid.uuid4().hex[:16]}"


class TerminalFleet:
    """Every emulated terminal of a test session: one event loop, one state directory each."""

    def __init__(self, deployment: Deployment, state_root: Path) -> None:
        self.deployment = deployment
        self.state_root = state_root
        self._loop: LoopThread | None = None
        self._running: list[EmulatedTerminal] = []

    @property
    def loop(self) -> LoopThread:
        if self._loop is None:
            self._loop = LoopThread()
        return self._loop

    def call(self, coro: Any, timeout: float = START_TIMEOUT_S) -> Any:
        """Run ``coro`` on the terminals' loop and wait for its result."""
        return self.loop.call(coro, timeout=timeout)

    def build(
        self,
        registration: Registration,
        *,
        activate: bool = True,
        adb_keys: str | None = None,
        **app_config: Any,
    ) -> EmulatedTerminal:
        """An emulated terminal for ``registration`` (not started). With ``activate`` it
        enrolls with the registration's activation code when it starts; with ``adb_keys``
        (the allowed hosts' public keys) it serves ADB on a free port."""
        urls = self.deployment.urls
        state_dir = self.state_root / f"{registration.serial.lower()}"
        state_dir.mkdir(parents=True, exist_ok=True)
        if adb_keys is not None:
            (state_dir / "adb_keys").write_text(adb_keys)
        config = TerminalConfig(
            serial=registration.serial,
            state_dir=state_dir,
            urls=BackendUrls(portal=urls.portal, pgw=urls.pgw, smarttab=urls.smarttab),
            name=registration.name,
            activation_code=registration.activation_code if activate else None,
            adb_port=0 if adb_keys is not None else None,
            apps=AppConfig(**{**FAST_APPS, **app_config}),
        )
        return EmulatedTerminal(config)

    def start(self, terminal: EmulatedTerminal) -> EmulatedTerminal:
        """Boot ``terminal`` (enrolling it if it has a code); once enrolled, wait until pgw
        knows it, so that its first payment is not refused as an unknown terminal."""
        self.call(terminal.start())
        self._running.append(terminal)
        enrollment = terminal.identity.enrollment
        if enrollment is not None:
            self.wait_until_gateway_knows(terminal)
        return terminal

    def wait_until_gateway_knows(
        self, terminal: EmulatedTerminal, *, status: str = "active"
    ) -> None:
        """Until pgw's directory holds the terminal with ``status`` (it learns asynchronously)."""
        enrollment = terminal.identity.enrollment
        assert enrollment is not None, "the terminal is not enrolled"

        def probe() -> Any:
            # A payment token is the cheapest call pgw checks the directory for; it moves no
            # money and expires by itself.
            token = self.call(terminal.identity.access_token())
            return self.deployment.pgw.post(
                "/v1/payment-tokens",
                json={},
                headers={"authorization": f"Bearer {token}"},
            )

        self.deployment.wait_for_terminal(
            enrollment.store_id, enrollment.terminal_id, status=status, probe=probe
        )

    def stop(self, terminal: EmulatedTerminal) -> None:
        if terminal in self._running:
            self._running.remove(terminal)
            self.call(terminal.stop())

    def stop_all(self) -> None:
        for terminal in list(self._running):
            try:
                self.stop(terminal)
            except Exception:  # noqa: S112  (one stuck terminal must not keep others running)
                continue

    def close(self) -> None:
        self.stop_all()
        if self._loop is not None:
            self._loop.close()
            self._loop = None


@dataclass
class Transaction:
    """An operation the cashier started on a terminal; its result arrives later. ``card`` is
    the card the customer presented for it, if any."""

    request: ContractRequest
    future: Future[TransactionResult]
    card: Card | None = None
    _result: TransactionResult | None = None

    def __repr__(self) -> str:
        state = describe(self._result) if self._result is not None else "waiting"
        return f"Transaction({self.request.ACTION.short} {self.request.request_id}: {state})"

    def result(self, timeout_s: float = RESULT_TIMEOUT_S) -> TransactionResult:
        if self._result is None:
            try:
                self._result = self.future.result(timeout_s)
            except FutureTimeout:
                raise AssertionError(
                    f"the terminal gave no result for {self.request.ACTION.short} "
                    f"{self.request.request_id} within {timeout_s:.0f} s"
                ) from None
        return self._result


@dataclass(frozen=True)
class Payment:
    """A payment the scenario refers to later ("the payment"): taken on a terminal (``result``
    is the terminal's answer) or through the gateway's API."""

    payment_id: str
    amount: int
    card: Card | None = None
    result: TransactionResult | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        card = f", {self.card.brand} ending {self.card.last4}" if self.card else ""
        return f"Payment({self.payment_id}, ¥{self.amount:,}{card})"


def describe(result: TransactionResult) -> str:
    """``declined (DECLINED_INSUFFICIENT_FUNDS: Insufficient funds)``: an answer, plainly."""
    text = result.status.value
    if result.error_code is not None:
        text += f" ({result.error_code.value}: {result.error_message or ''})".replace(": )", ")")
    return text


def expect(
    result: TransactionResult,
    status: Status,
    error_code: ErrorCode | None = None,
    *,
    what: str = "the payment",
) -> TransactionResult:
    """``result`` if it has ``status`` (and ``error_code``); else say plainly what came."""
    if result.status is not status or (error_code is not None and result.error_code != error_code):
        wanted = status.value + (f" ({error_code.value})" if error_code is not None else "")
        raise AssertionError(f"{what} was {describe(result)}, expected {wanted}")
    return result


@dataclass
class Terminal:
    """A terminal of the scenario as its cashier and customers use it."""

    name: str
    driver: TerminalDriver
    store: Store | None = None  # None: a real device, in whatever store it is enrolled
    registration: Registration | None = None
    emulated: EmulatedTerminal | None = None
    history: list[Transaction] = field(default_factory=list)
    owned: bool = True  # False: someone else's driver (a fixture's), not closed with the scene

    @property
    def terminal_id(self) -> str | None:
        if self.registration is not None:
            return self.registration.terminal_id
        return None

    # -- what the cashier starts -----------------------------------------------------------

    def start(
        self, request: ContractRequest, *, timeout_s: float = RESULT_TIMEOUT_S
    ) -> Transaction:
        transaction = Transaction(request, self.driver.submit(request, timeout_s=timeout_s))
        self.history.append(transaction)
        return transaction

    def charge(self, amount: int, **options: Any) -> Transaction:
        """Start a sale of ``amount`` yen (the customer presents a card next)."""
        options.setdefault("skip_result_screen", True)
        request = PaymentRequest(request_id=request_id(), amount=amount, currency="JPY", **options)
        return self.start(request)

    def refund(self, payment_id: str, amount: int | None = None, **options: Any) -> Transaction:
        options.setdefault("skip_result_screen", True)
        return self.start(
            RefundRequest(request_id=request_id(), payment_id=payment_id, amount=amount, **options)
        )

    def void(self, payment_id: str, **options: Any) -> Transaction:
        options.setdefault("skip_result_screen", True)
        return self.start(VoidRequest(request_id=request_id(), payment_id=payment_id, **options))

    def end_of_day(self, **options: Any) -> Transaction:
        options.setdefault("skip_result_screen", True)
        return self.start(EndOfDayRequest(request_id=request_id(), **options))

    # -- the Business App's screens (emulated terminals: the presenter a person clicks) ------

    def _presenter(self) -> DevicePresenter:
        if self.emulated is None:
            raise AssertionError(f'the terminal "{self.name}" is not emulated: no screen to read')
        return self.emulated.presenter

    def screen(self) -> Screen:
        """What the terminal shows now."""
        presenter = self._presenter()
        return self._on_device(presenter.wait_for(lambda _screen: True, 5.0))

    def enter_activation_code(self, code: str, *, timeout_s: float = 20.0) -> Screen:
        """Type ``code`` on the enroll screen and press Enroll; the screen once the portal
        answered (the amount entry when enrolled, else the enroll screen with the reason)."""
        presenter = self._presenter()
        screen = self.screen()
        assert screen.name == "enroll", f"the terminal shows {screen.name!r}, not the enroll screen"
        presenter.type_text("activation_code", code)
        presenter.press("enroll")

        def answered(shown: Screen) -> bool:
            if shown.name != "enroll":
                return True
            button = shown.button("enroll")
            return len(shown.lines) > 1 and button is not None and button.enabled

        return self._on_device(presenter.wait_for(answered, timeout_s), timeout_s + 5)

    def _on_device(self, work: Coroutine[Any, Any, T], timeout_s: float = 10.0) -> T:
        assert self.emulated is not None
        loop = self.emulated.device.loop
        return asyncio.run_coroutine_threadsafe(work, loop).result(timeout_s)

    def access_token(self) -> str:
        """The device token the terminal uses now (obtained from the portal if it has none)."""
        assert self.emulated is not None, "a real device does not hand out its token"
        return self._on_device(self.emulated.identity.access_token(), 30.0)

    def close(self) -> None:
        if self.owned:
            self.driver.close()
