"""POST /v1/devices/enroll: a terminal registers its own public key with a one-time code."""

from __future__ import annotations

import base64
import hashlib
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from backend.core.settings import Settings
from tests.backend.portal.devices.db import (
    audit_rows,
    expire_activation_code,
    new_request_id,
    terminal_row,
)
from tests.support.portal import DeviceKey, Tenant, token_form

if TYPE_CHECKING:
    from tests.backend.portal.devices.conftest import RegisteredTerminal

ENROLL = "/v1/devices/enroll"


def rfc7638_thumbprint(jwk: dict[str, Any]) -> str:
    """Written out by hand from RFC 7638, section 3.2: required members, sorted, no spaces."""
    members = f'{{"crv":"{jwk["crv"]}","kty":"{jwk["kty"]}","x":"{jwk["x"]}","y":"{jwk["y"]}"}}'
    digest = hashlib.sha256(members.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def enrollment_body(
    terminal: RegisteredTerminal, key: DeviceKey | None = None, **overrides: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "activation_code": terminal.activation_code,
        "public_jwk": (key or DeviceKey()).public_jwk(),
        "serial": terminal.serial,
    }
    body.update(overrides)
    return body


def assert_enrollment_refused(
    portal: httpx.Client,
    settings: Settings,
    body: dict[str, Any],
    *,
    status: int,
    code: str,
    terminal_id: str | None,
) -> None:
    """The refusal is a problem document, is audited with its reason, and changes nothing."""
    before = terminal_row(settings, terminal_id) if terminal_id else None
    request_id = new_request_id()

    response = portal.post(ENROLL, json=body, headers={"x-request-id": request_id})

    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code
    rows = audit_rows(settings, request_id=request_id)
    assert [(row["event_type"], row["outcome"], row["reason"]) for row in rows] == [
        ("terminal.enrollment_refused", "failure", code)
    ]
    if terminal_id is not None:
        assert rows[0]["target_id"] == terminal_id
        assert terminal_row(settings, terminal_id) == before


# --- the happy path ---------------------------------------------------------------------------


def test_enrollment_activates_the_terminal_under_the_devices_key(
    portal_client: httpx.Client,
    test_settings: Settings,
    tenant: Tenant,
    registered: RegisteredTerminal,
) -> None:
    key = DeviceKey()
    jwk = key.public_jwk()
    request_id = new_request_id()

    response = portal_client.post(
        ENROLL, json=enrollment_body(registered, key), headers={"x-request-id": request_id}
    )

    assert response.status_code == 200, response.text
    enrollment = response.json()
    thumbprint = rfc7638_thumbprint(jwk)
    assert enrollment == {
        "client_id": registered.terminal_id,
        "terminal_id": registered.terminal_id,
        "psp_id": tenant.psp_id,
        "merchant_id": tenant.merchant_id,
        "store_id": tenant.store_a_id,
        "key_thumbprint": thumbprint,
        "issuer": test_settings.resolved_issuer,
        "token_endpoint": f"{test_settings.resolved_issuer}/oauth2/token",
        "token_endpoint_auth_method": "private_key_jwt",
        "token_endpoint_auth_signing_alg": "ES256",
    }
    shown = portal_client.get(
        f"/v1/terminals/{registered.terminal_id}", headers=tenant.admin.headers
    )
    assert shown.json()["status"] == "active"
    assert shown.json()["key_thumbprint"] == thumbprint
    assert shown.json()["enrolled_at"] is not None
    row = terminal_row(test_settings, registered.terminal_id)
    assert row["public_jwk"] == {
        "kty": "EC",
        "crv": "P-256",
        "x": jwk["x"],
        "y": jwk["y"],
        "kid": thumbprint,
        "alg": "ES256",
        "use": "sig",
    }
    assert row["activation_code_used_at"] is not None


def test_enrollment_is_audited_as_the_device_in_its_tenant(
    portal_client: httpx.Client,
    test_settings: Settings,
    tenant: Tenant,
    registered: RegisteredTerminal,
) -> None:
    key = DeviceKey()
    request_id = new_request_id()

    response = portal_client.post(
        ENROLL, json=enrollment_body(registered, key), headers={"x-request-id": request_id}
    )

    assert response.status_code == 200, response.text
    (row,) = audit_rows(test_settings, request_id=request_id)
    assert row["event_type"] == "terminal.enrolled"
    assert row["outcome"] == "success"
    assert row["actor_type"] == "device"
    assert row["actor_id"] == registered.terminal_id
    assert row["target_type"] == "terminal"
    assert row["target_id"] == registered.terminal_id
    assert str(row["merchant_id"]) == tenant.merchant_id
    assert str(row["store_id"]) == tenant.store_a_id
    assert row["detail"] == {"key_thumbprint": rfc7638_thumbprint(key.public_jwk())}


@pytest.mark.parametrize(
    "typed",
    [
        pytest.param(lambda code: code.lower(), id="lowercase"),
        pytest.param(lambda code: code.replace("-", ""), id="without-dashes"),
        pytest.param(lambda code: code.lower().replace("-", " "), id="lowercase-with-spaces"),
    ],
)
def test_activation_code_is_accepted_however_it_was_typed(
    portal_client: httpx.Client, registered: RegisteredTerminal, typed: Any
) -> None:
    typed_code = typed(registered.activation_code)
    assert typed_code != registered.activation_code

    response = portal_client.post(
        ENROLL, json=enrollment_body(registered, activation_code=typed_code)
    )

    assert response.status_code == 200, response.text
    assert response.json()["terminal_id"] == registered.terminal_id


def test_enrollment_without_a_serial_is_accepted(
    portal_client: httpx.Client, registered: RegisteredTerminal
) -> None:
    body = enrollment_body(registered)
    del body["serial"]

    response = portal_client.post(ENROLL, json=body)

    assert response.status_code == 200, response.text


# --- refusals about the code and the terminal -------------------------------------------------


def test_unknown_activation_code_is_refused(
    portal_client: httpx.Client, test_settings: Settings, registered: RegisteredTerminal
) -> None:
    assert_enrollment_refused(
        portal_client,
        test_settings,
        enrollment_body(registered, activation_code="ABCD-EFGH-JKMN"),
        status=400,
        code="activation_code_invalid",
        terminal_id=None,
    )
    assert terminal_row(test_settings, registered.terminal_id)["status"] == "pending"


def test_activation_code_cannot_be_used_twice(
    portal_client: httpx.Client, test_settings: Settings, registered: RegisteredTerminal
) -> None:
    first = portal_client.post(ENROLL, json=enrollment_body(registered))
    assert first.status_code == 200, first.text

    # A second device holding the same code cannot take the terminal over.
    assert_enrollment_refused(
        portal_client,
        test_settings,
        enrollment_body(registered, DeviceKey()),
        status=400,
        code="activation_code_used",
        terminal_id=registered.terminal_id,
    )
    assert (
        terminal_row(test_settings, registered.terminal_id)["key_thumbprint"]
        == first.json()["key_thumbprint"]
    )


def test_expired_activation_code_is_refused(
    portal_client: httpx.Client, test_settings: Settings, registered: RegisteredTerminal
) -> None:
    expire_activation_code(test_settings, registered.terminal_id)

    assert_enrollment_refused(
        portal_client,
        test_settings,
        enrollment_body(registered),
        status=400,
        code="activation_code_expired",
        terminal_id=registered.terminal_id,
    )
    assert terminal_row(test_settings, registered.terminal_id)["status"] == "pending"


@pytest.mark.parametrize("action", ["suspend", "decommission"])
def test_reenrollment_code_of_a_terminal_taken_out_of_service_is_refused(
    portal_client: httpx.Client,
    test_settings: Settings,
    tenant: Tenant,
    registered: RegisteredTerminal,
    action: str,
) -> None:
    first = portal_client.post(ENROLL, json=enrollment_body(registered))
    assert first.status_code == 200, first.text
    reissued = portal_client.post(
        f"/v1/terminals/{registered.terminal_id}/activation-code", headers=tenant.admin.headers
    )
    assert reissued.status_code == 201, reissued.text
    changed = portal_client.post(
        f"/v1/terminals/{registered.terminal_id}/{action}",
        headers=tenant.admin.headers,
        json={"reason": "reported stolen"},
    )
    assert changed.status_code == 200, changed.text

    assert_enrollment_refused(
        portal_client,
        test_settings,
        enrollment_body(registered, activation_code=reissued.json()["activation_code"]),
        status=400,
        code="terminal_not_enrollable",
        terminal_id=registered.terminal_id,
    )
    assert (
        terminal_row(test_settings, registered.terminal_id)["key_thumbprint"]
        == first.json()["key_thumbprint"]
    )


def test_code_of_a_terminal_decommissioned_before_enrolling_is_refused(
    portal_client: httpx.Client,
    test_settings: Settings,
    tenant: Tenant,
    registered: RegisteredTerminal,
) -> None:
    decommissioned = portal_client.post(
        f"/v1/terminals/{registered.terminal_id}/decommission",
        headers=tenant.admin.headers,
        json={"reason": "never delivered"},
    )
    assert decommissioned.status_code == 200, decommissioned.text

    assert_enrollment_refused(
        portal_client,
        test_settings,
        enrollment_body(registered),
        status=400,
        code="terminal_not_enrollable",
        terminal_id=registered.terminal_id,
    )
    assert terminal_row(test_settings, registered.terminal_id)["public_jwk"] is None


def test_code_presented_for_another_serial_is_refused_and_stays_usable(
    portal_client: httpx.Client, test_settings: Settings, registered: RegisteredTerminal
) -> None:
    assert_enrollment_refused(
        portal_client,
        test_settings,
        enrollment_body(registered, serial="SN-SOMEONE-ELSE"),
        status=400,
        code="serial_mismatch",
        terminal_id=registered.terminal_id,
    )

    # The refusal did not consume the code: the right terminal still enrolls with it.
    retry = portal_client.post(ENROLL, json=enrollment_body(registered))
    assert retry.status_code == 200, retry.text


# --- refusals about the key -------------------------------------------------------------------


def _private_p256_jwk() -> dict[str, Any]:
    return dict(ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()), as_dict=True))


def _rsa_public_jwk() -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    return dict(RSAAlgorithm.to_jwk(key, as_dict=True))


def _p384_public_jwk() -> dict[str, Any]:
    key = ec.generate_private_key(ec.SECP384R1()).public_key()
    return dict(ECAlgorithm.to_jwk(key, as_dict=True))


def _off_curve_jwk() -> dict[str, Any]:
    return {"kty": "EC", "crv": "P-256", "x": "A" * 43, "y": "A" * 43}


def _short_coordinates_jwk() -> dict[str, Any]:
    return {"kty": "EC", "crv": "P-256", "x": "abc", "y": "def"}


def _non_string_coordinates_jwk() -> dict[str, Any]:
    return {"kty": "EC", "crv": "P-256", "x": 5, "y": ["y"]}


def _no_coordinates_jwk() -> dict[str, Any]:
    return {"kty": "EC", "crv": "P-256"}


def _symmetric_jwk() -> dict[str, Any]:
    return {"kty": "oct", "k": "c2VjcmV0"}


def _ec_key_declaring_rs256() -> dict[str, Any]:
    return {**DeviceKey().public_jwk(), "alg": "RS256"}


@pytest.mark.parametrize(
    "make_jwk",
    [
        pytest.param(_private_p256_jwk, id="private-key-with-d"),
        pytest.param(_rsa_public_jwk, id="rsa"),
        pytest.param(_p384_public_jwk, id="p-384"),
        pytest.param(_off_curve_jwk, id="point-off-the-curve"),
        pytest.param(_short_coordinates_jwk, id="short-coordinates"),
        pytest.param(_non_string_coordinates_jwk, id="non-string-coordinates"),
        pytest.param(_no_coordinates_jwk, id="no-coordinates"),
        pytest.param(_symmetric_jwk, id="symmetric"),
        pytest.param(dict, id="empty"),
        pytest.param(_ec_key_declaring_rs256, id="ec-key-declaring-rs256"),
    ],
)
def test_anything_but_a_public_p256_key_is_refused(
    portal_client: httpx.Client,
    test_settings: Settings,
    registered: RegisteredTerminal,
    make_jwk: Any,
) -> None:
    assert_enrollment_refused(
        portal_client,
        test_settings,
        enrollment_body(registered, public_jwk=make_jwk()),
        status=422,
        code="invalid_public_key",
        terminal_id=registered.terminal_id,
    )

    retry = portal_client.post(ENROLL, json=enrollment_body(registered))
    assert retry.status_code == 200, retry.text


def test_private_key_material_is_never_stored(
    portal_client: httpx.Client, test_settings: Settings, registered: RegisteredTerminal
) -> None:
    private = _private_p256_jwk()

    portal_client.post(ENROLL, json=enrollment_body(registered, public_jwk=private))

    row = terminal_row(test_settings, registered.terminal_id)
    assert row["public_jwk"] is None
    assert private["d"] not in repr(row)


# --- re-enrollment ----------------------------------------------------------------------------


def test_reissued_code_enrolls_a_new_key_and_the_old_key_stops_working(
    portal_client: httpx.Client,
    tenant: Tenant,
    registered: RegisteredTerminal,
) -> None:
    old_key, new_key = DeviceKey(), DeviceKey()
    first = portal_client.post(ENROLL, json=enrollment_body(registered, old_key))
    assert first.status_code == 200, first.text
    token_endpoint = first.json()["token_endpoint"]

    reissued = portal_client.post(
        f"/v1/terminals/{registered.terminal_id}/activation-code", headers=tenant.admin.headers
    )
    assert reissued.status_code == 201, reissued.text
    second = portal_client.post(
        ENROLL,
        json=enrollment_body(
            registered, new_key, activation_code=reissued.json()["activation_code"]
        ),
    )

    assert second.status_code == 200, second.text
    assert second.json()["key_thumbprint"] == rfc7638_thumbprint(new_key.public_jwk())
    assert second.json()["key_thumbprint"] != first.json()["key_thumbprint"]
    old = portal_client.post(
        "/oauth2/token",
        data=token_form(old_key.assertion(registered.terminal_id, token_endpoint)),
    )
    assert old.status_code == 401, old.text
    assert old.json()["code"] == "assertion_bad_signature"
    new = portal_client.post(
        "/oauth2/token",
        data=token_form(new_key.assertion(registered.terminal_id, token_endpoint)),
    )
    assert new.status_code == 200, new.text


def test_reissuing_a_code_invalidates_the_previous_one(
    portal_client: httpx.Client,
    test_settings: Settings,
    tenant: Tenant,
    registered: RegisteredTerminal,
) -> None:
    reissued = portal_client.post(
        f"/v1/terminals/{registered.terminal_id}/activation-code", headers=tenant.admin.headers
    )
    assert reissued.status_code == 201, reissued.text
    assert reissued.json()["activation_code"] != registered.activation_code

    assert_enrollment_refused(
        portal_client,
        test_settings,
        enrollment_body(registered),
        status=400,
        code="activation_code_invalid",
        terminal_id=None,
    )
