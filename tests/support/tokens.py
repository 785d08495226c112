"""Forging tokens in tests: the portal's real signing key, foreign keys and hand-built JWS.

PyJWT refuses to produce some of the attacks the verifiers must withstand (HS256 keyed with a
PEM public key, for one), so :func:`compact` assembles a JWS from raw parts and a signer.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from backend.core.database import create_engine, create_sessionmaker
from backend.core.field_encryption import FieldCipher
from backend.core.settings import Settings
from backend.core.tokens import PrivateKey, SigningKey, generate_signing_key
from backend.portal.keys.repository import SigningKeyRepository
from backend.portal.keys.service import _signing_key_of


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64url_json(value: Mapping[str, Any]) -> str:
    return b64url(json.dumps(dict(value), separators=(",", ":")).encode())


def compact(
    header: Mapping[str, Any], claims: Mapping[str, Any], sign: Callable[[bytes], bytes]
) -> str:
    """``header.payload.signature`` with whatever header and signature the test wants."""
    signing_input = f"{b64url_json(header)}.{b64url_json(claims)}"
    return f"{signing_input}.{b64url(sign(signing_input.encode()))}"


def unverified_parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, claims) of a token, without checking anything."""
    claims = jwt.decode(token, options={"verify_signature": False})
    return jwt.get_unverified_header(token), claims


# --- keys ---------------------------------------------------------------------------------


async def _published_keys(settings: Settings) -> list[tuple[str, SigningKey]]:
    cipher = FieldCipher.from_spec(settings.field_encryption_keys)
    engine = create_engine(settings, application_name="tests-tokens")
    try:
        async with create_sessionmaker(engine)() as session:
            records = await SigningKeyRepository(session).published()
            return [(record.status, _signing_key_of(record, cipher)) for record in records]
    finally:
        await engine.dispose()


def published_signing_keys(settings: Settings) -> dict[str, SigningKey]:
    """Every key the portal publishes (active and retiring), by kid, decrypted from the DB."""
    return {key.kid: key for _, key in asyncio.run(_published_keys(settings))}


def portal_signing_key(settings: Settings) -> SigningKey:
    """The portal's active signing key (private half), read from the DB and decrypted."""
    for status, key in asyncio.run(_published_keys(settings)):
        if status == "active":
            return key
    raise AssertionError("the portal has no active signing key")


def foreign_key(algorithm: str = "ES256") -> SigningKey:
    """A key of the right kind that the portal never published."""
    return generate_signing_key(algorithm)


def public_pem(key: SigningKey) -> bytes:
    return key.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# --- claims and signing -----------------------------------------------------------------------


def user_claims(
    settings: Settings,
    *,
    psp_id: str,
    subject: str | None = None,
    role: str = "psp_admin",
    merchant_id: str | None = None,
    store_id: str | None = None,
    ttl_s: int = 300,
    **overrides: Any,
) -> dict[str, Any]:
    """The claim set the portal would put in a human access token; ``overrides`` win."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.resolved_issuer,
        "aud": settings.token_audience,
        "sub": subject or str(uuid.uuid4()),
        "iat": now,
        "nbf": now,
        "exp": now + ttl_s,
        "jti": uuid.uuid4().hex,
        "token_use": "user",
        "role": role,
        "psp_id": psp_id,
        "merchant_id": merchant_id,
        "store_id": store_id,
    }
    claims.update(overrides)
    return claims


def forge(
    claims: Mapping[str, Any],
    key: SigningKey | PrivateKey | None,
    alg: str = "ES256",
    headers: Mapping[str, Any] | None = None,
) -> str:
    """Sign ``claims`` with ``key`` via PyJWT.

    A :class:`SigningKey` puts its kid (and ``typ: at+jwt``) in the header unless ``headers``
    says otherwise; a header value of ``None`` removes that header field.
    """
    header: dict[str, Any] = {"typ": "at+jwt"}
    private_key: Any = key
    if isinstance(key, SigningKey):
        header["kid"] = key.kid
        private_key = key.private_key
    header.update(headers or {})
    drop = [name for name, value in header.items() if value is None]
    for name in drop:
        del header[name]
    if alg == "none":
        return compact({**header, "alg": "none"}, claims, lambda _: b"")
    if not isinstance(private_key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise TypeError("forge() needs a private key for a signed token")
    return jwt.encode(dict(claims), private_key, algorithm=alg, headers=header)


def forge_hs256(
    claims: Mapping[str, Any], secret: bytes, headers: Mapping[str, Any] | None = None
) -> str:
    """HS256 with any secret, including a public key PEM (which PyJWT itself refuses)."""
    header = {"alg": "HS256", "typ": "at+jwt", **(headers or {})}
    return compact(header, claims, lambda data: hmac.new(secret, data, hashlib.sha256).digest())


def tamper_claims(token: str, **changes: Any) -> str:
    """The same header and signature over a modified payload."""
    header_b64, _, signature_b64 = token.split(".")
    _, claims = unverified_parts(token)
    claims.update(changes)
    return f"{header_b64}.{b64url_json(claims)}.{signature_b64}"
