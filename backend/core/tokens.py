"""Issuing and verifying the platform's JWTs (human and device access tokens).

Only asymmetric algorithms are accepted, and each key is bound to one algorithm: a token whose
header names another algorithm than its key's (``alg`` confusion, ``none``, HS256 signed with a
public key) is refused before any signature check.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ALLOWED_ALGORITHMS = frozenset({"ES256", "RS256"})

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey


class InvalidToken(Exception):
    """A token was refused; ``reason`` is a stable code for audit logs and problem details."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class VerificationKey:
    kid: str
    algorithm: str
    public_key: PublicKey


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    algorithm: str
    private_key: PrivateKey

    def verification_key(self) -> VerificationKey:
        return VerificationKey(self.kid, self.algorithm, self.private_key.public_key())

    def public_jwk(self) -> dict[str, Any]:
        return public_jwk(self.private_key.public_key(), kid=self.kid, algorithm=self.algorithm)


def generate_signing_key(algorithm: str = "ES256") -> SigningKey:
    private_key: PrivateKey
    if algorithm == "ES256":
        private_key = ec.generate_private_key(ec.SECP256R1())
    elif algorithm == "RS256":
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        raise ValueError(f"algorithm {algorithm!r} is not allowed")
    return SigningKey(kid=uuid.uuid4().hex, algorithm=algorithm, private_key=private_key)


def public_jwk(key: PublicKey, *, kid: str | None, algorithm: str) -> dict[str, Any]:
    if isinstance(key, ec.EllipticCurvePublicKey):
        jwk: dict[str, Any] = ECAlgorithm.to_jwk(key, as_dict=True)
    else:
        jwk = RSAAlgorithm.to_jwk(key, as_dict=True)
    jwk.update({"alg": algorithm, "use": "sig"})
    if kid is not None:
        jwk["kid"] = kid
    return jwk


def verification_key_from_jwk(jwk: Mapping[str, Any], *, kid: str | None = None) -> VerificationKey:
    """Parse a public JWK; the algorithm comes from the key type, never from a token header."""
    kty = jwk.get("kty")
    try:
        if kty == "EC" and jwk.get("crv") == "P-256" and "d" not in jwk:
            algorithm = "ES256"
            key: Any = ECAlgorithm.from_jwk(dict(jwk))
        elif kty == "RSA" and "d" not in jwk:
            algorithm = "RS256"
            key = RSAAlgorithm.from_jwk(dict(jwk))
        else:
            raise ValueError("only public EC P-256 or RSA keys are accepted")
    except jwt.InvalidKeyError as exc:
        # PyJWT's own error for missing or mis-sized members; callers expect ValueError.
        raise ValueError(f"unusable JWK: {exc}") from exc
    declared = jwk.get("alg")
    if declared is not None and declared != algorithm:
        raise ValueError(f"key declares alg {declared!r}, expected {algorithm}")
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise ValueError("not a public key")
    return VerificationKey(kid=kid or str(jwk.get("kid", "")), algorithm=algorithm, public_key=key)


class KeySource(Protocol):
    async def get(self, kid: str) -> VerificationKey | None: ...


class StaticKeySource:
    def __init__(self, keys: Iterable[VerificationKey]) -> None:
        self._keys = {key.kid: key for key in keys}

    async def get(self, kid: str) -> VerificationKey | None:
        return self._keys.get(kid)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    jti: str
    expires_in_s: int


class TokenIssuer:
    def __init__(self, key: SigningKey, *, issuer: str, audience: str) -> None:
        self.key = key
        self.issuer = issuer
        self.audience = audience

    def issue(
        self, *, subject: str, token_use: str, ttl_s: int, claims: Mapping[str, Any]
    ) -> IssuedToken:
        now = int(time.time())
        jti = uuid.uuid4().hex
        payload = {
            **claims,
            "iss": self.issuer,
            "aud": self.audience,
            "sub": subject,
            "iat": now,
            "nbf": now,
            "exp": now + ttl_s,
            "jti": jti,
            "token_use": token_use,
        }
        token = jwt.encode(
            payload,
            self.key.private_key,
            algorithm=self.key.algorithm,
            headers={"kid": self.key.kid, "typ": "at+jwt"},
        )
        return IssuedToken(token=token, jti=jti, expires_in_s=ttl_s)


def unverified_header(token: str) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise InvalidToken("malformed", "the token is not a well-formed JWS") from exc
    algorithm = header.get("alg")
    if algorithm not in ALLOWED_ALGORITHMS:
        raise InvalidToken(
            "algorithm_not_allowed", f"algorithm {algorithm!r} is not accepted (ES256, RS256)"
        )
    return header


def decode_with_key(
    token: str,
    key: VerificationKey,
    header_algorithm: str,
    *,
    audience: str | Iterable[str],
    issuer: str | None,
    leeway_s: int,
    required: Iterable[str],
) -> dict[str, Any]:
    """Check signature and registered claims, translating PyJWT's errors to stable reasons."""
    if header_algorithm != key.algorithm:
        raise InvalidToken(
            "algorithm_mismatch",
            f"key {key.kid!r} signs with {key.algorithm}, not {header_algorithm}",
        )
    try:
        return jwt.decode(
            token,
            key.public_key,
            algorithms=[key.algorithm],
            audience=list(audience) if not isinstance(audience, str) else audience,
            issuer=issuer,
            leeway=leeway_s,
            options={"require": list(required)},
        )
    except jwt.ExpiredSignatureError as exc:
        raise InvalidToken("expired", "the token has expired") from exc
    except jwt.ImmatureSignatureError as exc:
        raise InvalidToken("not_yet_valid", "the token is not valid yet") from exc
    except jwt.InvalidAudienceError as exc:
        raise InvalidToken("wrong_audience", "the token was issued for another audience") from exc
    except jwt.InvalidIssuerError as exc:
        raise InvalidToken("wrong_issuer", "the token was issued by another issuer") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise InvalidToken("missing_claim", str(exc)) from exc
    except jwt.InvalidSignatureError as exc:
        raise InvalidToken("bad_signature", "the token signature does not verify") from exc
    except jwt.PyJWTError as exc:
        raise InvalidToken("malformed", f"the token could not be decoded: {exc}") from exc


@dataclass(frozen=True, slots=True)
class _Verified:
    kid: str
    key: VerificationKey
    claims: dict[str, Any]
    expires_at: int


# Tokens whose signature and claims verified, by exact token text: a device presents the same
# token on every request for its 60-120 s, and checking an ES256 signature (with PyJWT's parsing
# around it) is most of what authenticating a request costs.
VERIFIED_CACHE_SIZE = 4096


class TokenVerifier:
    """Verifies access tokens; remembers the ones that verified until they expire.

    A remembered token is only accepted again while its key is still served by the key source
    under the same kid (a key withdrawn from the JWKS ends its tokens at once, as before) and
    while ``exp`` (plus the leeway) has not passed; ``token_use`` is checked on every call.
    Only the exact same token text hits, so a modified token is always verified in full.
    Refused tokens are never remembered.
    """

    def __init__(
        self,
        keys: KeySource,
        *,
        issuer: str,
        audience: str,
        leeway_s: int,
        cache_size: int = VERIFIED_CACHE_SIZE,
    ) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.leeway_s = leeway_s
        self._cache_size = cache_size
        self._verified: OrderedDict[str, _Verified] = OrderedDict()

    async def verify(self, token: str, *, token_uses: Iterable[str]) -> dict[str, Any]:
        claims = await self._remembered(token)
        if claims is None:
            claims = await self._verify(token)
        allowed_uses = set(token_uses)
        if claims.get("token_use") not in allowed_uses:
            raise InvalidToken(
                "wrong_token_use", f"a {claims.get('token_use')!r} token cannot be used here"
            )
        return claims

    async def _remembered(self, token: str) -> dict[str, Any] | None:
        verified = self._verified.get(token)
        if verified is None:
            return None
        current = await self.keys.get(verified.kid)
        # PyJWT's rule: expired once exp <= now - leeway.
        if current != verified.key or verified.expires_at <= time.time() - self.leeway_s:
            self._verified.pop(token, None)
            return None
        self._verified.move_to_end(token)
        return dict(verified.claims)

    def _remember(self, token: str, kid: str, key: VerificationKey, claims: dict[str, Any]) -> None:
        if self._cache_size <= 0:
            return
        self._verified[token] = _Verified(kid, key, dict(claims), int(claims["exp"]))
        while len(self._verified) > self._cache_size:
            self._verified.popitem(last=False)

    async def _verify(self, token: str) -> dict[str, Any]:
        header = unverified_header(token)
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidToken("missing_kid", "the token header carries no kid")
        key = await self.keys.get(kid)
        if key is None:
            raise InvalidToken("unknown_kid", f"no signing key {kid!r} is published")
        claims = decode_with_key(
            token,
            key,
            header["alg"],
            audience=self.audience,
            issuer=self.issuer,
            leeway_s=self.leeway_s,
            required=("exp", "iat", "sub", "jti", "token_use"),
        )
        if isinstance(claims.get("exp"), int | float):
            self._remember(token, kid, key, claims)
        return claims
