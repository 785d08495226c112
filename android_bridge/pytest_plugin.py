"""pytest plugin: the same tests against the emulator in process, the emulator over ADB, or a
real SmartPOS device.

Options::

    --terminal=emulator|emulator-adb|adb   which terminal (default: emulator)
    --adb-serial SERIAL                    the device for adb ($ANDROID_SERIAL when not given)
    --adb-key PATH                         the host's ADB private key (default: adb's own,
                                           ~/.android/adbkey; emulator-adb: a key made for
                                           the session)

Fixtures: ``terminal_target`` (the choice, a :class:`~android_bridge.driver.TerminalTarget`),
``terminal_host_key`` (the ADB key the drivers sign with) and ``terminal_driver`` (a
:class:`~android_bridge.driver.TerminalDriver` per test). For
``emulator`` and ``emulator-adb`` the terminal comes from a fixture named
``emulated_terminal_factory`` that the project provides: called without arguments it returns a
started, enrolled :class:`~terminal_emulator.terminal.EmulatedTerminal` with its ADB endpoint
listening on 127.0.0.1, stopped by the fixture afterwards (``tests/android_bridge/conftest.py``
has one). The marker ``@pytest.mark.requires_terminal("card_presentation", ...)`` skips a test
whose target lacks a capability, with the reason.

Register it with ``pytest_plugins = ["android_bridge.pytest_plugin"]`` in the root conftest or
``-p android_bridge.pytest_plugin``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from android_bridge.driver import (
    CAPABILITIES,
    TARGETS,
    AdbDriver,
    TerminalDriver,
    TerminalTarget,
    open_driver,
)
from android_bridge.errors import BridgeError

if TYPE_CHECKING:
    from android_bridge.device import AndroidDevice

FACTORY_FIXTURE = "emulated_terminal_factory"
MARKER = "requires_terminal"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("terminal", "the SmartPOS terminal the tests drive (android_bridge)")
    group.addoption(
        "--terminal",
        choices=TARGETS,
        default="emulator",
        help="emulator: in process (default); emulator-adb: an emulated terminal over its real "
        "ADB endpoint; adb: a device by serial (--adb-serial)",
    )
    group.addoption(
        "--adb-serial",
        metavar="SERIAL",
        default=None,
        help="--terminal=adb: the device, host:port or USB serial (default: $ANDROID_SERIAL)",
    )
    group.addoption(
        "--adb-key",
        metavar="PATH",
        default=None,
        help="the host's ADB private key (default: adb's ~/.android/adbkey; for emulator-adb "
        "a key made for the session)",
    )


def target_of(config: pytest.Config) -> TerminalTarget:
    """The ``--terminal`` choice with its serial and key."""
    name = config.getoption("--terminal")
    serial = config.getoption("--adb-serial") or (
        os.environ.get("ANDROID_SERIAL") if name == "adb" else None
    )
    key = config.getoption("--adb-key")
    return TerminalTarget(
        name,
        serial=serial if name == "adb" else None,
        key_path=Path(key).expanduser() if key else None,
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(capability, ...): skip unless the --terminal target has every capability "
        f"({', '.join(sorted(CAPABILITIES))})",
    )
    target = target_of(config)
    if target.name == "adb" and not target.serial:
        raise pytest.UsageError(
            "--terminal=adb needs the device: --adb-serial SERIAL (host:port or USB serial), "
            "or set ANDROID_SERIAL"
        )


def pytest_report_header(config: pytest.Config) -> str:
    return f"terminal: {target_of(config).describe()}"


@pytest.fixture(scope="session")
def terminal_target(pytestconfig: pytest.Config) -> TerminalTarget:
    """Which terminal the session drives (``--terminal``, ``--adb-serial``, ``--adb-key``)."""
    return target_of(pytestconfig)


@pytest.fixture(scope="session")
def _terminal_session_key(
    terminal_target: TerminalTarget, tmp_path_factory: pytest.TempPathFactory
) -> Path | None:
    """The host key: ``--adb-key``; for emulator-adb without it, one made for the session (the
    developer's ``~/.android`` is never touched by emulated terminals)."""
    if terminal_target.key_path is not None or terminal_target.name != "emulator-adb":
        return terminal_target.key_path
    from android_bridge.keys import ensure_key

    return ensure_key(tmp_path_factory.mktemp("terminal-adb-key") / "adbkey")


@pytest.fixture(scope="session")
def terminal_host_key(_terminal_session_key: Path | None) -> Path | None:
    """The host's ADB private key the drivers sign with (None: adb's default user key)."""
    return _terminal_session_key


@pytest.fixture(scope="session")
def _terminal_adb_device(
    terminal_target: TerminalTarget, _terminal_session_key: Path | None
) -> Iterator[AndroidDevice]:
    """--terminal=adb: one connection for the session. A device that cannot be reached fails
    every test that needs it with the same one-line reason (pytest keeps the failure)."""
    from android_bridge.device import AndroidDevice

    assert terminal_target.serial is not None
    device = AndroidDevice(terminal_target.serial, key_path=_terminal_session_key)
    problem = None
    try:
        device.connect()
    except BridgeError as error:
        device.close()
        problem = _explain(error)
    if problem is not None:  # failed outside the except block: no chained traceback
        pytest.fail(
            f"--terminal=adb: cannot use {terminal_target.serial}: {problem}", pytrace=False
        )
    yield device
    device.close()


def _explain(error: BridgeError) -> str:
    """The error without its serial (the caller names the device) and with its hint."""
    return error.message + (f" ({error.hint})" if error.hint else "")


@pytest.fixture
def terminal_driver(
    request: pytest.FixtureRequest,
    terminal_target: TerminalTarget,
    _terminal_session_key: Path | None,
) -> Iterator[TerminalDriver]:
    """The terminal of this test on the ``--terminal`` target; closed afterwards."""
    driver: TerminalDriver | None = None
    problem = None
    if terminal_target.name == "adb":
        device = request.getfixturevalue("_terminal_adb_device")
        try:
            driver = AdbDriver(device, target="adb", owns_device=False)
        except BridgeError as error:
            problem = f"{device.serial}: {_explain(error)}"
    else:
        factory = _emulated_terminal_factory(request, terminal_target)
        try:
            driver = open_driver(
                terminal_target, terminal=factory(), key_path=_terminal_session_key
            )
        except BridgeError as error:
            problem = str(error)
    if driver is None:  # failed outside the except block: no chained traceback
        pytest.fail(f"--terminal={terminal_target.name}: {problem}", pytrace=False)
    try:
        yield driver
    finally:
        driver.close()


def _emulated_terminal_factory(
    request: pytest.FixtureRequest, target: TerminalTarget
) -> Callable[[], Any]:
    try:
        factory = request.getfixturevalue(FACTORY_FIXTURE)
    except pytest.FixtureLookupError:
        pytest.skip(
            f"--terminal={target.name} needs an emulated terminal, and no "
            f"`{FACTORY_FIXTURE}` fixture is visible here (the project's conftest provides "
            "one: it returns a started, enrolled EmulatedTerminal with ADB on)"
        )
    if not callable(factory):
        raise TypeError(f"the {FACTORY_FIXTURE} fixture must return a callable, got {factory!r}")
    return factory


@pytest.fixture(autouse=True)
def _requires_terminal_capabilities(request: pytest.FixtureRequest) -> None:
    """``@pytest.mark.requires_terminal(...)``: skip when the driver lacks a capability."""
    wanted = [
        capability for marker in request.node.iter_markers(MARKER) for capability in marker.args
    ]
    if not wanted:
        return
    unknown = [capability for capability in wanted if capability not in CAPABILITIES]
    if unknown:
        pytest.fail(
            f"@pytest.mark.{MARKER}: unknown capability {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(sorted(CAPABILITIES))})",
            pytrace=False,
        )
    driver: TerminalDriver = request.getfixturevalue("terminal_driver")
    for capability in wanted:
        driver.require(capability)
