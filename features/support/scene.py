"""One scenario's moving parts: the terminals it opened on the ``--terminal`` target (closed
when it ends) and what its failure report shows about them.

A scenario gets its terminals here, never by building drivers itself, so the same feature file
runs on every target:

- ``emulator`` / ``emulator-adb``: a terminal registered at the portal for the named store,
  enrolled, known to pgw, driven in process or over its ADB endpoint;
- ``adb``: the real device (``--adb-serial``), whatever store it is enrolled in: scenarios that
  need a terminal of their own making (onboarding, anything about the terminal's store) are
  skipped there with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

from android_bridge.driver import TerminalDriver, TerminalTarget, open_driver
from android_bridge.errors import BridgeError
from features.support.deployment import Deployment
from features.support.terminals import Terminal, TerminalFleet
from features.support.world import Merchant, Registration, Store
from terminal_emulator.terminal import EmulatedTerminal

# What a scenario may ask of the terminal target beyond the driver's own capabilities.
OWN_TERMINALS = "own_terminals"  # register and enroll terminals (not a real device's)
LOGCAT_LINES = 80


class Scene:
    def __init__(
        self,
        *,
        deployment: Deployment,
        fleet: TerminalFleet,
        target: TerminalTarget,
        host_key: Callable[[], Path | None],
        device_driver: Callable[[], TerminalDriver],
        terminal_needs: Iterable[str] = (),
    ) -> None:
        self.deployment = deployment
        self.fleet = fleet
        self.target = target
        self._host_key = host_key
        self._device_driver = device_driver
        self.terminal_needs = tuple(terminal_needs)
        self.terminals: dict[str, Terminal] = {}
        self._emulated: list[EmulatedTerminal] = []

    # -- what the target allows -----------------------------------------------------------------

    def require_own_terminals(self) -> None:
        if self.target.name == "adb":
            pytest.skip(
                f"--terminal=adb ({self.target.serial}) is a real device enrolled in its own "
                "store; this scenario registers and enrolls terminals of its own (run it with "
                "--terminal=emulator or emulator-adb)"
            )

    def require_terminal(self, capability: str) -> None:
        """Skip unless the target's terminals have ``capability``: checked on the scenario's
        terminals once it has one (every terminal it opens is checked against the scenario's
        ``@terminal:`` tags as it opens)."""
        if capability == OWN_TERMINALS:
            self.require_own_terminals()
            return
        for terminal in self.terminals.values():
            terminal.driver.require(capability)
            return

    # -- terminals ------------------------------------------------------------------------------

    def terminal(self, name: str) -> Terminal:
        try:
            return self.terminals[name]
        except KeyError:
            raise AssertionError(
                f'the scenario has no terminal "{name}" '
                f"(it has: {', '.join(self.terminals) or 'none'})"
            ) from None

    def open_terminal(self, merchant: Merchant, store: Store, name: str) -> Terminal:
        """A terminal ``name`` at ``store`` ready to take payments (on ``adb``: the device)."""
        if self.target.name == "adb":
            # The plugin's terminal_driver fixture owns (and closes) the device's driver.
            terminal = Terminal(name, self._device_driver(), owned=False)
        else:
            registration = merchant.register_terminal(store, name)
            emulated = self.start_emulated(registration)
            terminal = self.drive(name, emulated, registration)
        return self._add(terminal)

    def adopt(self, name: str, driver: TerminalDriver) -> Terminal:
        """A terminal whose driver someone else opened and closes (``terminal_driver``)."""
        return self._add(Terminal(name, driver, owned=False))

    def power_on(self, registration: Registration) -> Terminal:
        """A registered terminal switched on for the first time: not enrolled, its Business
        App asks for the activation code."""
        emulated = self.start_emulated(registration, activate=False)
        return self._add(self.drive(registration.name, emulated, registration))

    def start_emulated(
        self, registration: Registration, *, activate: bool = True, adb: bool = False
    ) -> EmulatedTerminal:
        """An emulated terminal for ``registration`` booted (and enrolled with its code unless
        ``activate`` is False), with its ADB endpoint when ``adb`` or the target is
        emulator-adb; stopped when the scenario ends."""
        self.require_own_terminals()
        emulated = self.fleet.build(
            registration,
            activate=activate,
            adb_keys="" if adb or self.target.name == "emulator-adb" else None,
        )
        self._emulated.append(emulated)
        return self.fleet.start(emulated)

    def drive(
        self, name: str, emulated: EmulatedTerminal, registration: Registration | None
    ) -> Terminal:
        """The scenario's handle on a started emulated terminal, through the target's driver."""
        try:
            driver = open_driver(self.target, terminal=emulated, key_path=self._host_key())
        except BridgeError as error:
            raise AssertionError(f"cannot drive the terminal {name}: {error}") from error
        terminal = Terminal(
            name,
            driver,
            store=registration.store if registration is not None else None,
            registration=registration,
            emulated=emulated,
        )
        return terminal

    def _add(self, terminal: Terminal) -> Terminal:
        self.terminals[terminal.name] = terminal
        for capability in self.terminal_needs:
            self.require_terminal(capability)
        return terminal

    # -- the end --------------------------------------------------------------------------------

    def logcat_excerpts(self) -> dict[str, str]:
        """Each terminal's recent log, for the failure report."""
        excerpts = {}
        for name, terminal in self.terminals.items():
            try:
                excerpts[name] = terminal.driver.logcat_excerpt(lines=LOGCAT_LINES)
            except Exception as error:
                excerpts[name] = f"(no logcat: {type(error).__name__}: {error})"
        return excerpts

    def close(self) -> None:
        terminals, self.terminals = list(self.terminals.values()), {}
        emulated, self._emulated = self._emulated, []
        errors = []
        for terminal in terminals:
            try:
                terminal.close()
            except Exception as error:
                errors.append(f"{terminal.name}: {error}")
        for device in emulated:
            try:
                self.fleet.stop(device)
            except Exception as error:
                errors.append(f"{device.serial}: {error}")
        if errors:
            raise AssertionError("closing terminals failed: " + "; ".join(errors))
