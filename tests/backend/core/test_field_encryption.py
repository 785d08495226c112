"""backend.core.field_encryption: AES-256-GCM column encryption bound to row and column."""

from __future__ import annotations

import base64

import pytest

from backend.core.field_encryption import FieldCipher, FieldDecryptionError, generate_key_spec

AAD = "portal.merchants.bank_account:0b7f"


@pytest.fixture
def cipher() -> FieldCipher:
    return FieldCipher.from_spec(generate_key_spec("k1"))


def test_round_trip(cipher: FieldCipher) -> None:
    token = cipher.encrypt("DE89 3704 0044 0532 0130 00", associated_data=AAD)
    assert cipher.decrypt(token, associated_data=AAD) == "DE89 3704 0044 0532 0130 00"


def test_round_trip_of_unicode_and_empty_values(cipher: FieldCipher) -> None:
    for plaintext in ("", "Zürich ß ✓ 東京", "x" * 10_000):
        assert (
            cipher.decrypt(cipher.encrypt(plaintext, associated_data=AAD), associated_data=AAD)
            == plaintext
        )


def test_ciphertext_names_version_and_key_and_hides_the_plaintext(cipher: FieldCipher) -> None:
    token = cipher.encrypt("secret-iban", associated_data=AAD)
    version, kid, nonce, _ = token.split(".")
    assert (version, kid) == ("v1", "k1")
    assert len(base64.urlsafe_b64decode(nonce + "==")) == 12
    assert "secret-iban" not in token
    assert cipher.key_id_of(token) == "k1"


def test_same_plaintext_encrypts_differently_each_time(cipher: FieldCipher) -> None:
    assert cipher.encrypt("same", associated_data=AAD) != cipher.encrypt(
        "same", associated_data=AAD
    )


def test_tampered_ciphertext_does_not_decrypt(cipher: FieldCipher) -> None:
    version, kid, nonce, sealed = cipher.encrypt("amount=100", associated_data=AAD).split(".")
    raw = bytearray(base64.urlsafe_b64decode(sealed + "=" * (-len(sealed) % 4)))
    raw[0] ^= 0x01
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    with pytest.raises(FieldDecryptionError, match="authenticate"):
        cipher.decrypt(".".join((version, kid, nonce, forged)), associated_data=AAD)


def test_swapped_nonce_does_not_decrypt(cipher: FieldCipher) -> None:
    first = cipher.encrypt("a", associated_data=AAD).split(".")
    second = cipher.encrypt("a", associated_data=AAD).split(".")
    with pytest.raises(FieldDecryptionError):
        cipher.decrypt(".".join((*first[:2], second[2], first[3])), associated_data=AAD)


def test_ciphertext_copied_to_another_row_does_not_decrypt(cipher: FieldCipher) -> None:
    token = cipher.encrypt("DE89", associated_data="portal.merchants.bank_account:row-1")
    with pytest.raises(FieldDecryptionError):
        cipher.decrypt(token, associated_data="portal.merchants.bank_account:row-2")


def test_unknown_kid_is_refused(cipher: FieldCipher) -> None:
    other = FieldCipher.from_spec(generate_key_spec("k9"))
    with pytest.raises(FieldDecryptionError, match="k9"):
        cipher.decrypt(other.encrypt("x", associated_data=AAD), associated_data=AAD)


def test_same_kid_with_another_key_does_not_decrypt(cipher: FieldCipher) -> None:
    impostor = FieldCipher.from_spec(generate_key_spec("k1"))
    with pytest.raises(FieldDecryptionError, match="authenticate"):
        cipher.decrypt(impostor.encrypt("x", associated_data=AAD), associated_data=AAD)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "plaintext",
        "v1.k1.abc",
        "v2.k1.AAAA.AAAA",
        "a.b.c.d.e",
        # Well-formed envelope, broken parts: a short nonce, bad base64, an empty tag.
        "v1.k1.AAAA.AAAAAAAAAAAAAAAAAAAAAA",
        "v1.k1.!!!.AAAAAAAAAAAAAAAAAAAAAA",
        "v1.k1.AAAAAAAAAAAAAAAA.A",
        "v1.k1.AAAAAAAAAAAAAAAA.AAAAA",
        "v1.k1.AAAAAAAAAAAAAAAA.",
    ],
)
def test_values_that_are_not_field_ciphertexts_are_refused(cipher: FieldCipher, token: str) -> None:
    with pytest.raises(FieldDecryptionError):
        cipher.decrypt(token, associated_data=AAD)


def test_key_id_of_a_value_that_is_not_a_ciphertext_is_a_decryption_error(
    cipher: FieldCipher,
) -> None:
    with pytest.raises(FieldDecryptionError):
        cipher.key_id_of("plaintext")
    with pytest.raises(FieldDecryptionError):
        cipher.needs_reencryption("plaintext")


def test_rotation_keeps_old_ciphertexts_readable_and_flags_them_for_reencryption() -> None:
    old_spec = generate_key_spec("old")
    before = FieldCipher.from_spec(old_spec)
    legacy = before.encrypt("iban-1", associated_data=AAD)

    after = FieldCipher.from_spec(f"{generate_key_spec('new')},{old_spec}")
    assert after.active_kid == "new"
    assert after.decrypt(legacy, associated_data=AAD) == "iban-1"
    assert after.needs_reencryption(legacy)

    fresh = after.encrypt("iban-1", associated_data=AAD)
    assert after.key_id_of(fresh) == "new"
    assert not after.needs_reencryption(fresh)
    assert not before.needs_reencryption(legacy)
    with pytest.raises(FieldDecryptionError):
        before.decrypt(fresh, associated_data=AAD)


def test_spec_parsing_tolerates_blanks_and_keeps_the_first_key_active() -> None:
    spec = f" {generate_key_spec('a')} , ,{generate_key_spec('b')},"
    cipher = FieldCipher.from_spec(spec)
    assert list(cipher.keys) == ["a", "b"]
    assert cipher.active_kid == "a"


@pytest.mark.parametrize(
    "spec",
    [
        "",
        " , ",
        "no-separator",
        ":AAAA",
        "k1:" + base64.b64encode(b"short").decode(),
        "k.1:" + base64.urlsafe_b64encode(bytes(32)).decode(),
    ],
)
def test_invalid_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError, match=r"field encryption key|kid:base64key"):
        FieldCipher.from_spec(spec)


def test_generated_spec_is_a_256_bit_key() -> None:
    kid, _, encoded = generate_key_spec().partition(":")
    assert kid
    assert len(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))) == 32
