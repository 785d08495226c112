"""The window on a REAL terminal against the running platform: a ¥1,200 Visa tap clicked
through with touch events, and the payment it made, captured in pgw.

The test registers a terminal at the portal (activation code) of a fresh tenant;
``drive_real_terminal.py``, in a subprocess on the Xvfb display, builds the
``EmulatedTerminal``, enrolls it, opens the window on its own presenter and clicks the sale
through. In between, the test waits until pgw has the portal's sync of the enrolled terminal
(and says go). Screenshots land in ``<basetemp>/…/window/NN-<step>.png``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from backend.core.authz import Role
from backend.core.settings import Settings
from backend.runtime.server import PlatformThread
from tests.support.pgw import wait_for_directory
from tests.support.portal import build_tenant, register_terminal

ROOT = Path(__file__).resolve().parents[3]


def _wait_for_file(path: Path, process: subprocess.Popen[str], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_sale_is_clicked_through_the_window_of_a_real_terminal(
    x_display: str, platform: PlatformThread, test_settings: Settings, tmp_path: Path
) -> None:
    with httpx.Client(base_url=platform.portal_url, timeout=10) as portal:
        tenant = build_tenant(test_settings, portal)
        terminal_id, serial, code = register_terminal(portal, tenant.admin, tenant.store_a_id)

    out = tmp_path / "window"
    env = {
        **os.environ,
        "DISPLAY": x_display,
        "KIVY_NO_ARGS": "1",
        "KIVY_HOME": str(tmp_path / "kivy-home"),
        "KIVY_NO_CONSOLELOG": "0",
        "MPAC_UI_PORTAL_URL": platform.portal_url,
        "MPAC_UI_PGW_URL": platform.pgw_url,
        "MPAC_UI_SMARTTAB_URL": platform.smarttab_url,
        "MPAC_UI_SERIAL": serial,
        "MPAC_UI_ACTIVATION_CODE": code,
    }
    log = (tmp_path / "driver.log").open("w+")
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.terminal_emulator.ui.drive_real_terminal", str(out)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # The terminal enrolled; once pgw knows it, the window may take payments.
        if _wait_for_file(out / "enrolled.json", process, 60):
            enrolled = json.loads((out / "enrolled.json").read_text())
            assert enrolled["terminal_id"] == terminal_id
            wait_for_directory(
                test_settings, store_id=enrolled["store_id"], terminal_id=terminal_id
            )
            (out / "go").touch()
        process.wait(timeout=150)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.seek(0)
        output = log.read()
        log.close()

    report_path = out / "result.json"
    assert report_path.exists(), f"no report (exit {process.returncode}):\n{output[-4000:]}"
    report = json.loads(report_path.read_text())
    assert report["ok"], f"{report['error']}\n--- driver output ---\n{output[-3000:]}"
    assert process.returncode == 0

    # The screens the window showed, in order (repeats collapsed; "processing" may be too
    # short-lived to be drawn).
    screens = report["apps_screens"]
    shown = [
        name
        for i, name in enumerate(screens)
        if screens[i - 1 : i] != [name] and name != "creditcard/processing"
    ]
    assert shown == ["business/amount_entry", "creditcard/present_card", "business/result"], screens
    assert report["last_screen"]["title"] == "Approved"
    assert report["serial"] == serial
    assert report["terminal_id"] == terminal_id
    payment_id = report["payment_id_shown"]
    assert payment_id
    assert payment_id == report["payment_id_returned"]
    assert report["screenshots"] == [
        "01-amount_entry.png", "02-amount_typed.png", "03-present_card.png",
        "04-result_approved.png",
    ]  # fmt: skip
    for name in report["screenshots"]:
        png = out / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.stat().st_size > 10_000, f"{name} looks empty"

    # pgw: exactly one payment of this terminal, the one shown, captured for ¥1,200.
    manager = tenant.user(Role.STORE_MANAGER)
    with httpx.Client(base_url=platform.pgw_url, timeout=10) as pgw:
        page = pgw.get("/v1/payments", params={"terminal_id": terminal_id}, headers=manager.headers)
    assert page.status_code == 200, page.text
    payments = page.json()["items"]
    assert [(p["id"], p["status"], p["amount"], p["currency"]) for p in payments] == [
        (payment_id, "captured", 1200, "JPY")
    ], payments
    assert payments[0]["amount_captured"] == 1200
    assert payments[0]["terminal_id"] == terminal_id
