"""``cardreader``: the emulator's card reader from the shell, in-process through the device's
shell and over real TCP with adb-shell; absent where the reader is not the simulated one; card
numbers and PINs kept out of the endpoint's logs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from terminal_emulator.adb import AdbDeviceServer
from terminal_emulator.adb.redaction import redact, redact_bytes
from terminal_emulator.android import Device, DeviceConfig
from terminal_emulator.contract import EntryMode
from terminal_emulator.hardware import (
    CardData,
    CustomerCancelled,
    ScriptedCardReader,
    SimulatedCardReader,
)
from terminal_emulator.shell import executor_for, start_adb_endpoint
from tests.terminal_emulator.adb.conftest import HostKey, LoopThread
from tests.terminal_emulator.adb.test_adb_shell_client import Client
from tests.terminal_emulator.shell.helpers import Output, sh

APPROVED = "4242424242424242"
PIN_CARD = "4000000000001000"
NOT_A_TEST_CARD = "4111111111111111"
CONTACTLESS_OR_CHIP = (EntryMode.CONTACTLESS, EntryMode.CHIP)


@dataclass
class ReaderTerminal:
    """What ``executor_for`` looks at: a device and a card reader (no apps needed here)."""

    device: Device
    card_reader: object


def _terminal(tmp_path: Path, reader: object | None = None) -> ReaderTerminal:
    device = Device(DeviceConfig(serial="READER-0001", state_dir=tmp_path / "device"))
    return ReaderTerminal(device, reader if reader is not None else SimulatedCardReader())


# -- in-process, through the device's shell ---------------------------------------------------


def test_a_card_is_taken_only_when_asked_for_in_an_allowed_mode(tmp_path: Path) -> None:
    terminal = _terminal(tmp_path)
    reader = terminal.card_reader
    assert isinstance(reader, SimulatedCardReader)
    shell = executor_for(terminal)

    async def scenario() -> None:
        assert await sh(shell, "cardreader status") == Output(0, "state=idle\n", "")
        early = await sh(shell, f"cardreader tap {APPROVED}")
        assert (early.status, early.out) == (1, "")
        assert early.err == "cardreader: the reader is not waiting for a card (state=idle)\n"

        reading = asyncio.create_task(reader.read_card(CONTACTLESS_OR_CHIP))
        waited = await sh(shell, "cardreader wait card --timeout-ms 2000")
        assert waited == Output(0, "state=waiting_card modes=contactless,chip\n", "")
        assert (await sh(shell, "cardreader status")).out == waited.out

        swiped = await sh(shell, f"cardreader swipe {APPROVED}")
        assert swiped.status == 1
        assert "swipe (swipe) is not allowed for this payment (modes=contactless,chip)" in (
            swiped.err
        )
        unknown = await sh(shell, f"cardreader tap {NOT_A_TEST_CARD}")
        assert unknown.status == 1
        assert unknown.err == "cardreader: **** 1111 is not a test card (see `cardreader cards`)\n"
        assert not reading.done()  # neither refused card reached the reader

        tapped = await sh(shell, f"cardreader insert {APPROVED}")
        assert tapped == Output(0, "card presented: chip **** 4242\n", "")
        card: CardData = await asyncio.wait_for(reading, 2)
        assert (card.entry_mode, card.pan) == (EntryMode.CHIP, APPROVED)
        assert (await sh(shell, "cardreader status")).out == "state=idle\n"

    asyncio.run(scenario())


def test_pin_cancel_and_waiting_for_a_prompt_that_comes_later(tmp_path: Path) -> None:
    terminal = _terminal(tmp_path)
    reader = terminal.card_reader
    assert isinstance(reader, SimulatedCardReader)
    shell = executor_for(terminal)

    async def scenario() -> None:
        timed_out = await sh(shell, "cardreader wait pin --timeout-ms 50")
        assert timed_out == Output(
            1, "", "cardreader: timed out after 50 ms waiting for pin (state=idle)\n"
        )
        assert (await sh(shell, "cardreader cancel")).err == (
            "cardreader: nothing to cancel (state=idle)\n"
        )

        waiting = asyncio.create_task(sh(shell, "cardreader wait pin --timeout-ms 5000"))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        pin_read = asyncio.create_task(reader.read_pin())
        assert await asyncio.wait_for(waiting, 2) == Output(0, "state=waiting_pin\n", "")
        assert (await sh(shell, f"cardreader tap {PIN_CARD}")).status == 1  # a PIN is due
        entered = await sh(shell, "cardreader pin 1234")
        assert entered == Output(0, "PIN entered\n", "")
        assert await asyncio.wait_for(pin_read, 2) == "1234"
        assert (await sh(shell, "cardreader pin 1234")).err == (
            "cardreader: the reader is not waiting for a PIN (state=idle)\n"
        )

        any_prompt = asyncio.create_task(sh(shell, "cardreader wait"))
        card_read = asyncio.create_task(reader.read_card())
        assert (await asyncio.wait_for(any_prompt, 2)).out == (
            "state=waiting_card modes=contactless,chip,swipe\n"
        )
        assert await sh(shell, "cardreader cancel") == Output(0, "cancelled\n", "")
        with pytest.raises(CustomerCancelled):
            await asyncio.wait_for(card_read, 2)

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("cardreader", "no command given"),
        ("cardreader shake", "unknown command 'shake'"),
        ("cardreader tap", "tap: missing PAN"),
        (f"cardreader tap {APPROVED} again", "tap: unexpected argument 'again'"),
        ("cardreader pin 12", "a PIN is 4 to 12 digits"),
        ("cardreader pin 12ab", "a PIN is 4 to 12 digits"),
        ("cardreader status now", "status: unexpected argument 'now'"),
        ("cardreader wait --timeout-ms", "wait: --timeout-ms needs a value"),
        ("cardreader wait --timeout-ms 1s", "wait: --timeout-ms takes milliseconds, not '1s'"),
        ("cardreader wait qr", "wait: unexpected argument 'qr' (card, pin or any)"),
        ("cardreader wait -x", "wait: unknown option '-x'"),
    ],
)
def test_usage_errors_exit_2_with_the_usage(tmp_path: Path, line: str, problem: str) -> None:
    shell = executor_for(_terminal(tmp_path))
    output = asyncio.run(sh(shell, line))
    assert output.status == 2
    assert output.out == ""
    assert output.err.startswith(f"cardreader: {problem}\nusage: cardreader COMMAND")


def test_help_and_the_test_cards(tmp_path: Path) -> None:
    shell = executor_for(_terminal(tmp_path))
    helped = asyncio.run(sh(shell, "cardreader --help"))
    assert helped.status == 0
    assert helped.out.startswith("usage: cardreader COMMAND")
    cards = asyncio.run(sh(shell, "cardreader cards")).out.splitlines()
    assert cards[0].split()[:2] == [APPROVED, "visa"]
    assert any(line.startswith(PIN_CARD) and "PIN 1234" in line for line in cards)


def test_absent_unless_the_reader_is_the_simulated_one(tmp_path: Path) -> None:
    """What a real device answers: the command does not exist (mksh's message, 127)."""
    for target in (
        _terminal(tmp_path, ScriptedCardReader()),
        Device(DeviceConfig(serial="BARE-0001", state_dir=tmp_path / "bare")),
    ):
        output = asyncio.run(sh(executor_for(target), "cardreader status"))
        assert output == Output(127, "", "/system/bin/sh: cardreader: inaccessible or not found\n")


def test_redaction_masks_card_numbers_and_pins() -> None:
    assert redact(f"shell:cardreader tap {APPROVED}") == "shell:cardreader tap ************4242"
    assert redact("'cardreader' 'pin' '1234'; echo x") == "'cardreader' 'pin' '****'; echo x"
    assert redact("cardreader pin 987654") == "cardreader pin ****"
    assert redact("am start --es request_id R-12") == "am start --es request_id R-12"
    assert redact_bytes(b"shell,v2,raw:cardreader pin 1234\0") == (
        b"shell,v2,raw:cardreader pin ****\0"
    )
    assert redact_bytes(APPROVED.encode()) == b"************4242"


# -- over real TCP ----------------------------------------------------------------------------


@dataclass
class ReaderOnAdb:
    terminal: ReaderTerminal
    reader: SimulatedCardReader
    server: AdbDeviceServer
    loop: LoopThread


@pytest.fixture
def reader_on_adb(
    device_loop: LoopThread, tmp_path: Path, host_key: HostKey
) -> Iterator[ReaderOnAdb]:
    adb_keys = tmp_path / "adb_keys"
    adb_keys.write_text(host_key.public.to_line() + "\n")
    terminal = _terminal(tmp_path)
    assert isinstance(terminal.card_reader, SimulatedCardReader)

    async def boot() -> AdbDeviceServer:
        await terminal.device.start()
        return await start_adb_endpoint(terminal, 0, adb_keys)

    server = device_loop.call(boot())
    yield ReaderOnAdb(terminal, terminal.card_reader, server, device_loop)
    device_loop.call(server.stop())
    device_loop.call(terminal.device.shutdown())


@pytest.fixture
def client(reader_on_adb: ReaderOnAdb, host_key: HostKey) -> Iterator[Client]:
    made = Client(reader_on_adb.server.port)
    assert made.connect(host_key)
    yield made
    made.close()


def test_over_adb_wait_then_present_then_the_reader_has_the_card(
    reader_on_adb: ReaderOnAdb, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="terminal_emulator.adb")
    reader = reader_on_adb.reader
    assert client.shell("cardreader status; echo $?") == "state=idle\n0\n"
    reading = asyncio.run_coroutine_threadsafe(
        reader.read_card((EntryMode.CONTACTLESS,)), reader_on_adb.loop.loop
    )
    assert client.shell("cardreader wait card --timeout-ms 5000; echo $?") == (
        "state=waiting_card modes=contactless\n0\n"
    )
    # adb-shell merges stderr into the output of a v1 shell stream.
    assert client.shell(f"cardreader insert {APPROVED}; echo $?") == (
        "cardreader: insert (chip) is not allowed for this payment (modes=contactless)\n1\n"
    )
    assert client.shell(f"'cardreader' 'tap' '{APPROVED}'; echo $?") == (
        "card presented: contactless **** 4242\n0\n"
    )
    card = reading.result(5)
    assert (card.entry_mode, card.pan) == (EntryMode.CONTACTLESS, APPROVED)

    pin_read = asyncio.run_coroutine_threadsafe(reader.read_pin(), reader_on_adb.loop.loop)
    assert client.shell("cardreader wait pin --timeout-ms 5000 && cardreader pin 4321") == (
        "state=waiting_pin\nPIN entered\n"
    )
    assert pin_read.result(5) == "4321"

    logged = caplog.text
    assert "cardreader" in logged  # the commands were traced...
    assert APPROVED not in logged  # ...without the card number
    assert "4321" not in logged  # ...or the PIN


def test_over_adb_a_device_without_the_simulated_reader_has_no_cardreader(
    device_loop: LoopThread, tmp_path: Path, host_key: HostKey
) -> None:
    adb_keys = tmp_path / "adb_keys"
    adb_keys.write_text(host_key.public.to_line() + "\n")
    terminal = _terminal(tmp_path, ScriptedCardReader())

    async def boot() -> AdbDeviceServer:
        await terminal.device.start()
        return await start_adb_endpoint(terminal, 0, adb_keys)

    server = device_loop.call(boot())
    client = Client(server.port)
    try:
        assert client.connect(host_key)
        assert client.shell("cardreader status; echo $?") == (
            "/system/bin/sh: cardreader: inaccessible or not found\n127\n"
        )
    finally:
        client.close()
        device_loop.call(server.stop())
        device_loop.call(terminal.device.shutdown())
