"""The emulated terminal end to end against the real platform: enrollment and device tokens,
a payment clicked through the presenter (headless), a tab part paid from the Business App with
the smarttab stream live, and several terminals in one event loop."""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from terminal_emulator.apps.common import AppConfig
from terminal_emulator.backend_client import BackendUrls, PortalClient
from terminal_emulator.contract import Status
from terminal_emulator.hardware import SimulatedCardReader
from terminal_emulator.identity import DeviceIdentity, EnrollmentError, IdentityError
from terminal_emulator.terminal import EmulatedTerminal, TerminalConfig
from tests.terminal_emulator.apps import conftest as apps_fixtures
from tests.terminal_emulator.apps.conftest import Registered, SyncedTerminal
from tests.terminal_emulator.apps.helpers import until

# The fixtures of tests/terminal_emulator/apps/, shared with this module.
tenant = apps_fixtures.tenant
urls = apps_fixtures.urls
register = apps_fixtures.register
make_terminal = apps_fixtures.make_terminal

MakeTerminal = Callable[..., tuple[EmulatedTerminal, Registered]]


def test_enrollment_persists_the_key_and_tokens_refresh_before_expiry(
    make_terminal: MakeTerminal, tmp_path: Path
) -> None:
    async def scenario() -> None:
        state = tmp_path / "t1"
        # a margin of almost the whole 90 s lifetime: the refresher renews every ~2 s
        terminal, registered = make_terminal(state_dir=state, token_refresh_margin_s=88.0)
        async with terminal:
            identity = terminal.identity
            assert identity.enrolled
            assert identity.terminal_id == registered.terminal_id
            key_file = state / "identity" / "device_key.pem"
            assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
            assert b"PRIVATE KEY" in key_file.read_bytes()
            saved = json.loads((state / "identity" / "enrollment.json").read_text())
            assert saved["terminal_id"] == registered.terminal_id
            assert saved["serial"] == registered.serial
            first = await identity.access_token()
            assert await identity.access_token() == first  # cached while fresh
            issued = identity.tokens_issued
            await until(lambda: identity.tokens_issued >= issued + 2, 10, what="token refresh")
            assert await identity.access_token() != first
            thumbprint = saved["key_thumbprint"]
        # a reboot on the same state dir is the same enrolled terminal with the same key
        again, _ = make_terminal(state_dir=state, registered=registered, enroll=False)
        async with again:
            assert again.identity.enrolled
            assert again.identity.enrollment is not None
            assert again.identity.enrollment.key_thumbprint == thumbprint
            assert await again.identity.access_token()

    asyncio.run(scenario())


def test_enrollment_errors_are_mapped(
    urls: BackendUrls, tmp_path: Path, register: Callable[..., Registered]
) -> None:
    async def scenario() -> None:
        import httpx

        from terminal_emulator.contract import ErrorCode

        async with httpx.AsyncClient(timeout=10) as http:
            identity = DeviceIdentity(
                tmp_path / "id", serial="EMU-X", portal=PortalClient(urls.portal, http)
            )
            with pytest.raises(IdentityError) as not_enrolled:
                await identity.access_token()
            assert not_enrolled.value.code is ErrorCode.TERMINAL_NOT_ENROLLED
            with pytest.raises(EnrollmentError) as refused:
                await identity.enroll("not-a-real-code")
            assert refused.value.problem
            assert not identity.enrolled
            registered = register()
            identity.serial = registered.serial
            await identity.enroll(registered.activation_code)
            with pytest.raises(EnrollmentError):  # the code is single-use
                await identity.enroll(registered.activation_code)
            assert identity.enrolled

    asyncio.run(scenario())


def test_payment_clicked_through_the_presenter(make_terminal: MakeTerminal) -> None:
    async def scenario() -> None:
        terminal, _ = make_terminal(card_reader=SimulatedCardReader())
        async with terminal:
            ui = terminal.presenter
            seen: list[str] = []
            unsubscribe = ui.subscribe(lambda screen: seen.append(f"{screen.app}/{screen.name}"))
            home = await ui.wait_for("amount_entry")
            assert home.app == "business"
            assert home.status.enrolled
            assert home.status.serial == terminal.serial
            assert len(home.status.clock) == 5
            ui.type_text("amount", "1500")
            await ui.wait_for(lambda s: s.fields.get("amount") == "1500")
            ui.press("charge")
            card_screen = await ui.wait_for("present_card")
            assert card_screen.app == "creditcard"
            assert "Amount ¥1,500" in card_screen.lines
            assert card_screen.button("cancel") is not None
            assert any(card.pan == "4000000000001000" for card in ui.test_cards())
            ui.present_card("tap", "4000000000001000")  # the PIN card
            await ui.wait_for("pin_entry")
            ui.enter_pin("1234")
            result = await ui.wait_for("result", timeout_s=20)
            assert result.app == "business"
            assert result.title == "Approved", result
            assert "Amount ¥1,500" in result.lines
            ui.press("receipt")
            receipt = await ui.wait_for("receipt")
            assert any("PAYMENT APPROVED" in line for line in receipt.lines)
            ui.press("done")
            await ui.wait_for("amount_entry")
            unsubscribe()
            assert "creditcard/present_card" in seen
            assert "creditcard/pin_entry" in seen

            # the customer cancels on the card screen
            ui.type_text("amount", "800")
            await ui.wait_for(lambda s: s.fields.get("amount") == "800")
            ui.press("charge")
            await ui.wait_for("present_card")
            ui.press("cancel")
            cancelled = await ui.wait_for("result")
            assert cancelled.title == "Cancelled"
            assert any("CUSTOMER_CANCELLED" in line for line in cancelled.lines)

    asyncio.run(scenario())


def test_business_app_pays_a_tab_part_with_the_stream_live(make_terminal: MakeTerminal) -> None:
    async def scenario() -> None:
        terminal, _ = make_terminal(card_reader=SimulatedCardReader(), stream=True)
        async with terminal:
            ui = terminal.presenter
            await until(lambda: terminal.online, 10, what="the smarttab stream")
            smarttab = terminal.smarttab
            tab = await smarttab.open_tab(table="T4")
            tab = await smarttab.add_item(
                tab, name="Draft beer", unit_price=583, quantity=2, tax_category="standard"
            )
            tab = await smarttab.split(tab, mode="equal", count=2)
            assert [p["amount"] for p in tab["split"]["parts"]] == [641, 641]
            business = terminal.business_app()
            assert business is not None
            # the stream told the Business App about the new tab (no REST poll needed)
            await until(
                lambda: (
                    tab["id"] in business.tabs
                    and business.tabs[tab["id"]].get("version") == tab["version"]
                ),
                10,
                what="tab event",
            )
            assert business.events_seen >= 3
            await ui.wait_for("amount_entry")
            ui.press("tabs")
            tabs_screen = await ui.wait_for(
                lambda s: s.name == "tabs" and s.button(f"tab:{tab['id']}") is not None
            )
            assert any("T4" in line for line in tabs_screen.lines)
            ui.press(f"tab:{tab['id']}")
            detail = await ui.wait_for(
                lambda s: s.name == "tab_detail" and s.button("pay:1") is not None
            )
            assert any("Part 1: ¥641 unpaid" in line for line in detail.lines)
            ui.press("pay:1")
            await ui.wait_for("present_card")
            ui.present_card("insert", "4242424242424242")
            result = await ui.wait_for("result", timeout_s=20)
            assert result.title == "Approved", result
            main = terminal.business_activity()
            assert main is not None
            assert main.result is not None
            assert main.result.status is Status.APPROVED
            assert main.result.tab_id == tab["id"]
            after = await smarttab.get_tab(tab["id"])
            parts = {p["number"]: p for p in after["split"]["parts"]}
            assert parts[1]["status"] == "paid"
            assert parts[1]["payment_id"] == main.result.payment_id
            assert parts[2]["status"] == "unpaid"
            assert after["amount_paid"] == 641
            # the paid part reached the Business App's tab list through the stream
            await until(
                lambda: business.tabs[tab["id"]].get("amount_paid") == 641,
                10,
                what="part_paid event",
            )

    asyncio.run(scenario())


def test_many_terminals_share_one_loop(
    urls: BackendUrls, tmp_path: Path, register: Callable[..., Registered], test_settings: object
) -> None:
    from terminal_emulator.contract import PaymentRequest
    from terminal_emulator.hardware import ScriptedCardReader, tap
    from tests.terminal_emulator.apps.helpers import broadcast

    async def scenario() -> None:
        terminals = []
        for index in range(3):
            registered = register()
            terminal = SyncedTerminal(
                TerminalConfig(
                    serial=registered.serial,
                    state_dir=tmp_path / f"fleet-{index}",
                    urls=urls,
                    activation_code=registered.activation_code,
                    card_reader=ScriptedCardReader([tap("4242424242424242")]),
                    apps=AppConfig(stream=False),
                )
            )
            terminal.settings = test_settings  # type: ignore[assignment]
            terminals.append(terminal)
        await asyncio.gather(*(terminal.start() for terminal in terminals))
        try:
            results = await asyncio.gather(
                *(
                    broadcast(
                        t, PaymentRequest(request_id=f"fleet-{i}", amount=100 + i, currency="JPY")
                    )
                    for i, t in enumerate(terminals)
                )
            )
            assert [r.status if r else None for r in results] == [Status.APPROVED] * 3
            assert len({t.identity.terminal_id for t in terminals}) == 3
        finally:
            await asyncio.gather(*(terminal.stop() for terminal in terminals))

    asyncio.run(scenario())


def test_mpac_terminal_command_lays_out_a_fleet(tmp_path: Path) -> None:
    from backend.cli import build_parser
    from terminal_emulator.commands import _configs

    args = build_parser().parse_args(
        [
            "terminal",
            "--headless",
            "--state-dir",
            str(tmp_path),
            "--portal-url",
            "http://portal.test/",
            "--pgw-url",
            "http://pgw.test",
            "--smarttab-url",
            "http://smarttab.test",
            "--serial",
            "LOAD",
            "--count",
            "3",
            "--adb-port",
            "6000",
            "--activation-code",
            "CODE-1",
            "--activation-code",
            "CODE-2",
        ]
    )
    configs = _configs(args)
    assert [c.serial for c in configs] == ["LOAD-0001", "LOAD-0002", "LOAD-0003"]
    assert [c.adb_port for c in configs] == [6000, 6001, 6002]
    assert [c.activation_code for c in configs] == ["CODE-1", "CODE-2", None]
    assert [c.state_dir for c in configs] == [tmp_path / c.serial for c in configs]
    assert configs[0].urls == BackendUrls(
        "http://portal.test", "http://pgw.test", "http://smarttab.test"
    )
