"""Service-to-service request signing: HMAC-SHA256 over a canonical request (docs/s2s-auth.md).

Callers (smarttab, portal) sign with :class:`HmacAuth`, an ``httpx.Auth`` usable by both
``httpx.Client`` and ``httpx.AsyncClient``; receivers (pgw) authenticate with the FastAPI
dependency :func:`verify_signed_request`, which returns the :class:`ServiceCaller`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import re
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import parse_qsl, quote

import httpx
from fastapi import Depends, Request
from redis.exceptions import RedisError

from backend.core.errors import BadRequest, Forbidden, ServiceUnavailable, Unauthorized
from backend.core.replay import ReplayCache
from backend.core.settings import SERVICE_NAMES
from backend.observability.tracing import TracingTransport

if TYPE_CHECKING:
    from backend.core.settings import Settings

logger = logging.getLogger(__name__)

SCHEME = "MPAC-HMAC-SHA256-V1"
SIGNATURE_VERSION = "v1"

KEY_ID_HEADER = "X-MPAC-Key-Id"
TIMESTAMP_HEADER = "X-MPAC-Timestamp"
NONCE_HEADER = "X-MPAC-Nonce"
SIGNATURE_HEADER = "X-MPAC-Signature"
MERCHANT_HEADER = "X-MPAC-Merchant-Id"
STORE_HEADER = "X-MPAC-Store-Id"
REQUIRED_HEADERS = (KEY_ID_HEADER, TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER)
TENANT_HEADERS = (MERCHANT_HEADER, STORE_HEADER)

NONCE_NAMESPACE = "s2s_nonce"
SECRET_BYTES = 32
NONCE_BYTES = 16

_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
# 16 random bytes are 22 unpadded url-safe base64 characters.
_NONCE = re.compile(r"[A-Za-z0-9_-]{22,128}")
_SIGNATURE = re.compile(r"v1=([0-9a-f]{64})")
# RFC 3986 unreserved characters: the only ones left unescaped in the canonical query.
_UNRESERVED = "-._~"
# What a path segment may carry unescaped (RFC 3986 pchar plus "/"), for servers without raw_path.
_PATH_SAFE = "/!$&'()*+,;=:@-._~"


# --- keys ------------------------------------------------------------------------------------


def _b64decode(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def generate_s2s_secret() -> str:
    """A new shared secret: 32 random bytes, url-safe base64 without padding."""
    return base64.urlsafe_b64encode(secrets.token_bytes(SECRET_BYTES)).rstrip(b"=").decode()


def generate_s2s_key_entry(caller: str, kid: str | None = None) -> str:
    """A new ``caller:kid:secret`` entry for ``MPAC_S2S_KEYS``."""
    return f"{caller}:{kid or secrets.token_hex(4)}:{generate_s2s_secret()}"


def decode_s2s_secret(secret: str) -> bytes:
    """The HMAC key behind a configured secret; refuses anything shorter than 256 bits."""
    try:
        key = _b64decode(secret.strip())
    except (binascii.Error, ValueError) as exc:
        raise ValueError("an s2s secret is url-safe base64") from exc
    if len(key) < SECRET_BYTES:
        raise ValueError(f"an s2s secret must hold at least {SECRET_BYTES} bytes")
    return key


@dataclass(frozen=True)
class S2SKey:
    caller: str
    kid: str
    secret: bytes = field(repr=False)

    @property
    def key_id(self) -> str:
        return f"{self.caller}:{self.kid}"


@dataclass(frozen=True)
class S2SKeyRing:
    """Keys per caller, in configured order: the first signs, all verify."""

    by_caller: Mapping[str, tuple[S2SKey, ...]]

    def signing_key(self, caller: str) -> S2SKey:
        keys = self.by_caller.get(caller)
        if not keys:
            raise LookupError(f"no s2s key is configured for caller {caller!r} (MPAC_S2S_KEYS)")
        return keys[0]

    def lookup(self, caller: str, kid: str) -> S2SKey | None:
        return next((key for key in self.by_caller.get(caller, ()) if key.kid == kid), None)


@lru_cache(maxsize=16)
def parse_s2s_keys(spec: str) -> S2SKeyRing:
    """Parse ``caller:kid:secret[,caller:kid:secret...]`` (``MPAC_S2S_KEYS``)."""
    by_caller: dict[str, list[S2SKey]] = {}
    for entry in filter(None, (part.strip() for part in spec.split(","))):
        parts = entry.split(":")
        if len(parts) != 3 or not all(_NAME.fullmatch(part) for part in parts[:2]):
            raise ValueError(
                "s2s keys are 'caller:kid:secret' entries; caller and kid are 1-64 of "
                "[A-Za-z0-9._-]"
            )
        caller, kid, secret = parts
        keys = by_caller.setdefault(caller, [])
        if any(key.kid == kid for key in keys):
            raise ValueError(f"s2s key {caller}:{kid} is listed twice")
        try:
            keys.append(S2SKey(caller=caller, kid=kid, secret=decode_s2s_secret(secret)))
        except ValueError as exc:
            raise ValueError(f"s2s key {caller}:{kid}: {exc}") from exc
    return S2SKeyRing({caller: tuple(keys) for caller, keys in by_caller.items()})


# --- canonical request -----------------------------------------------------------------------


def new_nonce() -> str:
    return secrets.token_urlsafe(NONCE_BYTES)


def canonical_query(raw_query: bytes | str) -> str:
    """Parameters sorted by encoded key then encoded value, RFC 3986 encoded, joined by ``&``.

    Parsing follows Starlette's (``&`` separates, ``+`` is a space, blank values kept), but keeps
    the exact bytes (latin-1 round trip), so two different byte strings never canonicalize alike.
    """
    text = raw_query.decode("latin-1") if isinstance(raw_query, bytes) else raw_query
    pairs = parse_qsl(text, keep_blank_values=True, encoding="latin-1")
    encoded = sorted(
        (
            quote(key.encode("latin-1"), safe=_UNRESERVED),
            quote(value.encode("latin-1"), safe=_UNRESERVED),
        )
        for key, value in pairs
    )
    return "&".join(f"{key}={value}" for key, value in encoded)


def canonical_request(
    *,
    method: str,
    raw_path: bytes,
    raw_query: bytes | str,
    timestamp: str,
    nonce: str,
    merchant_id: str,
    store_id: str,
    body: bytes,
) -> bytes:
    """The bytes that are signed; every line is documented in docs/s2s-auth.md."""
    return b"\n".join(
        (
            SCHEME.encode(),
            method.upper().encode("ascii"),
            raw_path,
            canonical_query(raw_query).encode("ascii"),
            timestamp.encode("ascii"),
            nonce.encode("ascii"),
            merchant_id.encode(),
            store_id.encode(),
            hashlib.sha256(body).hexdigest().encode("ascii"),
        )
    )


def compute_signature(secret: bytes, canonical: bytes) -> str:
    """Hex HMAC-SHA256 of the canonical request."""
    return hmac.new(secret, canonical, hashlib.sha256).hexdigest()


# --- sender ----------------------------------------------------------------------------------


def tenant_headers(
    merchant_id: uuid.UUID | str | None = None, store_id: uuid.UUID | str | None = None
) -> dict[str, str]:
    """Headers naming the tenant a service acts for; they are part of the signature."""
    headers: dict[str, str] = {}
    if merchant_id is not None:
        headers[MERCHANT_HEADER] = str(merchant_id)
    if store_id is not None:
        headers[STORE_HEADER] = str(store_id)
    return headers


def _single_header(values: list[str], name: str) -> str:
    if len(values) > 1:
        raise ValueError(f"{name} may be sent once")
    return values[0].strip() if values else ""


class HmacAuth(httpx.Auth):
    """Signs every request of an ``httpx.Client``/``AsyncClient`` as ``caller:kid``.

    Each send gets a fresh timestamp and nonce. Tenant context is whatever
    ``X-MPAC-Merchant-Id``/``X-MPAC-Store-Id`` the request carries (see :func:`tenant_headers`).
    """

    requires_request_body = True

    def __init__(
        self,
        caller: str,
        kid: str,
        secret: str | bytes,
        *,
        clock: Callable[[], float] = time.time,
        nonce_factory: Callable[[], str] = new_nonce,
    ) -> None:
        if not (_NAME.fullmatch(caller) and _NAME.fullmatch(kid)):
            raise ValueError("caller and kid are 1-64 of [A-Za-z0-9._-]")
        self.caller = caller
        self.kid = kid
        self._secret = decode_s2s_secret(secret) if isinstance(secret, str) else secret
        self._clock = clock
        self._nonce_factory = nonce_factory

    @classmethod
    def from_settings(cls, settings: Settings, caller: str, **kwargs: Any) -> HmacAuth:
        """Signs with the first key ``settings.s2s_keys`` lists for ``caller``."""
        key = parse_s2s_keys(settings.s2s_keys).signing_key(caller)
        return cls(key.caller, key.kid, key.secret, **kwargs)

    @property
    def key_id(self) -> str:
        return f"{self.caller}:{self.kid}"

    def sign(self, request: httpx.Request) -> httpx.Request:
        """Set the signature headers on ``request`` (whose body must have been read)."""
        timestamp = str(int(self._clock()))
        nonce = self._nonce_factory()
        raw_path = request.url.raw_path.partition(b"?")[0]
        canonical = canonical_request(
            method=request.method,
            raw_path=raw_path,
            raw_query=request.url.query,
            timestamp=timestamp,
            nonce=nonce,
            merchant_id=_single_header(request.headers.get_list(MERCHANT_HEADER), MERCHANT_HEADER),
            store_id=_single_header(request.headers.get_list(STORE_HEADER), STORE_HEADER),
            body=request.content,
        )
        request.headers[KEY_ID_HEADER] = self.key_id
        request.headers[TIMESTAMP_HEADER] = timestamp
        request.headers[NONCE_HEADER] = nonce
        request.headers[SIGNATURE_HEADER] = (
            f"{SIGNATURE_VERSION}={compute_signature(self._secret, canonical)}"
        )
        return request

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        yield self.sign(request)


def signed_client(
    settings: Settings, caller: str, base_url: str, **kwargs: Any
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` on ``base_url`` whose every request is signed as ``caller``."""
    kwargs.setdefault("timeout", 10.0)
    peer = next((name for name in SERVICE_NAMES if settings.url_of(name) == base_url), None)
    kwargs.setdefault("transport", TracingTransport(caller, peer=peer))
    return httpx.AsyncClient(
        base_url=base_url, auth=HmacAuth.from_settings(settings, caller), **kwargs
    )


# --- receiver --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceCaller:
    """The service a verified request came from and the tenant it acts for (signed headers)."""

    caller: str
    kid: str
    merchant_id: uuid.UUID | None = None
    store_id: uuid.UUID | None = None


def _refuse(
    code: str, detail: str, *, key_id: str | None = None, **extensions: Any
) -> Unauthorized:
    logger.warning("s2s request refused: %s (key id %r)", code, (key_id or "")[:140])
    return Unauthorized(detail, code=code, headers={"WWW-Authenticate": SCHEME}, **extensions)


def _header(request: Request, name: str) -> str | None:
    values = request.headers.getlist(name)
    if len(values) > 1:
        raise _refuse("hmac_malformed_headers", f"{name} was sent more than once.")
    return values[0].strip() if values else None


def _tenant_id(name: str, value: str) -> uuid.UUID | None:
    if not value:
        return None
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise BadRequest(f"{name} is not a UUID.", code="hmac_bad_tenant_header") from exc


def _raw_path(request: Request) -> bytes:
    raw: bytes | None = request.scope.get("raw_path")
    if raw is not None:
        return raw.partition(b"?")[0]
    # ASGI servers may omit raw_path; then the decoded path re-encoded is the best guess.
    return quote(
        request.scope.get("root_path", "") + request.scope["path"], safe=_PATH_SAFE
    ).encode()


async def verify_signed_request(request: Request) -> ServiceCaller:
    """FastAPI dependency: authenticate a signed service request or answer 401.

    Reads the key ring from ``app.state.settings.s2s_keys`` and records nonces in
    ``app.state.redis``. The nonce is recorded only once the signature verifies, so a forged
    request cannot burn a nonce a genuine one will use.
    """
    settings: Settings = request.app.state.settings
    values = {name: _header(request, name) for name in (*REQUIRED_HEADERS, *TENANT_HEADERS)}
    missing = [name for name in REQUIRED_HEADERS if not values[name]]
    if missing:
        raise _refuse(
            "hmac_missing_headers",
            f"Signed service requests carry {', '.join(REQUIRED_HEADERS)}; missing: "
            f"{', '.join(missing)}.",
            key_id=values[KEY_ID_HEADER],
        )
    key_id = values[KEY_ID_HEADER] or ""
    timestamp = values[TIMESTAMP_HEADER] or ""
    nonce = values[NONCE_HEADER] or ""
    signature = _SIGNATURE.fullmatch(values[SIGNATURE_HEADER] or "")
    if not (_TIMESTAMP.fullmatch(timestamp) and _NONCE.fullmatch(nonce) and signature):
        raise _refuse(
            "hmac_malformed_headers",
            "X-MPAC-Timestamp is unix seconds, X-MPAC-Nonce is at least 22 url-safe base64 "
            "characters and X-MPAC-Signature is 'v1=<64 hex digits>'.",
            key_id=key_id,
        )

    caller, _, kid = key_id.partition(":")
    key = parse_s2s_keys(settings.s2s_keys).lookup(caller, kid)
    if key is None:
        raise _refuse("hmac_unknown_key", "Unknown X-MPAC-Key-Id.", key_id=key_id)

    now = int(time.time())
    window = settings.s2s_max_skew_s
    if abs(now - int(timestamp)) > window:
        raise _refuse(
            "hmac_clock_skew",
            f"X-MPAC-Timestamp is more than {window} s away from the server clock.",
            key_id=key_id,
            server_time=now,
        )

    merchant = values[MERCHANT_HEADER] or ""
    store = values[STORE_HEADER] or ""
    canonical = canonical_request(
        method=request.method,
        raw_path=_raw_path(request),
        raw_query=request.scope.get("query_string", b""),
        timestamp=timestamp,
        nonce=nonce,
        merchant_id=merchant,
        store_id=store,
        body=await request.body(),
    )
    expected = compute_signature(key.secret, canonical)
    if not hmac.compare_digest(expected, signature.group(1)):
        raise _refuse("hmac_bad_signature", "The request signature does not verify.", key_id=key_id)

    service = ServiceCaller(
        caller=caller,
        kid=kid,
        merchant_id=_tenant_id(MERCHANT_HEADER, merchant),
        store_id=_tenant_id(STORE_HEADER, store),
    )
    cache = ReplayCache(request.app.state.redis, NONCE_NAMESPACE)
    try:
        # A timestamp stays acceptable for 2 windows (from ts - window to ts + window).
        first = await cache.first_use(f"{caller}:{nonce}", ttl_s=2 * window)
    except RedisError as exc:
        raise ServiceUnavailable(
            "The replay cache is unreachable.", code="dependency_unavailable"
        ) from exc
    if not first:
        raise _refuse("hmac_replayed_nonce", "This X-MPAC-Nonce was already used.", key_id=key_id)
    request.state.service_caller = service
    return service


ServiceCallerDep = Annotated[ServiceCaller, Depends(verify_signed_request)]


def require_caller(*callers: str) -> Callable[[ServiceCaller], Awaitable[ServiceCaller]]:
    """A dependency admitting only the named calling services (403 ``hmac_caller_not_allowed``)."""
    allowed = frozenset(callers)

    async def check(service: ServiceCallerDep) -> ServiceCaller:
        if service.caller not in allowed:
            raise Forbidden(
                f"Service {service.caller!r} may not call this route.",
                code="hmac_caller_not_allowed",
            )
        return service

    return check
