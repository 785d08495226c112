"""Provider webhook signatures: ``Provider-Signature: t=<unix>,v1=<hex>[,v1=<hex>...]``.

v1 is HMAC-SHA256 over ``"{t}.{raw body}"``; during a secret rotation the provider sends one v1
per secret and a match with any configured secret is enough. Comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from backend.core.errors import BadRequest

SIGNATURE_HEADER = "Provider-Signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secrets: list[str], timestamp: int, body: bytes) -> str:
    return ",".join(
        [f"t={timestamp}", *(f"v1={sign(secret, timestamp, body)}" for secret in secrets)]
    )


def verify(
    header: str | None,
    body: bytes,
    secrets: list[str],
    *,
    tolerance_s: int,
    now: float | None = None,
) -> int:
    """Returns the signed timestamp; raises a 400 problem saying what is wrong."""
    if not header:
        raise BadRequest(
            f"The {SIGNATURE_HEADER} header is missing.", code="webhook_signature_missing"
        )
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise BadRequest(
            f"The {SIGNATURE_HEADER} header is malformed.", code="webhook_signature_malformed"
        )
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_s:
        raise BadRequest(
            f"The webhook timestamp is more than {tolerance_s} s away from now (replay?).",
            code="webhook_timestamp_out_of_range",
        )
    expected = [sign(secret, timestamp, body) for secret in secrets]
    # Every pair is compared, so timing does not reveal which (or whether any) came close.
    matched = False
    for candidate in candidates:
        for value in expected:
            matched |= hmac.compare_digest(candidate, value)
    if not matched:
        raise BadRequest("The webhook signature does not verify.", code="webhook_signature_invalid")
    return timestamp
