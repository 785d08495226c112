"""The real Credit Card App, paid over ADB: an ``EmulatedTerminal`` enrolled with the session's
platform, its endpoint started by the terminal, the contract's payment intent fired with
``am start`` through adb-shell, and the result read back from ``logcat -s MPAC_RESULT``."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.core.settings import Settings
from terminal_emulator.backend_client import BackendUrls
from terminal_emulator.contract import (
    CREDIT_CARD_TRANSACTION_ACTIVITY,
    RESULT_LOG_TAG,
    Action,
    Status,
    parse_result_log_line,
)
from terminal_emulator.terminal import EmulatedTerminal, TerminalConfig
from tests.helpers import wait_until
from tests.support.portal import build_tenant, register_terminal
from tests.terminal_emulator.adb.conftest import HostKey, LoopThread
from tests.terminal_emulator.adb.test_adb_shell_client import Client


@pytest.fixture
def enrolled_terminal(
    platform: Any,
    test_settings: Settings,
    portal_client: httpx.Client,
    device_loop: LoopThread,
    host_key: HostKey,
    tmp_path: Path,
) -> Iterator[EmulatedTerminal]:
    tenant = build_tenant(test_settings, portal_client)
    _terminal_id, serial, code = register_terminal(portal_client, tenant.admin, tenant.store_a_id)
    state_dir = tmp_path / "terminal"
    state_dir.mkdir()
    (state_dir / "adb_keys").write_text(host_key.public.to_line() + "\n")
    config = TerminalConfig(
        serial=serial,
        state_dir=state_dir,
        urls=BackendUrls.from_settings(test_settings),
        activation_code=code,
        adb_port=0,
    )

    async def start() -> EmulatedTerminal:
        return await EmulatedTerminal(config).start()

    terminal = device_loop.call(start(), timeout=60)
    try:
        yield terminal
    finally:
        device_loop.call(terminal.stop(), timeout=60)


def test_credit_card_payment_over_adb_with_the_result_from_logcat(
    enrolled_terminal: EmulatedTerminal, host_key: HostKey
) -> None:
    terminal = enrolled_terminal
    assert terminal.adb_port is not None
    client = Client(terminal.adb_port)
    try:
        assert client.connect(host_key)
        words = [
            "--es", "request_id", "ADB-PAY-1",
            "--el", "amount", "1200",
            "--es", "currency", "JPY",
            "--es", "metadata", "order 'A' ; 日本",
            "--ez", "skip_result_screen", "true",
        ]  # fmt: skip
        command = (
            f"am start -W -n {CREDIT_CARD_TRANSACTION_ACTIVITY.flatten_short()} "
            f"-a {Action.PAYMENT.value} " + " ".join(shlex.quote(w) for w in words)
        )
        started = client.shell(command)
        assert started.splitlines()[0] == (
            f"Starting: Intent {{ act={Action.PAYMENT.value} "
            f"cmp={CREDIT_CARD_TRANSACTION_ACTIVITY.flatten_short()} (has extras) }}"
        )
        assert "Status: ok" in started

        reader: Any = terminal.card_reader
        wait_until(lambda: reader.waiting_for == "card", timeout_s=15, what="the card prompt")
        terminal.presenter.present_card("contactless", "4242424242424242")

        lines: list[str] = []

        def result_logged() -> bool:
            lines[:] = client.shell(f"logcat -d -v raw -s {RESULT_LOG_TAG}").splitlines()
            return any(parse_result_log_line(line) for line in lines)

        wait_until(result_logged, timeout_s=30, what="the MPAC_RESULT line")
        results = [r for r in map(parse_result_log_line, lines) if r is not None]
        result = results[-1]
        assert result.request_id == "ADB-PAY-1"
        assert result.status is Status.APPROVED, result
        assert result.amount == 1200
        assert result.metadata == "order 'A' ; 日本"
        assert result.masked_pan == "**** **** **** 4242"
    finally:
        client.close()
