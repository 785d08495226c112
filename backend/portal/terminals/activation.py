"""One-time activation codes: typeable on a terminal, stored only as a hash."""

from __future__ import annotations

import hashlib
import secrets

# Crockford-like alphabet without 0/O, 1/I/L, U: easy to read off a screen and type.
_ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"
_GROUPS, _GROUP_LENGTH = 3, 4  # 12 symbols, about 59 bits


def new_activation_code() -> str:
    symbols = "".join(secrets.choice(_ALPHABET) for _ in range(_GROUPS * _GROUP_LENGTH))
    return "-".join(symbols[i : i + _GROUP_LENGTH] for i in range(0, len(symbols), _GROUP_LENGTH))


def normalize_activation_code(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


def hash_activation_code(code: str) -> str:
    return hashlib.sha256(normalize_activation_code(code).encode()).hexdigest()
