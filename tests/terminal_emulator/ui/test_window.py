"""The window on a real (virtual) display: a sale clicked through with touch events.

``drive_window.py`` runs the Kivy app in a subprocess (Kivy's window, event loop and global
state do not belong in the pytest process) on a scripted presenter, taps the real widgets and
writes what the presenter received, the screens shown and screenshots; this test runs it under
Xvfb and checks its report. Screenshots land in ``<basetemp>/…/window/NN-<step>.png``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
VISA = "4242424242424242"
PIN_CARD = "4000000000001000"


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_sale_is_clicked_through_on_the_window(x_display: str, tmp_path: Path) -> None:
    out = tmp_path / "window"
    env = {
        **os.environ,
        "DISPLAY": x_display,
        "KIVY_NO_ARGS": "1",
        "KIVY_HOME": str(tmp_path / "kivy-home"),  # Kivy's config and logs, not ~/.kivy
        "KIVY_NO_CONSOLELOG": "0",
    }
    process = subprocess.run(
        [sys.executable, "-m", "tests.terminal_emulator.ui.drive_window", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    report_path = out / "result.json"
    assert report_path.exists(), f"no report (exit {process.returncode}):\n{process.stderr[-4000:]}"
    report = json.loads(report_path.read_text())
    assert report["ok"], f"{report['error']}\n--- stderr ---\n{process.stderr[-3000:]}"
    assert process.returncode == 0

    # What the presenter received from the widgets...
    assert report["pressed"] == ["charge", "done", "charge", "done", "charge", "cancel"]
    assert ["amount", "1200"] in report["typed"]
    assert ["amount", "3500"] in report["typed"]
    assert report["cards_presented"] == [["tap", VISA], ["insert", PIN_CARD]]
    assert report["pins"] == ["1234"]
    # ...and the screens the window showed, in order (repeats collapsed).
    shown = [
        name for i, name in enumerate(report["screens"]) if report["screens"][i - 1 : i] != [name]
    ]
    assert shown == [
        "amount_entry", "present_card", "processing", "result",
        "amount_entry", "present_card", "pin_entry", "processing", "result",
        "amount_entry", "present_card", "amount_entry",
    ]  # fmt: skip
    for name in report["screenshots"]:
        png = out / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.stat().st_size > 10_000, f"{name} looks empty"
    assert "03-present_card.png" in report["screenshots"]
