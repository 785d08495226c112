"""The smarttab stream client: live events, resume after the last seq, reauth before expiry."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from terminal_emulator.backend_client import SmarttabStream
from terminal_emulator.terminal import EmulatedTerminal
from tests.terminal_emulator.apps.conftest import Registered
from tests.terminal_emulator.apps.helpers import until

MakeTerminal = Callable[..., tuple[EmulatedTerminal, Registered]]


def test_stream_resumes_after_its_last_seq_and_reauthenticates(make_terminal: MakeTerminal) -> None:
    async def scenario() -> None:
        terminal, _ = make_terminal()
        async with terminal:
            events: list[dict[str, Any]] = []
            resyncs: list[int] = []
            stream = SmarttabStream(
                terminal.config.urls.smarttab,
                terminal.identity.access_token,
                on_event=events.append,
                on_resync=lambda: resyncs.append(1),
                reauth_margin_s=88.0,  # a 90 s token: reauth about 2 s after connecting
            )
            task = asyncio.ensure_future(stream.run())
            await until(lambda: stream.connected, 10, what="connection")
            tab = await terminal.smarttab.open_tab(table="S1")
            await until(
                lambda: any(e["event"] == "tab.opened" for e in events), 10, what="live event"
            )
            assert resyncs == [1]  # first connection without a position: fetch state over REST
            await until(lambda: stream.reauths >= 1, 10, what="reauth")
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            last = stream.last_seq
            assert last is not None
            # offline: two changes happen; a new session from last_seq replays exactly them
            tab = await terminal.smarttab.add_item(
                tab, name="Tea", unit_price=300, quantity=1, tax_category="standard"
            )
            await terminal.smarttab.add_item(
                tab, name="Cake", unit_price=400, quantity=1, tax_category="reduced"
            )
            replayed: list[dict[str, Any]] = []
            resumed = SmarttabStream(
                terminal.config.urls.smarttab,
                terminal.identity.access_token,
                on_event=replayed.append,
                last_seq=last,
            )
            task = asyncio.ensure_future(resumed.run())
            await until(lambda: len(replayed) >= 2, 10, what="replay")
            await asyncio.sleep(0.3)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            assert [e["seq"] for e in replayed] == [last + 1, last + 2]
            assert [e["event"] for e in replayed] == ["tab.item_added", "tab.item_added"]

    asyncio.run(scenario())
