"""What the window drivers share: the real window on a presenter, input as a user gives it
(touch events on the real widgets, text typed on the keyboard), screenshots, and a stepper
that runs a scenario on Kivy's clock. Imported by the driver subprocesses only (it imports
Kivy); ``drive_window.py`` and ``drive_real_terminal.py`` subclass :class:`WindowDriver`.
"""

from __future__ import annotations

import contextlib
import json
import traceback
from collections.abc import Callable, Generator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from kivy.base import EventLoop
from kivy.clock import Clock
from kivy.tests.common import UnitTestTouch

from terminal_emulator.presentation import Screen, TerminalPresenter
from terminal_emulator.ui.app import TerminalApp, TerminalView

VISA = "4242424242424242"

# A step yields seconds to wait, or a condition to wait for.
Step = Generator[float | Callable[[], bool], None, None]


class WindowDriver:
    """Runs :meth:`script` on the window of ``presenter``; :meth:`run` returns when it ends
    and writes ``out_dir/result.json`` (``ok``, ``error``, the screens shown, the screenshots
    and :meth:`report`'s entries)."""

    step_timeout_s = 10.0

    def __init__(self, out_dir: Path, presenter: TerminalPresenter, *, title: str) -> None:
        self.out = out_dir
        self.presenter = presenter
        self.app = TerminalApp(presenter, title=title)
        self.shots: list[str] = []
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

    def current(self) -> Screen | None:
        return self.view.rendered[-1] if self.view.rendered else None

    def shows(self, name: str, app: str | None = None) -> Callable[[], bool]:
        def shown() -> bool:
            screen = self.current()
            return (
                self.view.screen_name == name
                and screen is not None
                and screen.name == name
                and (app is None or screen.app == app)
            )

        return shown

    def until_shown(self, name: str, app: str | None = None) -> Step:
        """Waits for the window to render screen ``name`` (of ``app``), then for a layout pass
        (new widgets have no place before one)."""
        yield self.shows(name, app)
        yield 0.15

    def screenshot(self, step: str) -> None:
        path = self.out / f"{len(self.shots) + 1:02d}-{step}.png"
        self.app.screenshot(path)
        self.shots.append(path.name)

    # -- what a subclass gives ------------------------------------------------------------------

    def script(self) -> Step:
        raise NotImplementedError

    def report(self) -> dict[str, Any]:
        """Entries of ``result.json`` besides the common ones."""
        return {}

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
            self._deadline = now + self.step_timeout_s
        else:
            self._wait_until = now + step

    def _last(self) -> str:
        screen = self.current()
        return f"{screen.app}/{screen.name} {screen.lines}" if screen is not None else "-"

    def finish(self) -> None:
        Clock.unschedule(self.tick)
        if self.error is not None:
            # The failure itself is what gets reported, with or without its picture.
            with contextlib.suppress(Exception):
                self.screenshot("failure")
        result: dict[str, Any] = {"ok": self.error is None, "error": self.error}
        try:
            result.update(self.report())
        except Exception:
            result["ok"] = False
            result["error"] = (self.error or "") + traceback.format_exc()
        last = self.current()
        result.update(
            screens=[s.name for s in self.view.rendered],
            screenshots=self.shots,
            last_screen=asdict(last) if last is not None else None,
        )
        (self.out / "result.json").write_text(json.dumps(result, indent=2, ensure_ascii=False))
        self.app.stop()

    def run(self) -> bool:
        self.out.mkdir(parents=True, exist_ok=True)
        Clock.schedule_interval(self.tick, 1 / 30)
        self.app.run()
        return self.error is None
