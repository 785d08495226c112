"""The real WebView: headless Chromium through Playwright on its own thread.

First the adapter alone, on a page served by a local HTTP server (the native object exists
before the page's scripts, an answer sent before the SDK exists is delivered when it appears,
subframes cannot use the bridge, the device's loop keeps running while Chromium works). Then
the whole path on a real enrolled terminal: the demo merchant page served by the session's pgw
opens in the Business App's WebViewActivity, "Pay by card" goes through the bridge to the Credit
Card App, a test card is presented on the terminal's simulated reader, the page shows paid and
pgw has one captured payment.

Skipped, saying why, without ``/usr/bin/chromium`` (``apt-get install chromium``) or the
``playwright`` package. Screenshots are kept in the test's tmp dir, and copied to
``$MPAC_ARTIFACTS_DIR/screenshots/`` when that is set (as ``tests/webview_sdk`` does).
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from backend.runtime.server import PlatformThread
from terminal_emulator.apps.business import WebViewActivity
from terminal_emulator.contract import Action, ErrorCode, TransactionResult
from terminal_emulator.hardware import SimulatedCardReader
from terminal_emulator.shell import executor_for
from terminal_emulator.terminal import EmulatedTerminal
from terminal_emulator.webview import BridgeCall, NativeBridge, WebViewError
from terminal_emulator.webview.chromium import (
    DEFAULT_CHROMIUM,
    ChromiumWebViewEngine,
    ChromiumWebViewHost,
    playwright_available,
)
from tests.terminal_emulator.apps.conftest import Registered
from tests.terminal_emulator.apps.helpers import until
from tests.terminal_emulator.shell.helpers import sh

pytestmark = [
    pytest.mark.skipif(
        not Path(DEFAULT_CHROMIUM).exists(),
        reason=f"Chromium is not installed at {DEFAULT_CHROMIUM} (apt-get install chromium)",
    ),
    pytest.mark.skipif(
        not playwright_available(), reason="the playwright package is not installed"
    ),
]

MakeTerminal = Callable[..., tuple[EmulatedTerminal, Registered]]
APPROVED = "4242424242424242"


class Shots:
    """Screenshots of one test: under its tmp dir, copied to ``$MPAC_ARTIFACTS_DIR``."""

    def __init__(self, directory: Path, test_name: str) -> None:
        self.directory = directory
        self.prefix = re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name).strip("_")[:100]
        self.taken: list[Path] = []

    def path(self, name: str) -> Path:
        path = self.directory / f"{name}.png"
        self.taken.append(path)
        return path

    def keep(self) -> None:
        artifacts = os.environ.get("MPAC_ARTIFACTS_DIR")
        for path in self.taken:
            if not path.exists():
                continue
            if artifacts:
                target = Path(artifacts) / "screenshots" / f"{self.prefix}-{path.name}"
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
                path = target
            print(f"screenshot: {path}")


@pytest.fixture
def shots(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Shots]:
    taken = Shots(tmp_path / "webview", request.node.name)
    yield taken
    taken.keep()


# -- the adapter on a local page ----------------------------------------------------------------

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Bridge test</title>
<script>
  window.seen = {
    nativeType: typeof window.MpacNative,
    requestType: typeof (window.MpacNative && window.MpacNative.request),
  };
  window.answers = [];
  // the SDK is not loaded yet: the answer must wait for it
  window.seen.returned = String(window.MpacNative.request(JSON.stringify(
    {id: "early", method: "query", params: {request_id: "R-1"}})));
  window.MpacNative.request("this is not JSON");
  try { window.MpacNative = null; } catch (error) { /* strict: refused */ }
  window.seen.afterOverwrite = typeof window.MpacNative;
  setTimeout(function () {
    window.MpacPay = { _nativeResult: function (id, json) {
      window.answers.push([id, JSON.parse(json)]); } };
  }, 400);
</script></head>
<body><h1>Bridge test</h1><iframe src="/frame.html"></iframe></body></html>
"""

FRAME = """<!doctype html><title>frame</title><script>
  window.MpacNative.request(JSON.stringify({id: "from-frame", method: "query", params: {}}));
</script>"""


class _Pages(BaseHTTPRequestHandler):
    pages = {"/page.html": PAGE, "/frame.html": FRAME}

    def do_GET(self) -> None:
        body = self.pages.get(self.path.split("?")[0])
        if body is None:
            self.send_error(404)
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def local_site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_chromium_view_injects_the_bridge_and_never_blocks_the_loop(
    local_site: str, shots: Shots
) -> None:
    async def scenario() -> None:
        engine = ChromiumWebViewEngine()
        assert not engine.started  # nothing runs until a view is opened
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticker = asyncio.get_running_loop().create_task(tick())
        try:
            host = await engine.open()
            assert engine.started
            calls: list[BridgeCall] = []
            loop = asyncio.get_running_loop()

            def on_call(call: BridgeCall) -> None:
                assert asyncio.get_running_loop() is loop  # app code runs on the device loop
                calls.append(call)
                bridge.answer_soon(
                    call.call_id,
                    TransactionResult.failure(
                        ErrorCode.UNKNOWN_REQUEST, request_id="R-1", action=Action.QUERY
                    ),
                )

            bridge = NativeBridge(host, local_site, on_call)
            await bridge.attach()
            await host.load(f"{local_site}/page.html#token=pt_secret")
            assert ticks >= 10  # the loop ran while Chromium started and loaded
            assert await host.title() == "Bridge test"
            seen = await host.evaluate("window.seen")
            assert seen == {
                "nativeType": "object",
                "requestType": "function",
                "returned": "undefined",
                "afterOverwrite": "object",
            }
            await until(lambda: calls, what="the page's call")
            answers = await _wait_for(host, "window.answers.length ? window.answers : null")
            assert answers[0][0] == "early"
            assert answers[0][1]["status"] == "not_found"
            assert answers[0][1]["error_code"] == "UNKNOWN_REQUEST"
            assert [outcome for _id, _r, outcome in bridge.answers] == ["queued"]
            # the iframe's call never reached the app; the bad JSON was refused
            assert [call.call_id for call in calls] == ["early"]
            assert [error.message for error in bridge.refused] == ["message is not JSON"]

            path = shots.path("bridge-page")
            await host.screenshot(path)
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

            with pytest.raises(WebViewError, match="HTTP 404"):
                await host.load(f"{local_site}/missing.html")
            with socket.socket() as probe:  # a port nobody listens on
                probe.bind(("127.0.0.1", 0))
                closed_port = probe.getsockname()[1]
            with pytest.raises(WebViewError) as refused:
                await host.load(f"http://127.0.0.1:{closed_port}/#token=pt_secret")
            assert "ERR_CONNECTION_REFUSED" in str(refused.value)
            assert "pt_secret" not in str(refused.value)  # the fragment is not repeated
            await host.close()
            with pytest.raises(WebViewError, match="closed"):
                await host.evaluate("1")
        finally:
            ticker.cancel()
            thread = engine._thread
            await engine.close()
            assert not engine.started
            assert thread is None or not thread.thread.is_alive()

    asyncio.run(scenario())


async def _wait_for(host: ChromiumWebViewHost, expression: str, timeout_s: float = 10) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        value = await host.evaluate(expression)
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {expression}")
        await asyncio.sleep(0.05)


# -- the demo page on a real terminal ------------------------------------------------------------


def test_demo_page_pays_by_card_on_the_terminal(
    make_terminal: MakeTerminal, platform: PlatformThread, shots: Shots
) -> None:
    async def scenario() -> None:
        reader = SimulatedCardReader()
        engine = ChromiumWebViewEngine()
        terminal, registered = make_terminal(card_reader=reader, webview=engine)
        async with terminal:
            assert not engine.started  # the terminal started without a browser
            url = f"{platform.pgw_url}/demo/webview/"
            out = await sh(
                executor_for(terminal),
                f"am start -W -n jp.mpac.business/.WebViewActivity -d {shlex.quote(url)}",
            )
            assert out.status == 0, out
            activity = terminal.device.am.foreground_activity
            assert isinstance(activity, WebViewActivity)
            await until(lambda: activity.page_state != "loading", 30, what="the page")
            assert activity.page_state == "ready", activity.message
            host = activity.host
            assert isinstance(host, ChromiumWebViewHost)
            screen = await terminal.presenter.wait_for("webview")
            assert screen.title == "Ramen Ichiban — order and pay"
            assert screen.lines[0] == url

            await host.with_page(
                lambda page: page.locator('#status[data-state="ready"]').wait_for(timeout=15_000)
            )
            # on the terminal the SDK uses the bridge: no test-card picker
            assert await host.evaluate("document.getElementById('test-mode').hidden") is True
            assert "#token=" not in await host.url()  # the page dropped it from the address
            await host.with_page(
                lambda page: page.get_by_role("button", name="Pay by card").click()
            )
            await asyncio.wait_for(reader.wait_for_prompt("card"), 15)
            card_screen = await terminal.presenter.wait_for("present_card")
            assert card_screen.app == "creditcard"
            assert any("¥1,200" in line for line in card_screen.lines), card_screen.lines
            await host.screenshot(shots.path("1-present-card"))

            reader.present_card("tap", APPROVED)
            await host.with_page(
                lambda page: page.locator('#status[data-state="paid"]').wait_for(timeout=30_000)
            )
            status = await host.evaluate(
                "({text: document.getElementById('status').textContent,"
                " paymentId: document.getElementById('status').dataset.paymentId})"
            )
            await host.screenshot(shots.path("2-paid"))
            assert "Paid ¥1,200" in status["text"]
            assert "4242" in status["text"]

            payments = await terminal.pgw.list_payments(
                terminal_id=str(terminal.identity.terminal_id)
            )
            assert len(payments) == 1, payments
            assert payments[0]["status"] == "captured"
            assert payments[0]["amount"] == 1200
            assert str(payments[0]["id"]) == status["paymentId"]
            assert payments[0]["terminal_id"] == registered.terminal_id
            assert (await terminal.presenter.wait_for("webview")).app == "business"
        assert not engine.started  # stopping the terminal closed the browser

    asyncio.run(scenario())


def test_demo_page_cancels_while_the_terminal_waits_for_the_card(
    make_terminal: MakeTerminal, platform: PlatformThread, shots: Shots
) -> None:
    async def scenario() -> None:
        reader = SimulatedCardReader()
        engine = ChromiumWebViewEngine()
        terminal, _ = make_terminal(card_reader=reader, webview=engine)
        async with terminal:
            url = f"{platform.pgw_url}/demo/webview/"
            await sh(
                executor_for(terminal),
                f"am start -n jp.mpac.business/.WebViewActivity -d {shlex.quote(url)} "
                "--el amount 900 --es currency JPY",
            )
            activity = terminal.device.am.foreground_activity
            assert isinstance(activity, WebViewActivity)
            await until(lambda: activity.page_state != "loading", 30, what="the page")
            host = activity.host
            assert isinstance(host, ChromiumWebViewHost)
            await host.with_page(
                lambda page: page.locator('#status[data-state="ready"]').wait_for(timeout=15_000)
            )
            # the terminal fixed the amount (the token's): the page charges ¥900, not its menu
            assert await host.evaluate("document.getElementById('total').textContent") == "¥900"
            await host.with_page(
                lambda page: page.get_by_role("button", name="Pay by card").click()
            )
            await asyncio.wait_for(reader.wait_for_prompt("card"), 15)
            await host.with_page(lambda page: page.get_by_role("button", name="Cancel").click())
            await host.with_page(
                lambda page: page.locator('#status[data-state="cancelled"]').wait_for(
                    timeout=15_000
                )
            )
            await host.screenshot(shots.path("cancelled"))
            assert reader.state.waiting_for is None
            assert activity.payment is None
            assert [result.error_code for _call, result in activity.answers] == [
                ErrorCode.CUSTOMER_CANCELLED,
                ErrorCode.CUSTOMER_CANCELLED,  # the cancel call answers with the outcome too
            ]
            assert (
                await terminal.pgw.list_payments(terminal_id=str(terminal.identity.terminal_id))
                == []
            )

    asyncio.run(scenario())
