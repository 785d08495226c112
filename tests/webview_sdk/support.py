"""Drivers of the WebView SDK's browser tests: the demo page, the requests a page sends, what it
logs, and the terminal whose payment tokens the page uses."""

from __future__ import annotations

import concurrent.futures
import http.server
import os
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from backend.core.settings import Settings
from tests.backend.pgw.payment_tokens.support import Shop, db_execute
from tests.support.pgw import paying_terminal
from tests.support.portal import Tenant

if TYPE_CHECKING:
    from playwright.sync_api import ConsoleMessage, Locator, Page, Request

CHROMIUM = Path(os.environ.get("MPAC_CHROMIUM", "/usr/bin/chromium"))
DEMO_PATH = "/demo/webview/"
# Every card number the SDK's test-card picker offers: none may ever reach the console.
TEST_PANS = (
    "4242424242424242",
    "5555555555554444",
    "3566002020360505",
    "4000000000000002",
    "4000000000009995",
    "4000000000001026",
)

__all__ = ["CHROMIUM", "ConsoleLog", "DemoPage", "MerchantSite", "RequestLog", "Shop", "new_shop"]


def new_shop(settings: Settings, portal: httpx.Client, pgw: httpx.Client, tenant: Tenant) -> Shop:
    """A freshly enrolled terminal of ``tenant`` that pgw knows, issuing payment tokens."""
    return Shop(paying_terminal(settings, portal, tenant), portal, pgw)


def issue_token(shop: Shop, **body: Any) -> dict[str, Any]:
    """``POST /v1/payment-tokens`` with the terminal's device token (default: ¥1,200)."""
    return shop.issue(**({"amount": 1200, "currency": "JPY"} | body))


def payments_of(shop: Shop) -> list[dict[str, Any]]:
    """Every payment of the shop's terminal at pgw, newest first (the terminal's own view)."""
    response = shop.pgw.get(
        "/v1/payments", params={"terminal_id": shop.terminal_id}, headers=shop.device_headers()
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def expire_token(settings: Settings, token_id: str) -> None:
    """Moves the token's expiry into the past: what five minutes of waiting would do.

    Run on a thread of its own: Playwright's sync API keeps an event loop on this one.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(
            db_execute,
            settings,
            "UPDATE pgw.payment_tokens SET expires_at = now() - interval '1 second' WHERE id = $1",
            uuid.UUID(token_id),
        ).result()


@dataclass
class ConsoleLog:
    """What a page printed (console and uncaught errors) and the secrets it must not print."""

    messages: list[str] = field(default_factory=list)
    secrets: set[str] = field(default_factory=lambda: set(TEST_PANS))

    def attach(self, page: Page) -> None:
        def on_console(message: ConsoleMessage) -> None:
            self.messages.append(f"{message.type}: {message.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda error: self.messages.append(f"pageerror: {error}"))

    def assert_no_secrets(self) -> None:
        leaked = [
            secret for secret in self.secrets if any(secret in message for message in self.messages)
        ]
        assert not leaked, f"the page logged {len(leaked)} secret(s) (a token or a card number)"


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class RequestLog:
    """The requests a page sent to pgw (as the browser issued them)."""

    requests: list[SeenRequest] = field(default_factory=list)

    def attach(self, page: Page) -> None:
        def on_request(request: Request) -> None:
            self.requests.append(
                SeenRequest(request.method, urlsplit(request.url).path, dict(request.headers))
            )

        page.on("request", on_request)

    def matching(self, method: str, path: str) -> list[SeenRequest]:
        return [seen for seen in self.requests if seen.method == method and seen.path == path]

    def payment_creations(self) -> list[SeenRequest]:
        return self.matching("POST", "/v1/payments")


@dataclass
class DemoPage:
    """The Ramen Ichiban demo page pgw serves at /demo/webview/ (webview_sdk/demo)."""

    page: Page
    pgw_url: str
    console: ConsoleLog
    log: RequestLog = field(default_factory=RequestLog)

    def __post_init__(self) -> None:
        self.log.attach(self.page)

    def open(self, token: str, *, ready: bool = True) -> None:
        self.console.secrets.add(token)
        self.page.goto(f"{self.pgw_url}{DEMO_PATH}#token={token}")
        if ready:
            self.expect_state("ready")

    @property
    def status(self) -> Locator:
        return self.page.locator("#status")

    def expect_state(self, state: str, *, timeout_ms: float = 15_000) -> None:
        from playwright.sync_api import expect

        expect(self.status).to_have_attribute("data-state", state, timeout=timeout_ms)

    def pay_by_card(self, test_card: str) -> None:
        """Pay by card, then pick ``test_card`` in the SDK's test-card picker."""
        self.page.click("#pay-card")
        self.page.click(f'[data-mpac-test-card="{test_card}"]')


class MerchantSite:
    """A merchant's own web server on another origin (``http://127.0.0.1:<port>``) serving
    fixed pages from memory, for pages that load the SDK from pgw across origins."""

    def __init__(self, pages: dict[str, str]) -> None:
        files = {path: body.encode() for path, body in pages.items()}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = files.get(urlsplit(self.path).path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> MerchantSite:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
