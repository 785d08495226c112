"""Object ids in the acquirer's style: a type prefix and 24 random hex digits."""

from __future__ import annotations

import secrets
import string

_AUTH_CODE_ALPHABET = string.ascii_uppercase + string.digits


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def new_auth_code() -> str:
    """The six-character approval code an issuer returns with an approval."""
    return "".join(secrets.choice(_AUTH_CODE_ALPHABET) for _ in range(6))
