"""The fleet file: the test data a load run works from, written by ``mpac loadtest provision``.

One JSON document (mode 0600: it holds device private keys and passwords of throwaway test
users) with the platform's URLs and flat lists of merchants, stores, users and terminals::

    {"version": 1, "portal_url": …, "smarttab_url": …, "pgw_url": …, "psp_id": …,
     "merchants": [{"id", "name"}], "stores": [{"id", "merchant_id", "name"}],
     "users": [{"id", "role", "email", "password", "merchant_id", "store_id"}],
     "terminals": [{"terminal_id", "client_id", "serial", "store_id", "merchant_id",
                    "token_endpoint", "private_key_pem"}],
     "runs": [{"tag", "created_at", "merchants", "stores", "terminals"}]}

A second provisioning run adds to the file (:meth:`Fleet.merge`), never replaces it. Nothing
here imports locust, so the provisioner and the tests use it without gevent's monkey patching.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

FLEET_VERSION = 1
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# The portal refuses assertions living longer than 300 s; a device signs short ones.
ASSERTION_LIFETIME_S = 60


class FleetError(Exception):
    """The fleet file is missing, unreadable or not a fleet."""


@dataclass(frozen=True)
class FleetMerchant:
    id: str
    name: str


@dataclass(frozen=True)
class FleetStore:
    id: str
    merchant_id: str
    name: str


@dataclass(frozen=True)
class FleetUser:
    id: str
    role: str
    email: str
    password: str
    merchant_id: str | None
    store_id: str | None


@dataclass(frozen=True)
class FleetTerminal:
    terminal_id: str
    client_id: str
    serial: str
    store_id: str
    merchant_id: str
    token_endpoint: str
    private_key_pem: str


@dataclass
class Fleet:
    portal_url: str
    smarttab_url: str
    pgw_url: str
    psp_id: str = ""
    merchants: list[FleetMerchant] = field(default_factory=list)
    stores: list[FleetStore] = field(default_factory=list)
    users: list[FleetUser] = field(default_factory=list)
    terminals: list[FleetTerminal] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)

    def terminals_across_stores(self) -> list[FleetTerminal]:
        """The terminals, first of every store, then second of every store, and so on: a
        few users then spread over many stores and merchants rather than fill one store."""
        by_store: dict[str, list[FleetTerminal]] = {}
        for terminal in self.terminals:
            by_store.setdefault(terminal.store_id, []).append(terminal)
        columns = list(by_store.values())
        depth = max((len(column) for column in columns), default=0)
        return [column[i] for i in range(depth) for column in columns if i < len(column)]

    def users_with_role(self, *roles: str) -> list[FleetUser]:
        return [user for user in self.users if user.role in roles]

    def merge(self, other: Fleet) -> Fleet:
        """This fleet plus what ``other`` adds (by id; ``other``'s URLs win)."""

        def union(mine: list[Any], theirs: list[Any], key: str) -> list[Any]:
            seen = {getattr(item, key) for item in mine}
            return mine + [item for item in theirs if getattr(item, key) not in seen]

        return Fleet(
            portal_url=other.portal_url,
            smarttab_url=other.smarttab_url,
            pgw_url=other.pgw_url,
            psp_id=other.psp_id or self.psp_id,
            merchants=union(self.merchants, other.merchants, "id"),
            stores=union(self.stores, other.stores, "id"),
            users=union(self.users, other.users, "id"),
            terminals=union(self.terminals, other.terminals, "terminal_id"),
            runs=self.runs + other.runs,
        )

    def to_json(self) -> dict[str, Any]:
        return {"version": FLEET_VERSION, **asdict(self)}

    @classmethod
    def from_json(cls, data: Any) -> Fleet:
        if not isinstance(data, dict) or data.get("version") != FLEET_VERSION:
            raise FleetError(f"not a version {FLEET_VERSION} fleet file")
        try:
            return cls(
                portal_url=str(data["portal_url"]),
                smarttab_url=str(data["smarttab_url"]),
                pgw_url=str(data["pgw_url"]),
                psp_id=str(data.get("psp_id") or ""),
                merchants=[FleetMerchant(**item) for item in data.get("merchants", [])],
                stores=[FleetStore(**item) for item in data.get("stores", [])],
                users=[FleetUser(**item) for item in data.get("users", [])],
                terminals=[FleetTerminal(**item) for item in data.get("terminals", [])],
                runs=list(data.get("runs", [])),
            )
        except (KeyError, TypeError) as exc:
            raise FleetError(f"malformed fleet file: {exc}") from exc


def load_fleet(path: str | os.PathLike[str]) -> Fleet:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise FleetError(f"cannot read fleet file {path}: {exc}") from exc
    try:
        return Fleet.from_json(json.loads(text))
    except ValueError as exc:
        raise FleetError(f"fleet file {path} is not JSON: {exc}") from exc


def save_fleet(fleet: Fleet, path: str | os.PathLike[str]) -> None:
    """Write atomically with mode 0600 (private keys and passwords inside)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(fleet.to_json(), handle, indent=1)
        handle.write("\n")
    os.replace(temporary, target)


def generate_private_key_pem() -> str:
    """A new EC P-256 device key, PKCS#8 PEM (what a terminal keeps in its keystore)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def load_private_key(pem: str) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise FleetError("a device key must be an EC P-256 private key")
    return key


class DeviceIdentity:
    """A terminal's key and the ``private_key_jwt`` client assertions it signs."""

    def __init__(self, terminal: FleetTerminal) -> None:
        self.terminal = terminal
        self._key = load_private_key(terminal.private_key_pem)

    def assertion(self, *, now: float | None = None) -> str:
        iat = int(time.time() if now is None else now)
        claims = {
            "iss": self.terminal.client_id,
            "sub": self.terminal.client_id,
            "aud": self.terminal.token_endpoint,
            "iat": iat,
            "exp": iat + ASSERTION_LIFETIME_S,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self._key, algorithm="ES256")

    def token_form(self) -> dict[str, str]:
        """The ``/oauth2/token`` form body (client_credentials + a fresh assertion)."""
        return {
            "grant_type": "client_credentials",
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": self.assertion(),
        }
