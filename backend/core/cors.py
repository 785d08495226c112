"""CORS for bearer-token APIs that web pages of any origin may call (pgw's payment-token routes).

A policy names the paths it covers; every other path gets no CORS header at all, so a browser
page of another origin cannot read those answers. Credentials are never allowed: the callers
send ``Authorization: Bearer …`` themselves and no cookie means anything to the services, so
``Access-Control-Allow-Origin: *`` exposes nothing a page could not already ask for with its
own token (and the wildcard needs no ``Vary: Origin``, so caches stay correct).

Preflights (``OPTIONS`` with ``Access-Control-Request-Method``) on a covered path are answered
here with 204 and the allowed methods and headers; the browser itself refuses a request that
asks for more. Every other response on a covered path (problem+json errors included, or a page
could not read why it was refused) gets the allow-origin and expose-headers headers. A 500 is
sent past the middleware by Starlette's outermost error handler, so the middleware leaves the
headers in ``scope["state"]`` for that handler (``backend/core/errors.py``) to add.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Where a 500 handler finds the headers the response on this path must carry.
CORS_HEADERS_STATE_KEY = "cors_response_headers"


@dataclass(frozen=True)
class CorsPolicy:
    """Which paths are open to any origin, and what a cross-origin request may send and read."""

    # A prefix covers the path itself and everything below it ("/v1/payments" covers
    # "/v1/payments/…" but not "/v1/payments-export").
    path_prefixes: tuple[str, ...]
    allow_methods: tuple[str, ...]
    allow_headers: tuple[str, ...]
    expose_headers: tuple[str, ...] = ()
    max_age_s: int = 600

    def covers(self, path: str) -> bool:
        return any(path == prefix or path.startswith(prefix + "/") for prefix in self.path_prefixes)

    def response_headers(self) -> list[tuple[bytes, bytes]]:
        headers = [(b"access-control-allow-origin", b"*")]
        if self.expose_headers:
            headers.append(
                (b"access-control-expose-headers", ", ".join(self.expose_headers).encode())
            )
        return headers

    def preflight_headers(self) -> list[tuple[bytes, bytes]]:
        headers = [
            (b"access-control-allow-origin", b"*"),
            (b"access-control-allow-methods", ", ".join(self.allow_methods).encode()),
            (b"access-control-max-age", str(self.max_age_s).encode()),
        ]
        if self.allow_headers:
            headers.append(
                (b"access-control-allow-headers", ", ".join(self.allow_headers).encode())
            )
        return headers


class CorsMiddleware:
    def __init__(self, app: ASGIApp, *, policies: Sequence[CorsPolicy]) -> None:
        self.app = app
        self.policies = tuple(policies)

    def _policy_for(self, path: str) -> CorsPolicy | None:
        return next((policy for policy in self.policies if policy.covers(path)), None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        policy = self._policy_for(scope["path"]) if scope["type"] == "http" else None
        if policy is None:
            await self.app(scope, receive, send)
            return
        request_headers = dict(scope.get("headers") or [])
        if scope["method"] == "OPTIONS" and b"access-control-request-method" in request_headers:
            await send(
                {
                    "type": "http.response.start",
                    "status": 204,
                    "headers": policy.preflight_headers(),
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        extra = policy.response_headers()
        scope.setdefault("state", {})[CORS_HEADERS_STATE_KEY] = {
            name.decode(): value.decode() for name, value in extra
        }

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                missing = [(name, value) for name, value in extra if name not in present]
                message["headers"] = [*message.get("headers", []), *missing]
            await send(message)

        await self.app(scope, receive, send_with_cors)
