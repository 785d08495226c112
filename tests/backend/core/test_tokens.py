"""backend.core.tokens: issuing, key parsing and every way verification must refuse a token."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from backend.core.tokens import (
    InvalidToken,
    SigningKey,
    StaticKeySource,
    TokenIssuer,
    TokenVerifier,
    VerificationKey,
    decode_with_key,
    generate_signing_key,
    public_jwk,
    unverified_header,
    verification_key_from_jwk,
)
from tests.support.tokens import (
    compact,
    forge,
    forge_hs256,
    public_pem,
    tamper_claims,
    unverified_parts,
)

ISSUER = "https://portal.test"
AUDIENCE = "mpac"
LEEWAY_S = 30


@pytest.fixture(scope="module")
def es_key() -> SigningKey:
    return generate_signing_key("ES256")


@pytest.fixture(scope="module")
def rs_key() -> SigningKey:
    return generate_signing_key("RS256")


def _verifier(*keys: SigningKey) -> TokenVerifier:
    return TokenVerifier(
        StaticKeySource(key.verification_key() for key in keys),
        issuer=ISSUER,
        audience=AUDIENCE,
        leeway_s=LEEWAY_S,
    )


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(uuid.uuid4()),
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
        "token_use": "user",
        "role": "cashier",
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def _verify(verifier: TokenVerifier, token: str, uses: tuple[str, ...] = ("user",)) -> Any:
    return asyncio.run(verifier.verify(token, token_uses=uses))


def _refusal(verifier: TokenVerifier, token: str, uses: tuple[str, ...] = ("user",)) -> str:
    with pytest.raises(InvalidToken) as caught:
        _verify(verifier, token, uses)
    return caught.value.reason


# --- issuing ------------------------------------------------------------------------------


def test_issued_token_carries_kid_typ_and_registered_claims(es_key: SigningKey) -> None:
    issued = TokenIssuer(es_key, issuer=ISSUER, audience=AUDIENCE).issue(
        subject="user-1", token_use="user", ttl_s=900, claims={"role": "auditor"}
    )
    header, claims = unverified_parts(issued.token)
    assert header == {"alg": "ES256", "kid": es_key.kid, "typ": "at+jwt"}
    assert claims["exp"] - claims["iat"] == 900
    assert claims["nbf"] == claims["iat"]
    assert claims["iss"] == ISSUER
    assert claims["aud"] == AUDIENCE
    assert claims["sub"] == "user-1"
    assert claims["role"] == "auditor"
    assert claims["jti"] == issued.jti
    assert issued.expires_in_s == 900


def test_issuer_claims_cannot_override_registered_claims(es_key: SigningKey) -> None:
    issued = TokenIssuer(es_key, issuer=ISSUER, audience=AUDIENCE).issue(
        subject="user-1",
        token_use="user",
        ttl_s=60,
        claims={"iss": "https://evil.test", "aud": "other", "token_use": "device"},
    )
    _, claims = unverified_parts(issued.token)
    assert (claims["iss"], claims["aud"], claims["token_use"]) == (ISSUER, AUDIENCE, "user")


@pytest.mark.parametrize("algorithm", ["ES256", "RS256"])
def test_issued_token_verifies_with_its_key(algorithm: str) -> None:
    key = generate_signing_key(algorithm)
    issued = TokenIssuer(key, issuer=ISSUER, audience=AUDIENCE).issue(
        subject="terminal-1", token_use="device", ttl_s=90, claims={"psp_id": "p"}
    )
    claims = _verify(_verifier(key), issued.token, ("device",))
    assert claims["sub"] == "terminal-1"
    assert claims["psp_id"] == "p"


def test_generate_signing_key_refuses_symmetric_algorithms() -> None:
    with pytest.raises(ValueError, match="not allowed"):
        generate_signing_key("HS256")


def test_public_jwk_never_contains_the_private_part(es_key: SigningKey, rs_key: SigningKey) -> None:
    for key in (es_key, rs_key):
        jwk = key.public_jwk()
        assert jwk["kid"] == key.kid
        assert jwk["alg"] == key.algorithm
        assert jwk["use"] == "sig"
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk)


# --- parsing JWKs -------------------------------------------------------------------------


def test_verification_key_from_public_ec_jwk(es_key: SigningKey) -> None:
    key = verification_key_from_jwk(es_key.public_jwk())
    assert key.kid == es_key.kid
    assert key.algorithm == "ES256"
    assert key.public_key.public_numbers() == es_key.private_key.public_key().public_numbers()


def test_verification_key_from_public_rsa_jwk_is_rs256(rs_key: SigningKey) -> None:
    jwk = rs_key.public_jwk()
    del jwk["alg"]
    key = verification_key_from_jwk(jwk, kid="override")
    assert key.algorithm == "RS256"
    assert key.kid == "override"


def test_verification_key_from_jwk_refuses_private_ec_key(es_key: SigningKey) -> None:
    private_jwk = ECAlgorithm.to_jwk(es_key.private_key, as_dict=True)
    assert "d" in private_jwk
    with pytest.raises(ValueError, match="public"):
        verification_key_from_jwk(private_jwk)


def test_verification_key_from_jwk_refuses_private_rsa_key(rs_key: SigningKey) -> None:
    private_jwk = RSAAlgorithm.to_jwk(rs_key.private_key, as_dict=True)
    with pytest.raises(ValueError, match="public"):
        verification_key_from_jwk(private_jwk)


@pytest.mark.parametrize("curve", [ec.SECP384R1(), ec.SECP521R1(), ec.SECP256K1()])
def test_verification_key_from_jwk_refuses_other_curves(curve: ec.EllipticCurve) -> None:
    other = ec.generate_private_key(curve).public_key()
    jwk = ECAlgorithm.to_jwk(other, as_dict=True)
    with pytest.raises(ValueError, match="P-256"):
        verification_key_from_jwk(jwk)


def test_verification_key_from_jwk_refuses_symmetric_key() -> None:
    with pytest.raises(ValueError, match="only public EC P-256 or RSA"):
        verification_key_from_jwk({"kty": "oct", "k": "c2VjcmV0", "kid": "k1"})


@pytest.mark.parametrize("declared", ["RS256", "HS256", "none", "ES384"])
def test_verification_key_from_jwk_refuses_declared_algorithm_mismatch(
    es_key: SigningKey, declared: str
) -> None:
    jwk = {**es_key.public_jwk(), "alg": declared}
    with pytest.raises(ValueError, match="declares alg"):
        verification_key_from_jwk(jwk)


def test_ec_jwk_with_a_point_off_the_curve_is_refused(es_key: SigningKey) -> None:
    jwk = es_key.public_jwk()
    with pytest.raises(ValueError, match="not on the curve"):
        verification_key_from_jwk({**jwk, "x": jwk["y"]})


def test_ec_jwk_with_p384_coordinates_labelled_p256_is_a_value_error() -> None:
    # PyJWT raises its own InvalidKeyError here; callers (parse_jwks) only expect ValueError.
    other = ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP384R1()).public_key(), as_dict=True)
    with pytest.raises(ValueError, match="unusable JWK"):
        verification_key_from_jwk({**other, "crv": "P-256"})


@pytest.mark.parametrize("missing", ["x", "y"])
def test_ec_jwk_missing_a_coordinate_is_a_value_error(es_key: SigningKey, missing: str) -> None:
    jwk = es_key.public_jwk()
    del jwk[missing]
    with pytest.raises(ValueError, match="unusable JWK"):
        verification_key_from_jwk(jwk)


def test_rsa_jwk_missing_the_modulus_is_a_value_error(rs_key: SigningKey) -> None:
    jwk = rs_key.public_jwk()
    del jwk["n"]
    with pytest.raises(ValueError, match="unusable JWK"):
        verification_key_from_jwk(jwk)


# --- the verifier's refusals --------------------------------------------------------------


def test_alg_none_is_refused_before_any_key_lookup(es_key: SigningKey) -> None:
    token = forge(_claims(), None, alg="none", headers={"kid": es_key.kid})
    assert _refusal(_verifier(es_key), token) == "algorithm_not_allowed"


def test_hs256_signed_with_the_public_key_pem_is_refused(es_key: SigningKey) -> None:
    token = forge_hs256(_claims(), public_pem(es_key), headers={"kid": es_key.kid})
    assert _refusal(_verifier(es_key), token) == "algorithm_not_allowed"


def test_unverified_header_refuses_disallowed_algorithms() -> None:
    for algorithm in ("none", "HS256", "HS512", "ES384", "PS256", None):
        header: dict[str, Any] = {"kid": "k"} if algorithm is None else {"alg": algorithm}
        token = compact(header, _claims(), lambda _: b"sig")
        with pytest.raises(InvalidToken) as caught:
            unverified_header(token)
        assert caught.value.reason == "algorithm_not_allowed", algorithm


def test_rs256_header_on_an_es256_kid_is_an_algorithm_mismatch(
    es_key: SigningKey, rs_key: SigningKey
) -> None:
    token = forge(_claims(), rs_key.private_key, alg="RS256", headers={"kid": es_key.kid})
    assert _refusal(_verifier(es_key), token) == "algorithm_mismatch"


def test_decode_with_key_checks_the_header_algorithm_against_the_key(
    es_key: SigningKey,
) -> None:
    token = forge(_claims(), es_key)
    with pytest.raises(InvalidToken) as caught:
        decode_with_key(
            token,
            es_key.verification_key(),
            "RS256",
            audience=AUDIENCE,
            issuer=ISSUER,
            leeway_s=0,
            required=(),
        )
    assert caught.value.reason == "algorithm_mismatch"


def test_token_expired_beyond_the_leeway_is_refused(es_key: SigningKey) -> None:
    now = int(time.time())
    token = forge(_claims(iat=now - 600, nbf=now - 600, exp=now - LEEWAY_S - 5), es_key)
    assert _refusal(_verifier(es_key), token) == "expired"


def test_token_expired_within_the_leeway_is_accepted(es_key: SigningKey) -> None:
    now = int(time.time())
    token = forge(_claims(iat=now - 600, nbf=now - 600, exp=now - LEEWAY_S + 10), es_key)
    assert _verify(_verifier(es_key), token)["exp"] == now - LEEWAY_S + 10


def test_token_not_valid_yet_is_refused(es_key: SigningKey) -> None:
    now = int(time.time())
    token = forge(_claims(nbf=now + 600, exp=now + 900), es_key)
    assert _refusal(_verifier(es_key), token) == "not_yet_valid"


def test_wrong_audience_is_refused(es_key: SigningKey) -> None:
    token = forge(_claims(aud="another-platform"), es_key)
    assert _refusal(_verifier(es_key), token) == "wrong_audience"


def test_wrong_issuer_is_refused(es_key: SigningKey) -> None:
    token = forge(_claims(iss="https://evil.test"), es_key)
    assert _refusal(_verifier(es_key), token) == "wrong_issuer"


@pytest.mark.parametrize("claim", ["exp", "iat", "sub", "jti", "token_use", "aud", "iss"])
def test_token_missing_a_required_claim_is_refused(es_key: SigningKey, claim: str) -> None:
    token = forge(_claims(**{claim: None}), es_key)
    assert _refusal(_verifier(es_key), token) == "missing_claim"


def test_unknown_kid_is_refused(es_key: SigningKey) -> None:
    token = forge(_claims(), es_key, headers={"kid": "no-such-kid"})
    assert _refusal(_verifier(es_key), token) == "unknown_kid"


@pytest.mark.parametrize("kid", [None, ""])
def test_missing_or_empty_kid_is_refused(es_key: SigningKey, kid: Any) -> None:
    token = forge(_claims(), es_key, headers={"kid": kid})
    assert _refusal(_verifier(es_key), token) == "missing_kid"


def test_non_string_kid_is_refused(es_key: SigningKey) -> None:
    signer = ECAlgorithm(ECAlgorithm.SHA256)
    token = compact(
        {"alg": "ES256", "kid": 42},
        _claims(),
        lambda data: signer.sign(data, es_key.private_key),
    )
    assert _refusal(_verifier(es_key), token) in {"missing_kid", "malformed"}


def test_signature_by_a_foreign_key_under_a_real_kid_is_refused(es_key: SigningKey) -> None:
    intruder = generate_signing_key("ES256")
    token = forge(_claims(), intruder.private_key, headers={"kid": es_key.kid})
    assert _refusal(_verifier(es_key), token) == "bad_signature"


def test_tampered_payload_is_refused(es_key: SigningKey) -> None:
    token = tamper_claims(forge(_claims(role="cashier"), es_key), role="psp_admin")
    assert _refusal(_verifier(es_key), token) == "bad_signature"


def test_token_use_outside_the_allowed_set_is_refused(es_key: SigningKey) -> None:
    token = forge(_claims(token_use="client_assertion"), es_key)
    assert _refusal(_verifier(es_key), token, ("user", "device")) == "wrong_token_use"


def test_device_token_is_refused_where_only_user_tokens_are_allowed(es_key: SigningKey) -> None:
    token = forge(_claims(token_use="device"), es_key)
    assert _refusal(_verifier(es_key), token, ("user",)) == "wrong_token_use"


@pytest.mark.parametrize(
    "garbage",
    ["", "not-a-jwt", "a.b.c", "a.b", "eyJhbGciOiJFUzI1NiJ9", "....", "eyJ9.eyJ9.eyJ9"],
)
def test_garbage_is_malformed(es_key: SigningKey, garbage: str) -> None:
    assert _refusal(_verifier(es_key), garbage) == "malformed"


def test_header_that_is_not_an_object_is_malformed(es_key: SigningKey) -> None:
    token = "W10." + forge(_claims(), es_key).split(".", 1)[1]  # header "[]"
    assert _refusal(_verifier(es_key), token) == "malformed"


def test_invalid_token_carries_reason_and_detail() -> None:
    error = InvalidToken("expired", "the token has expired")
    assert (error.reason, error.detail) == ("expired", "the token has expired")
    assert str(error) == "expired: the token has expired"


def test_static_key_source_returns_only_its_keys(es_key: SigningKey) -> None:
    source = StaticKeySource([es_key.verification_key()])
    assert asyncio.run(source.get(es_key.kid)) == es_key.verification_key()
    assert asyncio.run(source.get("other")) is None


def test_public_jwk_of_rsa_key_round_trips(rs_key: SigningKey) -> None:
    public_key = rs_key.private_key.public_key()
    assert isinstance(public_key, rsa.RSAPublicKey)
    jwk = public_jwk(public_key, kid=None, algorithm="RS256")
    assert "kid" not in jwk
    parsed = verification_key_from_jwk(jwk, kid="k")
    assert parsed.public_key.public_numbers() == public_key.public_numbers()
    token = jwt.encode(_claims(), rs_key.private_key, algorithm="RS256", headers={"kid": "k"})
    verifier = TokenVerifier(
        StaticKeySource([parsed]), issuer=ISSUER, audience=AUDIENCE, leeway_s=0
    )
    assert _verify(verifier, token)["iss"] == ISSUER


# --- remembering verified tokens -----------------------------------------------------------


class _MutableKeySource:
    """Keys that can be withdrawn, as a JWKS after an emergency rotation."""

    def __init__(self, *keys: SigningKey) -> None:
        self.keys = {key.kid: key.verification_key() for key in keys}
        self.lookups = 0

    async def get(self, kid: str) -> VerificationKey | None:
        self.lookups += 1
        return self.keys.get(kid)


def _counting_decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    import backend.core.tokens as tokens

    decoded: list[str] = []
    real = tokens.decode_with_key

    def counting(token: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        decoded.append(token)
        return real(token, *args, **kwargs)

    monkeypatch.setattr(tokens, "decode_with_key", counting)
    return decoded


def test_a_verified_token_is_not_decoded_again(
    es_key: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded = _counting_decodes(monkeypatch)
    verifier = _verifier(es_key)
    token = forge(_claims(), es_key)
    first, second = _verify(verifier, token), _verify(verifier, token)
    assert first == second
    assert decoded == [token]
    # Callers get their own copy: changing it changes nothing remembered.
    second["role"] = "psp_admin"
    assert _verify(verifier, token)["role"] == "cashier"


def test_a_remembered_token_still_has_its_token_use_checked(es_key: SigningKey) -> None:
    verifier = _verifier(es_key)
    token = forge(_claims(token_use="device"), es_key)
    assert _verify(verifier, token, ("device",))["token_use"] == "device"
    assert _refusal(verifier, token, ("user",)) == "wrong_token_use"


def test_a_remembered_token_is_refused_once_its_key_is_withdrawn(es_key: SigningKey) -> None:
    source = _MutableKeySource(es_key)
    verifier = TokenVerifier(source, issuer=ISSUER, audience=AUDIENCE, leeway_s=LEEWAY_S)
    token = forge(_claims(), es_key)
    _verify(verifier, token)
    source.keys.clear()
    assert _refusal(verifier, token) == "unknown_kid"


def test_a_remembered_token_is_verified_again_when_its_kid_serves_another_key(
    es_key: SigningKey,
) -> None:
    source = _MutableKeySource(es_key)
    verifier = TokenVerifier(source, issuer=ISSUER, audience=AUDIENCE, leeway_s=LEEWAY_S)
    token = forge(_claims(), es_key)
    _verify(verifier, token)
    other = generate_signing_key("ES256")
    source.keys[es_key.kid] = SigningKey(es_key.kid, "ES256", other.private_key).verification_key()
    assert _refusal(verifier, token) == "bad_signature"


def test_a_remembered_token_is_refused_once_it_expires(es_key: SigningKey) -> None:
    verifier = TokenVerifier(
        StaticKeySource([es_key.verification_key()]), issuer=ISSUER, audience=AUDIENCE, leeway_s=0
    )
    exp = int(time.time()) + 1
    token = forge(_claims(exp=exp, iat=exp - 60, nbf=exp - 60), es_key)
    _verify(verifier, token)
    while time.time() < exp + 0.05:
        time.sleep(0.05)
    assert _refusal(verifier, token) == "expired"


def test_a_modified_copy_of_a_remembered_token_is_verified_in_full(es_key: SigningKey) -> None:
    verifier = _verifier(es_key)
    token = forge(_claims(role="cashier"), es_key)
    _verify(verifier, token)
    assert _refusal(verifier, tamper_claims(token, role="psp_admin")) == "bad_signature"


def test_refused_tokens_are_never_remembered(
    es_key: SigningKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded = _counting_decodes(monkeypatch)
    verifier = _verifier(es_key)
    token = forge(_claims(aud="other"), es_key)
    assert _refusal(verifier, token) == "wrong_audience"
    assert _refusal(verifier, token) == "wrong_audience"
    assert decoded == [token, token]


def test_remembered_tokens_are_bounded(es_key: SigningKey) -> None:
    verifier = TokenVerifier(
        StaticKeySource([es_key.verification_key()]),
        issuer=ISSUER,
        audience=AUDIENCE,
        leeway_s=LEEWAY_S,
        cache_size=2,
    )
    for _ in range(5):
        _verify(verifier, forge(_claims(), es_key))
    assert len(verifier._verified) == 2
