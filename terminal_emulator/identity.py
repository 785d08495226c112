"""The terminal's device identity: its serial, its own EC P-256 key, enrollment, device tokens.

As on a real SmartPOS (docs/security.md): the terminal makes its key pair itself and keeps the
private half (PEM, mode 0600, in ``<state dir>/identity/device_key.pem``); an admin registers the
terminal at the portal and tells the activation code to the person at the counter; the terminal
enrolls with ``POST /v1/devices/enroll`` {code, public JWK, serial} and from then on obtains
90-second device tokens from ``POST /oauth2/token`` with a ``private_key_jwt`` client assertion
it signs (ES256, ``iss = sub = client_id``, ``aud`` = token endpoint, unique ``jti``).

:class:`DeviceIdentity` caches the token and gets a new one before the old expires (a
background task, and on demand: ``access_token()`` never hands out a token with less than
``refresh_margin_s`` left); concurrent callers share one token request. Everything is asyncio;
key generation and file writes run in a worker thread. Problems are :class:`IdentityError`
with the contract's error code, so the Credit Card App can answer with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from terminal_emulator.backend_client import BackendError, NetworkError, PortalClient
from terminal_emulator.contract import ErrorCode

log = logging.getLogger(__name__)

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
KEY_FILE = "device_key.pem"
ENROLLMENT_FILE = "enrollment.json"

# Refusals of the token endpoint that mean "this terminal may not work now", not "bad crypto".
_NOT_ACTIVE_CODES = {"client_suspended", "unknown_client", "client_not_enrolled"}


class IdentityError(Exception):
    """Why no device token: ``code`` is the contract error code the apps answer with."""

    def __init__(self, code: ErrorCode, message: str, *, problem: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.problem = problem


class EnrollmentError(IdentityError):
    """The portal refused the activation code (``problem`` is its code)."""


def error_for_token_refusal(error: BackendError) -> IdentityError:
    code = error.code
    if error.status >= 500:
        return IdentityError(ErrorCode.NETWORK_ERROR, f"portal failed: {error}", problem=code)
    if code in _NOT_ACTIVE_CODES or code.endswith("_not_active") or "suspended" in code:
        return IdentityError(ErrorCode.TERMINAL_NOT_ACTIVE, error.detail or code, problem=code)
    return IdentityError(ErrorCode.AUTHENTICATION_FAILED, error.detail or code, problem=code)


@dataclass(frozen=True)
class Enrollment:
    """What the portal answered at enrollment (kept in ``enrollment.json``)."""

    client_id: str
    terminal_id: str
    psp_id: str
    merchant_id: str
    store_id: str
    key_thumbprint: str
    issuer: str
    token_endpoint: str
    serial: str
    portal_url: str

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Enrollment:
        names = set(cls.__dataclass_fields__)
        return cls(**{name: str(document[name]) for name in names})


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` readable by the owner only (created 0600, then renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


class DeviceKey:
    """The terminal's EC P-256 key pair, persisted as unencrypted PKCS#8 PEM (0600)."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        self.private_key = private_key

    @classmethod
    def load_or_create(cls, path: Path) -> DeviceKey:
        if path.exists():
            loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if (
                not isinstance(loaded, ec.EllipticCurvePrivateKey)
                or loaded.curve.name != "secp256r1"
            ):
                raise ValueError(f"{path} is not an EC P-256 private key")
            return cls(loaded)
        key = cls(ec.generate_private_key(ec.SECP256R1()))
        key.save(path)
        return key

    @classmethod
    def create(cls, path: Path) -> DeviceKey:
        key = cls(ec.generate_private_key(ec.SECP256R1()))
        key.save(path)
        return key

    def save(self, path: Path) -> None:
        pem = self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write_private(path, pem)

    def public_jwk(self) -> dict[str, Any]:
        numbers = self.private_key.public_key().public_numbers()

        def b64(value: int) -> str:
            import base64

            return base64.urlsafe_b64encode(value.to_bytes(32, "big")).rstrip(b"=").decode()

        return {
            "kty": "EC",
            "crv": "P-256",
            "x": b64(numbers.x),
            "y": b64(numbers.y),
            "alg": "ES256",
            "use": "sig",
        }

    def assertion(self, client_id: str, audience: str, *, lifetime_s: int = 60) -> str:
        now = int(time.time())
        claims = {
            "iss": client_id,
            "sub": client_id,
            "aud": audience,
            "iat": now,
            "exp": now + lifetime_s,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self.private_key, algorithm="ES256")


@dataclass
class _Token:
    value: str
    expires_at: float  # time.time() of expiry
    obtained_at: float


class DeviceIdentity:
    """Serial + key + enrollment + device tokens of one terminal, under ``directory``.

    ``portal`` is the client used for enrollment and tokens. ``refresh_margin_s`` is how long
    before expiry a token is replaced (default: a third of its lifetime, at most 30 s).
    """

    def __init__(
        self,
        directory: Path,
        *,
        serial: str,
        portal: PortalClient,
        refresh_margin_s: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self.serial = serial
        self.portal = portal
        self.refresh_margin_s = refresh_margin_s
        self._clock = clock
        self._key: DeviceKey | None = None
        self.enrollment: Enrollment | None = self._load_enrollment()
        self._token: _Token | None = None
        self._fetching: asyncio.Task[_Token] | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._listeners: list[Callable[[], None]] = []
        self.tokens_issued = 0
        self.last_error: IdentityError | None = None
        self._enrolled_event: asyncio.Event | None = None

    # -- state --------------------------------------------------------------------------------

    @property
    def key_path(self) -> Path:
        return self.directory / KEY_FILE

    @property
    def enrollment_path(self) -> Path:
        return self.directory / ENROLLMENT_FILE

    @property
    def enrolled(self) -> bool:
        return self.enrollment is not None

    @property
    def terminal_id(self) -> str | None:
        return self.enrollment.terminal_id if self.enrollment else None

    @property
    def token_expires_at(self) -> float | None:
        return self._token.expires_at if self._token else None

    async def wait_enrolled(self) -> Enrollment:
        """Return once the terminal is enrolled (at once when it is)."""
        while self.enrollment is None:
            if self._enrolled_event is None:
                self._enrolled_event = asyncio.Event()
            await self._enrolled_event.wait()
        return self.enrollment

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Called when enrollment or token state changes (status bar)."""
        self._listeners.append(listener)

    def _changed(self) -> None:
        for listener in list(self._listeners):
            try:
                listener()
            except Exception:
                log.exception("identity listener failed")

    def _load_enrollment(self) -> Enrollment | None:
        path = self.directory / ENROLLMENT_FILE
        if not path.exists():
            return None
        try:
            return Enrollment.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, KeyError):
            log.warning("ignoring unreadable %s", path)
            return None

    async def key(self) -> DeviceKey:
        if self._key is None:
            self._key = await asyncio.to_thread(DeviceKey.load_or_create, self.key_path)
        return self._key

    # -- enrollment ---------------------------------------------------------------------------

    async def enroll(self, activation_code: str) -> Enrollment:
        """Enroll with an activation code. A new key pair is made for each enrollment (a
        re-enrolled device replaces its key, as docs/security.md describes)."""
        code = activation_code.strip()
        if not code:
            raise EnrollmentError(ErrorCode.INVALID_REQUEST, "enter the activation code")
        key = await asyncio.to_thread(DeviceKey.create, self.directory / (KEY_FILE + ".new"))
        try:
            answer = await self.portal.enroll(code, key.public_jwk(), self.serial)
        except BackendError as error:
            await asyncio.to_thread((self.directory / (KEY_FILE + ".new")).unlink, True)
            raise EnrollmentError(
                ErrorCode.TERMINAL_NOT_ACTIVE if error.status == 409 else ErrorCode.INVALID_REQUEST,
                f"enrollment refused: {error.detail or error.code}",
                problem=error.code,
            ) from error
        except NetworkError as error:
            raise EnrollmentError(
                ErrorCode.NETWORK_ERROR, f"portal unreachable: {error}"
            ) from error
        await asyncio.to_thread(os.replace, self.directory / (KEY_FILE + ".new"), self.key_path)
        self._key = key
        enrollment = Enrollment(
            client_id=str(answer["client_id"]),
            terminal_id=str(answer["terminal_id"]),
            psp_id=str(answer["psp_id"]),
            merchant_id=str(answer["merchant_id"]),
            store_id=str(answer["store_id"]),
            key_thumbprint=str(answer["key_thumbprint"]),
            issuer=str(answer["issuer"]),
            token_endpoint=str(answer["token_endpoint"]),
            serial=self.serial,
            portal_url=self.portal.base_url,
        )
        data = json.dumps(asdict(enrollment), indent=1, sort_keys=True).encode()
        await asyncio.to_thread(_write_private, self.enrollment_path, data)
        self.enrollment = enrollment
        self._token = None
        if self._enrolled_event is not None:
            self._enrolled_event.set()
        log.info("terminal %s enrolled as %s", self.serial, enrollment.terminal_id)
        self._changed()
        return enrollment

    # -- tokens -------------------------------------------------------------------------------

    def _margin(self, token: _Token) -> float:
        if self.refresh_margin_s is not None:
            return self.refresh_margin_s
        return min(30.0, (token.expires_at - token.obtained_at) / 3)

    def _fresh(self, token: _Token | None) -> bool:
        return token is not None and token.expires_at - self._margin(token) > self._clock()

    async def access_token(self) -> str:
        """A device token with more than the refresh margin left (fetched when needed)."""
        if self._fresh(self._token):
            assert self._token is not None
            return self._token.value
        token = await self._fetch()
        return token.value

    async def _fetch(self) -> _Token:
        # Single flight: concurrent callers wait for the same request. Shielded so a caller
        # that is cancelled (its app was force-stopped) does not cancel it for the others.
        if self._fetching is None or self._fetching.done():
            self._fetching = asyncio.get_running_loop().create_task(self._request_token())
        return await asyncio.shield(self._fetching)

    async def _request_token(self) -> _Token:
        enrollment = self.enrollment
        if enrollment is None:
            raise IdentityError(ErrorCode.TERMINAL_NOT_ENROLLED, "this terminal is not enrolled")
        key = await self.key()
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": key.assertion(enrollment.client_id, enrollment.token_endpoint),
        }
        try:
            answer = await self.portal.token(enrollment.token_endpoint, form)
        except BackendError as error:
            self.last_error = error_for_token_refusal(error)
            self._changed()
            raise self.last_error from error
        except NetworkError as error:
            self.last_error = IdentityError(ErrorCode.NETWORK_ERROR, f"portal unreachable: {error}")
            self._changed()
            raise self.last_error from error
        now = self._clock()
        token = _Token(str(answer["access_token"]), now + float(answer["expires_in"]), now)
        first = self._token is None
        self._token = token
        self.tokens_issued += 1
        self.last_error = None
        if first:
            self._changed()
        return token

    def invalidate_token(self) -> None:
        """Forget the cached token (pgw refused it): the next call fetches a new one."""
        self._token = None

    # -- background refresh -------------------------------------------------------------------

    def start_refresher(self) -> None:
        """Keep a fresh token at hand: fetch one ``refresh_margin`` before the current expires."""
        if self._refresher is None or self._refresher.done():
            self._refresher = asyncio.get_running_loop().create_task(
                self._refresh_loop(), name=f"token-refresher {self.serial}"
            )

    async def _refresh_loop(self) -> None:
        backoff = 1.0
        await self.wait_enrolled()
        while True:
            try:
                token = self._token if self._fresh(self._token) else await self._fetch()
                assert token is not None
                backoff = 1.0
                await asyncio.sleep(
                    max(0.5, token.expires_at - self._margin(token) - self._clock())
                )
                await self._fetch()
            except IdentityError as error:
                log.info("device token refresh failed: %s", error)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    async def stop(self) -> None:
        for task in (self._refresher, self._fetching):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._refresher = None
        self._fetching = None
