"""Runs the real window on a :class:`ScriptedPaymentPresenter` and clicks through a sale with
touch events on the real widgets; run in a subprocess by ``test_window.py`` (Kivy's window and
event loop are process-global, so they stay out of the pytest process).

``python -m tests.terminal_emulator.ui.drive_window OUT_DIR`` needs a display (``DISPLAY``, e.g.
Xvfb). It writes ``OUT_DIR/result.json`` (what the presenter received, what the window showed,
the failure if any) and one screenshot per step, ``OUT_DIR/NN-<step>.png``; exit status 0 when
every step passed.
"""

from __future__ import annotations

import contextlib
import json
import sys
import traceback
from collections.abc import Callable, Generator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from kivy.base import EventLoop
from kivy.clock import Clock
from kivy.tests.common import UnitTestTouch

from terminal_emulator.ui.app import TerminalApp, TerminalView
from tests.terminal_emulator.ui.payment_flow import PIN, PIN_CARD, ScriptedPaymentPresenter

VISA = "4242424242424242"
STEP_TIMEOUT_S = 10.0

# A step yields seconds to wait, or a condition to wait for.
Step = Generator[float | Callable[[], bool], None, None]


class Driver:
    def __init__(self, out_dir: Path) -> None:
        self.out = out_dir
        self.presenter = ScriptedPaymentPresenter()
        self.app = TerminalApp(self.presenter, title="MPAC SmartPOS (test)")
        self.shots: list[str] = []
        self.shown: list[dict[str, Any]] = []
        self.error: str | None = None
        self._steps = self.script()
        self._waiting: Callable[[], bool] | None = None
        self._wait_until = 0.0
        self._deadline = 0.0

    @property
    def view(self) -> TerminalView:
        assert self.app.view is not None
        return self.app.view

    # -- input, as a user gives it -----------------------------------------------------------

    def tap(self, widget_id: str) -> None:
        """A touch down and up on the centre of the widget, through the window."""
        widget = self.view.widget(widget_id)
        assert widget.get_root_window() is not None, f"{widget_id} is not on the window"
        assert not widget.disabled, f"{widget_id} is disabled"
        x, y = widget.to_window(*widget.center)
        touch = UnitTestTouch(x, y)
        touch.touch_down()
        touch.touch_up()

    def type(self, text: str) -> None:
        """Text typed on the keyboard, into the focused input."""
        for char in text:
            EventLoop.window.dispatch("on_textinput", char)

    def text(self, widget_id: str) -> str:
        return str(self.view.widget(widget_id).text)

    def shows(self, name: str) -> Callable[[], bool]:
        return lambda: self.view.screen_name == name and self.view.rendered[-1].name == name

    def until_shown(self, name: str) -> Step:
        """Waits for the window to render screen ``name``, then for a layout pass (new
        widgets have no place before one)."""
        yield self.shows(name)
        yield 0.15

    def screenshot(self, step: str) -> None:
        path = self.out / f"{len(self.shots) + 1:02d}-{step}.png"
        self.app.screenshot(path)
        self.shots.append(path.name)

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

    # -- the stepper ---------------------------------------------------------------------------

    def tick(self, _dt: float) -> None:
        now = Clock.get_boottime()
        try:
            if self._waiting is not None:
                if not self._waiting():
                    if now > self._deadline:
                        raise TimeoutError(f"timed out waiting (last screen: {self._last()})")
                    return
                self._waiting = None
            if now < self._wait_until:
                return
            step = next(self._steps)
        except StopIteration:
            self.finish()
            return
        except Exception:
            self.error = traceback.format_exc()
            self.finish()
            return
        if callable(step):
            self._waiting = step
            self._deadline = now + STEP_TIMEOUT_S
        else:
            self._wait_until = now + step

    def _last(self) -> str:
        return self.view.rendered[-1].name if self.view.rendered else "-"

    def finish(self) -> None:
        Clock.unschedule(self.tick)
        if self.error is not None:
            # The failure itself is what gets reported, with or without its picture.
            with contextlib.suppress(Exception):
                self.screenshot("failure")
        result = {
            "ok": self.error is None,
            "error": self.error,
            "screens": [s.name for s in self.view.rendered],
            "pressed": self.presenter.pressed,
            "typed": self.presenter.typed,
            "cards_presented": self.presenter.cards_presented,
            "pins": self.presenter.pins,
            "screenshots": self.shots,
            "last_screen": asdict(self.view.rendered[-1]) if self.view.rendered else None,
        }
        (self.out / "result.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
        self.app.stop()

    def run(self) -> bool:
        self.out.mkdir(parents=True, exist_ok=True)
        Clock.schedule_interval(self.tick, 1 / 30)
        self.app.run()
        return self.error is None


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    return 0 if Driver(Path(argv[0])).run() else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
