"""Drivers for the provider tests: a webhook receiver, extra provider servers, card requests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import asyncpg
import httpx

from backend.core.migrations import upgrade
from backend.core.settings import Settings
from backend.runtime.embedded import derive_settings
from backend.runtime.server import PlatformThread
from tests.helpers import asyncpg_dsn, free_ports

APPROVED_VISA = "4242424242424242"
CVV = "731"
PIN = "1234"


def reference(prefix: str = "pay") -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def api_headers(settings: Settings) -> dict[str, str]:
    return {"authorization": f"Bearer {settings.provider_api_key}"}


def card(pan: str = APPROVED_VISA, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"pan": pan, "exp_month": 12, "exp_year": 2034, "cvv": CVV}
    body.update(overrides)
    return body


def authorization_body(
    pan: str = APPROVED_VISA,
    *,
    amount: int = 1000,
    capture: bool = False,
    ref: str | None = None,
    card_overrides: dict[str, Any] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "reference": ref or reference(),
        "amount": amount,
        "currency": "JPY",
        "capture": capture,
        "entry_mode": "contactless",
        "card": card(pan, **(card_overrides or {})),
        "merchant_id": "mer_test",
        "store_id": "sto_test",
        "terminal_id": "trm_test",
    }
    body.update(overrides)
    return body


def qr_body(*, amount: int = 1500, ref: str | None = None, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "reference": ref or reference("qrpay"),
        "amount": amount,
        "currency": "JPY",
        "merchant_id": "mer_test",
        "store_id": "sto_test",
    }
    body.update(overrides)
    return body


def wait_for(condition: Callable[[], Any], *, timeout_s: float, what: str) -> Any:
    """Poll until ``condition()`` is truthy and return it; fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


# --------------------------------------------------------------------------------------------
# Webhook receiver


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    answered: int
    at: float

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed

    @property
    def reference(self) -> str | None:
        return self.event.get("data", {}).get("reference")


@dataclass
class WebhookReceiver:
    """A real HTTP endpoint recording every POST; it can be told to fail for a reference."""

    server: ThreadingHTTPServer
    deliveries: list[Delivery] = field(default_factory=list)
    # reference -> how many more deliveries mentioning it get a 500 (-1: always)
    failures: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/hooks"

    def fail(self, ref: str, times: int = -1) -> None:
        with self.lock:
            self.failures[ref] = times

    def _answer(self, body: bytes) -> int:
        try:
            data = json.loads(body).get("data", {})
        except ValueError:
            return 400
        keys = {data.get("reference"), data.get("authorization_id"), data.get("qr_payment_id")}
        with self.lock:
            for key in keys:
                remaining = self.failures.get(key) if key else None
                if remaining:
                    if remaining > 0:
                        self.failures[key] = remaining - 1
                    return 500
        return 200

    def record(self, headers: dict[str, str], body: bytes) -> int:
        status = self._answer(body)
        with self.lock:
            self.deliveries.append(Delivery(headers, body, status, time.monotonic()))
        return status

    def for_reference(self, ref: str) -> list[Delivery]:
        with self.lock:
            return [d for d in self.deliveries if d.reference == ref]

    def of_type(self, ref: str, type_: str) -> list[Delivery]:
        return [d for d in self.for_reference(ref) if d.event["type"] == type_]


@contextlib.contextmanager
def webhook_receiver() -> Iterator[WebhookReceiver]:
    holder: dict[str, WebhookReceiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            status = holder["receiver"].record(
                {k.lower(): v for k, v in self.headers.items()}, body
            )
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver = WebhookReceiver(server)
    holder["receiver"] = receiver
    thread = threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# --------------------------------------------------------------------------------------------
# Provider servers


@dataclass
class ProviderServer:
    settings: Settings
    thread: PlatformThread

    @property
    def url(self) -> str:
        return self.settings.provider_url

    def client(self, *, timeout_s: float = 10.0, authenticated: bool = True) -> httpx.Client:
        headers = api_headers(self.settings) if authenticated else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s)


@contextlib.contextmanager
def provider_server(base: Settings, **overrides: Any) -> Iterator[ProviderServer]:
    """A provider of its own (own port, own settings) on the session's database and Redis."""
    (port,) = free_ports(1)
    settings = derive_settings(base, provider_port=port, **overrides)
    upgrade("provider", settings.database_url)
    thread = PlatformThread(settings, services=["provider"]).start()
    try:
        yield ProviderServer(settings, thread)
    finally:
        thread.stop()


# --------------------------------------------------------------------------------------------
# Database


def db_fetch(settings: Settings, sql: str, *args: Any) -> list[dict[str, Any]]:
    """Rows of ``sql`` on the session's database (to check what the provider stored)."""

    async def fetch() -> list[dict[str, Any]]:
        connection = await asyncpg.connect(asyncpg_dsn(settings.database_url))
        try:
            return [dict(row) for row in await connection.fetch(sql, *args)]
        finally:
            await connection.close()

    return asyncio.run(fetch())
