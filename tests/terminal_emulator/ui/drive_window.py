"""Runs the real window on a :class:`ScriptedPaymentPresenter` and clicks through a sale with
touch events on the real widgets; run in a subprocess by ``test_window.py`` (Kivy's window and
event loop are process-global, so they stay out of the pytest process).

``python -m tests.terminal_emulator.ui.drive_window OUT_DIR`` needs a display (``DISPLAY``, e.g.
Xvfb). It writes ``OUT_DIR/result.json`` (what the presenter received, what the window showed,
the failure if any) and one screenshot per step, ``OUT_DIR/NN-<step>.png``; exit status 0 when
every step passed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tests.terminal_emulator.ui.payment_flow import PIN, PIN_CARD, ScriptedPaymentPresenter
from tests.terminal_emulator.ui.window_driver import VISA, Step, WindowDriver


class Driver(WindowDriver):
    def __init__(self, out_dir: Path) -> None:
        self.presenter: ScriptedPaymentPresenter = ScriptedPaymentPresenter()
        super().__init__(out_dir, self.presenter, title="MPAC SmartPOS (test)")

    # -- the scenario ----------------------------------------------------------------------

    def script(self) -> Step:
        p = self.presenter
        yield from self.until_shown("amount_entry")
        yield 0.3
        self.screenshot("amount_entry")

        # A sale of ¥1,200 paid with a tapped Visa.
        self.tap("txt_amount")
        yield lambda: bool(self.view.widget("txt_amount").focus)
        self.type("1200")
        yield lambda: p.screen.fields.get("amount") == "1200"
        assert p.typed[-1] == ("amount", "1200"), p.typed
        assert self.text("lbl_preview_amount") == "¥1,200", self.text("lbl_preview_amount")
        yield 0.2
        self.screenshot("amount_typed")
        self.tap("btn_charge")
        yield from self.until_shown("present_card")
        assert p.pressed == ["charge"], p.pressed
        assert self.text("lbl_title") == "Present card"
        assert self.text("lbl_line_0") == "Amount  ¥1,200", self.text("lbl_line_0")
        assert self.view.widget("btn_reader_tap").disabled  # no card chosen yet
        self.tap(f"btn_card_{VISA}")
        yield lambda: self.view.selected_pan == VISA
        yield lambda: not self.view.widget("btn_reader_tap").disabled
        yield 0.3
        self.screenshot("present_card")
        self.tap("btn_reader_tap")
        yield lambda: p.cards_presented == [("tap", VISA)]
        yield from self.until_shown("result")  # processing, then the approval from another thread
        assert "processing" in [s.name for s in self.view.rendered]
        assert self.text("lbl_title") == "Approved"
        assert self.text("lbl_line_0") == "¥1,200"
        yield 0.3
        self.screenshot("result_approved")
        self.tap("btn_done")
        yield from self.until_shown("amount_entry")

        # ¥3,500 with the PIN card inserted, the PIN on the pad.
        self.tap("txt_amount")
        yield lambda: bool(self.view.widget("txt_amount").focus)
        self.type("3500")
        yield lambda: p.screen.fields.get("amount") == "3500"
        self.tap("btn_charge")
        yield from self.until_shown("present_card")
        self.tap(f"btn_card_{PIN_CARD}")
        yield lambda: self.view.selected_pan == PIN_CARD
        self.tap("btn_reader_insert")
        yield from self.until_shown("pin_entry")
        assert p.cards_presented[-1] == ("insert", PIN_CARD), p.cards_presented
        for key in ("9", "clear", *PIN):
            self.tap(f"btn_pin_{key}")
        yield 0.2
        assert self.text("lbl_pin") == "••••", self.text("lbl_pin")
        self.screenshot("pin_entry")
        self.tap("btn_pin_ok")
        yield from self.until_shown("result")
        assert p.pins == [PIN], p.pins
        assert self.text("lbl_line_0") == "¥3,500"
        self.tap("btn_done")
        yield from self.until_shown("amount_entry")

        # The reader's Cancel is the screen's cancel.
        self.tap("btn_charge")  # the amount field is empty again: a ¥0 charge screen
        yield from self.until_shown("present_card")
        self.tap("btn_reader_cancel")
        yield from self.until_shown("amount_entry")
        assert p.pressed[-1] == "cancel", p.pressed

    def report(self) -> dict[str, Any]:
        return {
            "pressed": self.presenter.pressed,
            "typed": self.presenter.typed,
            "cards_presented": self.presenter.cards_presented,
            "pins": self.presenter.pins,
        }


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    return 0 if Driver(Path(argv[0])).run() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
