"""The TerminalDriver: the same tests on the emulator in process and over its real ADB endpoint
(TCP, adb-shell), against the real platform; the pytest plugin's options, marker and errors.

Each test drives the customer's side through the driver (wait for the card prompt, present a
test card, type the PIN, cancel), never through the terminal object, so a test that passes on
both targets passes for the same reasons on both.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from android_bridge.driver import (
    CARD_PRESENTATION,
    FORCE_STOP,
    LINK_FAULTS,
    LOGCAT,
    CardPromptTimeout,
    CardReaderRefused,
    TerminalDriver,
    TerminalTarget,
    open_driver,
)
from terminal_emulator.contract import (
    RESULT_LOG_TAG,
    EntryMode,
    ErrorCode,
    PaymentRequest,
    Status,
    parse_result_log_line,
)
from tests.android_bridge.conftest import StartTerminal
from tests.terminal_emulator.adb.conftest import HostKey

APPROVED = "4242424242424242"
DECLINED = "4000000000000002"
PIN_CARD = "4000000000001000"
REPO = Path(__file__).resolve().parents[2]
RESULT_WAIT_S = 30.0


def payment(amount: int = 1200, **options: object) -> PaymentRequest:
    return PaymentRequest(
        request_id=f"drv-{uuid.uuid4().hex[:12]}",
        amount=amount,
        currency="JPY",
        skip_result_screen=True,
        **options,  # type: ignore[arg-type]
    )


@pytest.fixture(params=["emulator", "emulator-adb"])
def driver(
    request: pytest.FixtureRequest, start_adb_terminal: StartTerminal, host_key: HostKey
) -> Iterator[TerminalDriver]:
    """A fresh enrolled terminal, driven in process or over TCP ADB."""
    terminal = start_adb_terminal()
    made = open_driver(request.param, terminal=terminal, key_path=host_key.path)
    yield made
    made.close()


def test_approved_card_payment(driver: TerminalDriver) -> None:
    request = payment(metadata="order 7")
    pending = driver.submit(request, timeout_s=RESULT_WAIT_S)
    driver.wait_for_card_prompt()
    driver.present_card("tap", APPROVED)
    result = pending.result(RESULT_WAIT_S + 10)
    assert result.status is Status.APPROVED, result
    assert result.request_id == request.request_id
    assert (result.amount, result.currency, result.metadata) == (1200, "JPY", "order 7")
    assert result.masked_pan == "**** **** **** 4242"
    assert result.entry_mode is EntryMode.CONTACTLESS
    assert result.payment_id
    assert result.auth_code
    assert driver.query(request.request_id) == result
    # The same request again is answered from the journal: no card is asked for.
    assert driver.execute(request, timeout_s=RESULT_WAIT_S) == result


def test_declined_card(driver: TerminalDriver) -> None:
    pending = driver.submit(payment(), timeout_s=RESULT_WAIT_S)
    driver.wait_for_card_prompt()
    driver.present_card("insert", DECLINED)
    result = pending.result(RESULT_WAIT_S + 10)
    assert result.status is Status.DECLINED, result
    assert result.error_code is ErrorCode.DECLINED_GENERIC
    assert result.entry_mode is EntryMode.CHIP


def test_pin_card_asks_for_the_pin(driver: TerminalDriver) -> None:
    pending = driver.submit(payment(), timeout_s=RESULT_WAIT_S)
    driver.wait_for_card_prompt()
    driver.present_card("swipe", PIN_CARD)
    driver.wait_for_pin_prompt()
    driver.enter_pin("1234")
    result = pending.result(RESULT_WAIT_S + 10)
    assert result.status is Status.APPROVED, result
    assert result.entry_mode is EntryMode.SWIPE


def test_customer_cancel(driver: TerminalDriver) -> None:
    request = payment()
    pending = driver.submit(request, timeout_s=RESULT_WAIT_S)
    driver.wait_for_card_prompt()
    driver.cancel_card()
    result = pending.result(RESULT_WAIT_S + 10)
    assert result.status is Status.CANCELLED
    assert result.error_code is ErrorCode.CUSTOMER_CANCELLED
    assert driver.query(request.request_id) == result


def test_force_stop_then_the_query_tells_the_truth(driver: TerminalDriver) -> None:
    request = payment()
    pending = driver.submit(request, timeout_s=RESULT_WAIT_S)
    driver.wait_for_card_prompt()
    driver.force_stop_credit_card_app()
    # The app died before anything reached pgw: the driver recovers the outcome with QUERY.
    result = pending.result(RESULT_WAIT_S + 10)
    assert result.status is Status.CANCELLED, result
    assert result.error_code is ErrorCode.INTERRUPTED
    assert driver.query(request.request_id) == result
    with pytest.raises(CardReaderRefused, match="not waiting for a card"):
        driver.present_card("tap", APPROVED)


def test_logcat_excerpt_holds_the_result_line(driver: TerminalDriver) -> None:
    pending = driver.submit(payment(amount=500), timeout_s=RESULT_WAIT_S)
    driver.wait_for_card_prompt()
    driver.present_card("tap", APPROVED)
    result = pending.result(RESULT_WAIT_S + 10)
    excerpt = driver.logcat_excerpt(lines=100)
    logged = [
        parsed
        for line in excerpt.splitlines()
        if RESULT_LOG_TAG in line and (parsed := parse_result_log_line(line)) is not None
    ]
    assert result in logged
    assert APPROVED not in excerpt  # the card number never reaches the log


def test_the_reader_refuses_alike_and_capabilities(driver: TerminalDriver) -> None:
    assert {CARD_PRESENTATION, FORCE_STOP, LOGCAT} <= driver.capabilities
    assert (LINK_FAULTS in driver.capabilities) is (driver.target == "emulator-adb")
    with pytest.raises(CardReaderRefused) as idle:
        driver.present_card("tap", APPROVED)
    assert idle.value.message == "the reader is not waiting for a card (state=idle)"
    with pytest.raises(CardPromptTimeout):
        driver.wait_for_card_prompt(timeout_s=0.05)

    pending = driver.submit(payment(entry_modes=(EntryMode.CONTACTLESS,)), timeout_s=RESULT_WAIT_S)
    driver.wait_for_card_prompt()
    with pytest.raises(CardReaderRefused) as swiped:
        driver.present_card("swipe", APPROVED)
    assert swiped.value.message == (
        "swipe (swipe) is not allowed for this payment (modes=contactless)"
    )
    with pytest.raises(CardReaderRefused) as unknown:
        driver.present_card("tap", "4111111111111111")
    assert unknown.value.message == "**** 1111 is not a test card (see `cardreader cards`)"
    with pytest.raises(CardReaderRefused, match="not waiting for a PIN"):
        driver.enter_pin("1234")
    driver.cancel_card()
    assert pending.result(RESULT_WAIT_S + 10).error_code is ErrorCode.CUSTOMER_CANCELLED


@pytest.mark.parametrize("driver", ["emulator-adb"], indirect=True)  # the one with a link
def test_dropped_link_mid_payment_still_gives_the_result(driver: TerminalDriver) -> None:
    assert LINK_FAULTS in driver.capabilities
    request = payment()
    pending = driver.submit(request, timeout_s=RESULT_WAIT_S)
    driver.wait_for_card_prompt()
    driver.drop_link()  # the broadcast's connection is gone; the payment goes on
    driver.present_card("tap", APPROVED)
    result = pending.result(RESULT_WAIT_S + 10)
    assert result.status is Status.APPROVED, result
    assert driver.query(request.request_id) == result


@pytest.mark.parametrize("target", ["emulator", "emulator-adb"])
def test_payment_started_as_an_activity(
    target: str, start_adb_terminal: StartTerminal, host_key: HostKey
) -> None:
    """``via="activity"``: started as ``am start`` does; the answer comes from the log line."""
    driver = open_driver(
        target, terminal=start_adb_terminal(), key_path=host_key.path, via="activity"
    )
    try:
        request = payment(amount=800)
        pending = driver.submit(request, timeout_s=RESULT_WAIT_S)
        driver.wait_for_card_prompt()
        driver.present_card("tap", APPROVED)
        result = pending.result(RESULT_WAIT_S + 10)
        assert result.status is Status.APPROVED, result
        assert (result.request_id, result.amount) == (request.request_id, 800)
    finally:
        driver.close()


# -- the pytest plugin ------------------------------------------------------------------------


def test_the_plugin_drives_the_chosen_target(
    terminal_driver: TerminalDriver, terminal_target: TerminalTarget
) -> None:
    """This session's ``--terminal`` (emulator unless told otherwise)."""
    assert terminal_driver.target == terminal_target.name
    assert CARD_PRESENTATION in terminal_driver.capabilities or terminal_target.name == "adb"


def _run_pytest(directory: Path, *options: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    environment.pop("ANDROID_SERIAL", None)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "android_bridge.pytest_plugin",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(directory),
            "-rs",
            *options,
            str(directory),
        ],
        cwd=directory,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_adb_target_errors_say_what_is_wrong(tmp_path: Path) -> None:
    (tmp_path / "test_one.py").write_text(
        textwrap.dedent(
            """
            def test_needs_the_device(terminal_driver):
                raise AssertionError("never reached")
            """
        )
    )
    missing = _run_pytest(tmp_path, "--terminal=adb")
    assert missing.returncode == 4  # usage error
    assert "--terminal=adb needs the device: --adb-serial SERIAL" in missing.stderr

    serial = f"127.0.0.1:{_closed_port()}"
    unreachable = _run_pytest(tmp_path, "--terminal=adb", "--adb-serial", serial)
    output = unreachable.stdout
    assert unreachable.returncode == 1, output
    assert f"terminal: adb (serial {serial})" in output  # the report header
    assert f"--terminal=adb: cannot use {serial}: " in output
    assert "1 error" in output
    assert "never reached" not in output
    assert "Traceback" not in output
    assert "During handling" not in output  # one line of reason, no exception chain


def test_marker_and_a_missing_terminal_factory(tmp_path: Path) -> None:
    """Under ``--terminal=emulator``: ``requires_terminal`` skips with the driver's reason, an
    unknown capability is an error, and without ``emulated_terminal_factory`` the test skips."""
    with_factory = tmp_path / "with_factory"
    with_factory.mkdir()
    (with_factory / "conftest.py").write_text(
        textwrap.dedent(
            """
            import types
            import pytest

            @pytest.fixture
            def emulated_terminal_factory():
                # Enough of a terminal for a driver that is only asked for its capabilities.
                return lambda: types.SimpleNamespace(serial="STUB-1", card_reader=None)
            """
        )
    )
    (with_factory / "test_marked.py").write_text(
        textwrap.dedent(
            """
            import pytest

            @pytest.mark.requires_terminal("link_faults")
            def test_link():
                raise AssertionError("never reached")

            @pytest.mark.requires_terminal("teleport")
            def test_unknown():
                raise AssertionError("never reached")
            """
        )
    )
    without = tmp_path / "without_factory"
    without.mkdir()
    (without / "test_plain.py").write_text("def test_it(terminal_driver):\n    pass\n")

    marked = _run_pytest(with_factory)
    assert "terminal: emulator" in marked.stdout
    assert (
        "--terminal=emulator (STUB-1) lacks link_faults: in process there is no ADB link to drop"
        in marked.stdout
    )
    assert "requires_terminal: unknown capability 'teleport'" in marked.stdout
    assert "1 skipped, 1 error" in marked.stdout
    assert "never reached" not in marked.stdout

    plain = _run_pytest(without)
    assert "1 skipped" in plain.stdout, plain.stdout
    assert "needs an emulated terminal, and no `emulated_terminal_factory` fixture" in (
        plain.stdout
    )
