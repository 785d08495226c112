"""Async HTTP clients the emulated apps use: portal (enrollment, tokens), pgw, smarttab, and the
smarttab real-time stream (WebSocket with reconnect, resume by ``last_seq`` and reauth).

Every call is non-blocking (httpx.AsyncClient, websockets' asyncio client), so many terminals
share one event loop. Problems come back as :class:`BackendError` (an HTTP answer with a
problem+json ``code``) or :class:`NetworkError` (no answer; ``maybe_sent`` tells whether the
request may have reached the server, which decides between "nothing happened" and "ask again").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from terminal_emulator.tracing import outgoing_traceparent

log = logging.getLogger(__name__)

TokenProvider = Callable[[], Awaitable[str]]

DEFAULT_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class BackendUrls:
    portal: str
    pgw: str
    smarttab: str

    @classmethod
    def from_settings(cls, settings: Any) -> BackendUrls:
        return cls(
            portal=settings.resolved_portal_url,
            pgw=settings.url_of("pgw"),
            smarttab=settings.url_of("smarttab"),
        )


class BackendError(Exception):
    """An HTTP error answer; ``code`` is the problem+json code (or OAuth ``error``)."""

    def __init__(self, status: int, code: str, detail: str = "", body: Any = None) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.body = body


class NetworkError(Exception):
    """No HTTP answer. ``maybe_sent``: the request may have reached the server (read timeout,
    connection dropped after sending) as opposed to certainly not (connection refused)."""

    def __init__(self, message: str, *, maybe_sent: bool) -> None:
        super().__init__(message)
        self.maybe_sent = maybe_sent


def _problem(response: httpx.Response) -> BackendError:
    try:
        body = response.json()
    except ValueError:
        body = None
    code = "http_error"
    detail = response.text[:200]
    if isinstance(body, dict):
        code = str(body.get("code") or body.get("error") or code)
        detail = str(body.get("detail") or body.get("error_description") or detail)
    return BackendError(response.status_code, code, detail, body)


async def _send(http: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> httpx.Response:
    try:
        return await http.request(method, url, **kwargs)
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
        raise NetworkError(f"{type(error).__name__}: {error}", maybe_sent=False) from error
    except httpx.TransportError as error:
        raise NetworkError(f"{type(error).__name__}: {error}", maybe_sent=True) from error


class PortalClient:
    """Enrollment and the token endpoint (no token needed)."""

    def __init__(self, base_url: str, http: httpx.AsyncClient) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http

    async def enroll(
        self, activation_code: str, public_jwk: dict[str, Any], serial: str
    ) -> dict[str, Any]:
        response = await _send(
            self.http,
            "POST",
            f"{self.base_url}/v1/devices/enroll",
            json={"activation_code": activation_code, "public_jwk": public_jwk, "serial": serial},
        )
        if response.status_code != 200:
            raise _problem(response)
        return dict(response.json())

    async def token(self, token_endpoint: str, form: dict[str, str]) -> dict[str, Any]:
        response = await _send(self.http, "POST", token_endpoint, data=form)
        if response.status_code != 200:
            raise _problem(response)
        return dict(response.json())


class _AuthorizedClient:
    def __init__(self, base_url: str, http: httpx.AsyncClient, token: TokenProvider) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http
        self._token = token

    async def _call(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        ok: tuple[int, ...] = (200, 201),
        **kwargs: Any,
    ) -> tuple[int, Any]:
        token = await self._token()
        all_headers = {"authorization": f"Bearer {token}", **(headers or {})}
        traceparent = outgoing_traceparent()
        if traceparent is not None:
            all_headers["traceparent"] = traceparent
        response = await _send(
            self.http, method, self.base_url + path, headers=all_headers, **kwargs
        )
        if response.status_code not in ok:
            raise _problem(response)
        return response.status_code, response.json() if response.content else None


class PgwClient(_AuthorizedClient):
    """pgw with the device token: payments, refunds, voids, settlement close."""

    async def create_payment(
        self, body: dict[str, Any], idempotency_key: str
    ) -> tuple[int, dict[str, Any]]:
        """201 (final or requires_action) or 202 (processing) with the payment."""
        status, payment = await self._call(
            "POST",
            "/v1/payments",
            json=body,
            headers={"Idempotency-Key": idempotency_key},
            ok=(200, 201, 202),
        )
        return status, dict(payment)

    async def get_payment(self, payment_id: str) -> dict[str, Any]:
        _, payment = await self._call("GET", f"/v1/payments/{payment_id}")
        return dict(payment)

    async def find_by_reference(self, reference: str) -> dict[str, Any] | None:
        _, page = await self._call(
            "GET", "/v1/payments", params={"reference": reference, "limit": "5"}
        )
        items = page.get("items", [])
        return dict(items[0]) if items else None

    async def list_payments(self, **params: str) -> list[dict[str, Any]]:
        _, page = await self._call("GET", "/v1/payments", params=params)
        return [dict(item) for item in page.get("items", [])]

    async def refund(
        self, payment_id: str, body: dict[str, Any], idempotency_key: str
    ) -> dict[str, Any]:
        _, result = await self._call(
            "POST",
            f"/v1/payments/{payment_id}/refunds",
            json=body,
            headers={"Idempotency-Key": idempotency_key},
        )
        return dict(result)

    async def void(self, payment_id: str, idempotency_key: str) -> dict[str, Any]:
        _, payment = await self._call(
            "POST", f"/v1/payments/{payment_id}/void", headers={"Idempotency-Key": idempotency_key}
        )
        return dict(payment)

    async def create_payment_token(
        self,
        *,
        amount: int | None = None,
        currency: str | None = None,
        reference: str | None = None,
    ) -> dict[str, Any]:
        """A 5-minute payment token for a WebView page (``docs/payment-tokens.md``):
        ``{"token": "pt_…", "expires_at", "expires_in", "amount", "currency", …}``."""
        body: dict[str, Any] = {}
        if amount is not None:
            body["amount"] = amount
        if currency is not None:
            body["currency"] = currency
        if reference is not None:
            body["reference"] = reference
        _, token = await self._call("POST", "/v1/payment-tokens", json=body, ok=(201,))
        return dict(token)

    async def close_settlement(self, body: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        _, batch = await self._call(
            "POST", "/v1/settlements/close", json=body, headers={"Idempotency-Key": idempotency_key}
        )
        return dict(batch)


class SmarttabClient(_AuthorizedClient):
    """smarttab's tab API with the device token (every change sends ``If-Match``)."""

    async def list_tabs(self, **params: str) -> list[dict[str, Any]]:
        tabs: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            query = {"limit": "100", **params, **({"after": cursor} if cursor else {})}
            _, page = await self._call("GET", "/v1/tabs", params=query)
            tabs += [dict(item) for item in page.get("items", [])]
            cursor = page.get("next_cursor")
            if not cursor:
                return tabs

    async def get_tab(self, tab_id: str) -> dict[str, Any]:
        _, tab = await self._call("GET", f"/v1/tabs/{tab_id}")
        return dict(tab)

    async def open_tab(self, **body: Any) -> dict[str, Any]:
        _, tab = await self._call("POST", "/v1/tabs", json=body)
        return dict(tab)

    async def change(
        self,
        method: str,
        path: str,
        version: int,
        body: Any = None,
        ok: tuple[int, ...] = (200, 201),
    ) -> tuple[int, dict[str, Any]]:
        status, result = await self._call(
            method, path, json=body, headers={"If-Match": f'"{version}"'}, ok=ok
        )
        return status, dict(result)

    async def add_item(self, tab: dict[str, Any], **item: Any) -> dict[str, Any]:
        _, result = await self.change("POST", f"/v1/tabs/{tab['id']}/items", tab["version"], item)
        return result

    async def split(self, tab: dict[str, Any], **body: Any) -> dict[str, Any]:
        _, result = await self.change("POST", f"/v1/tabs/{tab['id']}/splits", tab["version"], body)
        return result

    async def pay_part(
        self, tab_id: str, version: int, part_number: int, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        return await self.change(
            "POST", f"/v1/tabs/{tab_id}/parts/{part_number}/pay", version, body, ok=(200, 202)
        )

    async def refresh(self, tab_id: str, version: int) -> dict[str, Any]:
        _, result = await self.change("POST", f"/v1/tabs/{tab_id}/refresh", version, {})
        return result


# -- the real-time stream -------------------------------------------------------------------


def stream_url(base_url: str) -> str:
    base = base_url.rstrip("/")
    return base.replace("http://", "ws://", 1).replace("https://", "wss://", 1) + "/v1/stream"


class SmarttabStream:
    """A device's socket to ``/v1/stream``, kept open: reconnects with backoff, resumes after the
    last applied ``seq`` (so nothing is lost or repeated), answers pings, and sends ``reauth``
    with a fresh device token before the session's token expires.

    ``on_event(message)`` gets every ``event`` message in order; ``on_resync()`` when the server
    says the device must refetch its state (also at the first connection without a position);
    ``on_state(connected)`` when the socket opens or drops. ``last_seq`` may be persisted by the
    owner and passed back at start.
    """

    def __init__(
        self,
        base_url: str,
        token: TokenProvider,
        *,
        on_event: Callable[[dict[str, Any]], None],
        on_resync: Callable[[], None] | None = None,
        on_state: Callable[[bool], None] | None = None,
        last_seq: int | None = None,
        reauth_margin_s: float = 20.0,
        max_backoff_s: float = 10.0,
    ) -> None:
        self.url = stream_url(base_url)
        self._token = token
        self._on_event = on_event
        self._on_resync = on_resync
        self._on_state = on_state
        self.last_seq = last_seq
        self.reauth_margin_s = reauth_margin_s
        self.max_backoff_s = max_backoff_s
        self.connected = False
        self.connections = 0
        self.reauths = 0
        self.closes: list[tuple[int | None, str]] = []

    def _set_connected(self, connected: bool) -> None:
        if connected != self.connected:
            self.connected = connected
            if self._on_state is not None:
                self._on_state(connected)

    async def run(self) -> None:
        """Run until cancelled."""
        from websockets.exceptions import ConnectionClosed, InvalidStatus

        backoff = 0.5
        while True:
            try:
                await self._session()
                backoff = 0.5
            except asyncio.CancelledError:
                self._set_connected(False)
                raise
            except ConnectionClosed as closed:
                rcvd = closed.rcvd
                code, reason = (rcvd.code, rcvd.reason) if rcvd else (None, "dropped")
                self.closes.append((code, reason))
                log.info("smarttab stream closed %s %s", code, reason)
                if code == 4403:
                    backoff = self.max_backoff_s
            except (OSError, InvalidStatus, TimeoutError, BackendError, NetworkError) as error:
                log.info("smarttab stream unavailable: %s", error)
            except Exception as error:  # never let the app's socket loop die on a surprise
                if hasattr(error, "code"):  # IdentityError: no token now (not enrolled, offline)
                    log.info("smarttab stream: no device token: %s", error)
                else:
                    log.exception("smarttab stream failed")
            self._set_connected(False)
            await asyncio.sleep(backoff * (0.8 + 0.4 * random.random()))  # noqa: S311
            backoff = min(backoff * 2, self.max_backoff_s)

    async def _session(self) -> None:
        from websockets.asyncio.client import connect

        token = await self._token()
        url = self.url if self.last_seq is None else f"{self.url}?last_seq={self.last_seq}"
        async with connect(
            url,
            additional_headers={"Authorization": f"Bearer {token}"},
            proxy=None,
            open_timeout=10,
            close_timeout=2,
        ) as socket:
            self.connections += 1
            reauth_task: asyncio.Task[None] | None = None
            try:
                async for frame in socket:
                    message = json.loads(frame)
                    kind = message.get("type")
                    if kind == "hello":
                        self._set_connected(True)
                        if self.last_seq is None:
                            await socket.send(json.dumps({"type": "resume", "last_seq": None}))
                            if self._on_resync is not None:
                                self._on_resync()
                        reauth_task = self._schedule_reauth(
                            socket, message.get("expires_at"), reauth_task
                        )
                    elif kind == "event":
                        seq = int(message["seq"])
                        if self.last_seq is not None and seq <= self.last_seq:
                            continue
                        self.last_seq = seq
                        self._on_event(message)
                    elif kind == "resumed":
                        self.last_seq = int(message["last_seq"])
                    elif kind == "resync_required":
                        self.last_seq = int(message["head_seq"])
                        if self._on_resync is not None:
                            self._on_resync()
                    elif kind == "ping":
                        await socket.send(json.dumps({"type": "pong", "t": message.get("t")}))
                    elif kind == "reauthenticated":
                        self.reauths += 1
                        reauth_task = self._schedule_reauth(
                            socket, message.get("expires_at"), reauth_task
                        )
            finally:
                if reauth_task is not None:
                    reauth_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await reauth_task
            # the server closed normally (1000/1001, e.g. a restart): reconnect and resume
            self.closes.append((socket.close_code, socket.close_reason or ""))

    def _schedule_reauth(
        self, socket: Any, expires_at: Any, previous: asyncio.Task[None] | None
    ) -> asyncio.Task[None] | None:
        if previous is not None:
            previous.cancel()
        if expires_at is None:
            return None
        import datetime as dt

        if isinstance(expires_at, int | float):
            expiry = float(expires_at)
        else:
            expiry = dt.datetime.fromisoformat(str(expires_at)).timestamp()
        delay = max(0.0, expiry - dt.datetime.now(dt.UTC).timestamp() - self.reauth_margin_s)

        async def reauth() -> None:
            await asyncio.sleep(delay)
            fresh = await self._token()
            await socket.send(json.dumps({"type": "reauth", "token": fresh}))

        return asyncio.get_running_loop().create_task(reauth())
