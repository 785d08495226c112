"""Runs the real window on a REAL :class:`EmulatedTerminal` (its own presenter, the platform
behind it) and clicks a ¥1,200 Visa tap through it; run in a subprocess by
``test_window_real_terminal.py``.

``python -m tests.terminal_emulator.ui.drive_real_terminal OUT_DIR`` needs a display
(``DISPLAY``) and, in the environment, the platform and the registered terminal:
``MPAC_UI_PORTAL_URL``, ``MPAC_UI_PGW_URL``, ``MPAC_UI_SMARTTAB_URL``, ``MPAC_UI_SERIAL``,
``MPAC_UI_ACTIVATION_CODE``.

The terminal runs on its own event loop in a thread (as ``mpac terminal`` does) and enrolls
with the activation code. Then the driver writes ``OUT_DIR/enrolled.json`` (terminal and store
id) and waits for the test to create ``OUT_DIR/go`` (once pgw knows the terminal) before it
opens the window. It writes ``OUT_DIR/result.json`` (the screens shown, the payment id shown,
the failure if any) and a screenshot per step, ``OUT_DIR/NN-<step>.png``; exit status 0 when
every step passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from terminal_emulator.apps.common import AppConfig
from terminal_emulator.backend_client import BackendUrls
from terminal_emulator.hardware import SimulatedCardReader
from terminal_emulator.terminal import EmulatedTerminal, TerminalConfig
from tests.terminal_emulator.ui.window_driver import VISA, Step, WindowDriver

GO_TIMEOUT_S = 60.0


class RealTerminalDriver(WindowDriver):
    step_timeout_s = 30.0  # a real payment goes through pgw and the provider

    def __init__(self, out_dir: Path, terminal: EmulatedTerminal) -> None:
        self.terminal = terminal
        self.payment_id: str | None = None
        super().__init__(
            out_dir, terminal.presenter, title=f"MPAC SmartPOS {terminal.serial} (test)"
        )

    def script(self) -> Step:
        yield from self.until_shown("amount_entry", "business")
        yield 0.3
        self.screenshot("amount_entry")

        self.tap("txt_amount")
        yield lambda: bool(self.view.widget("txt_amount").focus)
        self.type("1200")
        # The Business App got the text: its next screen carries it back.
        yield lambda: (s := self.current()) is not None and s.fields.get("amount") == "1200"
        assert self.text("lbl_preview_amount") == "¥1,200", self.text("lbl_preview_amount")
        yield 0.2
        self.screenshot("amount_typed")

        self.tap("btn_charge")
        yield from self.until_shown("present_card", "creditcard")
        assert self.text("lbl_title") == "Present card", self.text("lbl_title")
        card_screen = self.current()
        assert card_screen is not None
        assert "Amount ¥1,200" in card_screen.lines, card_screen.lines
        assert self.view.widget("btn_reader_tap").disabled  # no card chosen yet
        self.tap(f"btn_card_{VISA}")
        yield lambda: self.view.selected_pan == VISA
        yield lambda: not self.view.widget("btn_reader_tap").disabled
        yield 0.3
        self.screenshot("present_card")

        self.tap("btn_reader_tap")
        yield from self.until_shown("result", "business")
        assert self.text("lbl_title") == "Approved", self.current()
        result = self.current()
        assert result is not None
        assert "Amount ¥1,200" in result.lines, result.lines
        shown_ids = [line.split(" ", 1)[1] for line in result.lines if line.startswith("Payment ")]
        assert len(shown_ids) == 1, result.lines
        self.payment_id = shown_ids[0]
        yield 0.3
        self.screenshot("result_approved")

    def report(self) -> dict[str, Any]:
        activity = self.terminal.business_activity()
        returned = getattr(getattr(activity, "result", None), "payment_id", None)
        return {
            "apps_screens": [f"{s.app}/{s.name}" for s in self.view.rendered],
            "payment_id_shown": self.payment_id,
            "payment_id_returned": returned,
            "serial": self.terminal.serial,
            "terminal_id": self.terminal.identity.terminal_id,
        }


def _config(out: Path) -> TerminalConfig:
    env = os.environ
    return TerminalConfig(
        serial=env["MPAC_UI_SERIAL"],
        state_dir=out / "terminal-state",
        urls=BackendUrls(
            portal=env["MPAC_UI_PORTAL_URL"],
            pgw=env["MPAC_UI_PGW_URL"],
            smarttab=env["MPAC_UI_SMARTTAB_URL"],
        ),
        activation_code=env["MPAC_UI_ACTIVATION_CODE"],
        card_reader=SimulatedCardReader(),
        apps=AppConfig(processing_wait_s=8.0, stream=False),
    )


def _wait_for_go(out: Path) -> None:
    deadline = time.monotonic() + GO_TIMEOUT_S
    while not (out / "go").exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the test did not say go (pgw never learnt the terminal?)")
        time.sleep(0.05)


def run(out: Path) -> bool:
    out.mkdir(parents=True, exist_ok=True)
    terminal = EmulatedTerminal(_config(out))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="terminal", daemon=True)
    thread.start()
    try:
        try:
            asyncio.run_coroutine_threadsafe(terminal.start(), loop).result(60)
            enrollment = terminal.identity.enrollment
            assert enrollment is not None, "the terminal did not enroll"
            (out / "enrolled.json").write_text(
                json.dumps({"terminal_id": enrollment.terminal_id, "store_id": enrollment.store_id})
            )
            _wait_for_go(out)
        except Exception:
            error = traceback.format_exc()
            (out / "result.json").write_text(json.dumps({"ok": False, "error": error}))
            return False
        return RealTerminalDriver(out, terminal).run()
    finally:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(terminal.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    return 0 if run(Path(argv[0])) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
