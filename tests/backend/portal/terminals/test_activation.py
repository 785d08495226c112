"""One-time activation codes: readable, typeable, stored only as a hash."""

from __future__ import annotations

import hashlib
import re

from backend.portal.terminals.activation import (
    hash_activation_code,
    new_activation_code,
    normalize_activation_code,
)

CODE_FORMAT = re.compile(r"^[A-HJKMNP-TV-Z2-9]{4}-[A-HJKMNP-TV-Z2-9]{4}-[A-HJKMNP-TV-Z2-9]{4}$")


def test_new_code_is_three_groups_of_four_unambiguous_symbols() -> None:
    codes = [new_activation_code() for _ in range(200)]

    assert all(CODE_FORMAT.match(code) for code in codes), codes
    # Symbols easily misread on a small screen never appear.
    assert not set("".join(codes)) & set("01ILOU")


def test_new_codes_do_not_repeat() -> None:
    assert len({new_activation_code() for _ in range(1000)}) == 1000


def test_normalisation_ignores_case_dashes_and_spaces() -> None:
    assert normalize_activation_code(" abcd-efgh jkmn ") == "ABCDEFGHJKMN"


def test_hash_is_sha256_of_the_normalised_code() -> None:
    expected = hashlib.sha256(b"ABCDEFGHJKMN").hexdigest()

    assert hash_activation_code("ABCD-EFGH-JKMN") == expected
    assert hash_activation_code("abcdefghjkmn") == expected
    assert hash_activation_code("ABCD-EFGH-JKMP") != expected
