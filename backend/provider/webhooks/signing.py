"""The ``Provider-Signature`` header: ``t=<unix>,v1=<hex>[,v1=<hex>...]``.

``v1`` is the hex HMAC-SHA256 of ``f"{t}.{raw_body}"`` under a webhook secret; during a secret
rotation the provider sends one ``v1`` per configured secret, so a receiver holding either the
old or the new secret verifies. Receivers should also refuse a ``t`` too far from their clock.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

SIGNATURE_HEADER = "Provider-Signature"


def compute_v1(secret: str, timestamp: int, body: bytes) -> str:
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(secrets: Sequence[str], timestamp: int, body: bytes) -> str:
    parts = [f"t={timestamp}"]
    parts.extend(f"v1={compute_v1(secret, timestamp, body)}" for secret in secrets)
    return ",".join(parts)


def verify(
    header: str, body: bytes, secrets: Sequence[str], *, now: int, tolerance_s: int = 300
) -> bool:
    """True when some ``v1`` matches some secret and ``t`` is within ``tolerance_s`` of now."""
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or abs(now - timestamp) > tolerance_s:
        return False
    expected = [compute_v1(secret, timestamp, body) for secret in secrets]
    return any(
        hmac.compare_digest(candidate, wanted) for candidate in signatures for wanted in expected
    )
