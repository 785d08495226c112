"""A merchant's bank account at rest: AES-256-GCM ciphertext bound to its row, read back only
through the audited bank-account route."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from backend.core.database import create_engine
from backend.core.field_encryption import FieldCipher, FieldDecryptionError, generate_key_spec
from backend.core.settings import Settings
from tests.support.portal import Tenant, unique

BANK_ACCOUNT = {
    "bank_name": "Resona Bank",
    "branch": "Shinjuku",
    "account_number": "9081726354",
    "holder_name": "Encrypted Holder KK",
}


def _sql(settings: Settings, statement: str, **params: Any) -> list[Any]:
    async def execute() -> list[Any]:
        engine = create_engine(settings, application_name="tests-field-encryption")
        try:
            async with engine.begin() as connection:
                result = await connection.execute(text(statement), params)
                return list(result.all()) if result.returns_rows else []
        finally:
            await engine.dispose()

    return asyncio.run(execute())


def _merchant_with_account(
    client: httpx.Client, tenant: Tenant, account: dict[str, str] | None = None
) -> str:
    response = client.post(
        "/v1/merchants",
        headers=tenant.admin.headers,
        json={"name": unique("enc"), "bank_account": account or BANK_ACCOUNT},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _ciphertext(settings: Settings, merchant_id: str) -> str:
    rows = _sql(
        settings,
        "SELECT bank_account_ciphertext FROM portal.merchants WHERE id = :id",
        id=merchant_id,
    )
    return str(rows[0].bank_account_ciphertext)


def _set_ciphertext(settings: Settings, merchant_id: str, ciphertext: str) -> None:
    _sql(
        settings,
        "UPDATE portal.merchants SET bank_account_ciphertext = :c WHERE id = :id",
        c=ciphertext,
        id=merchant_id,
    )


def test_the_account_is_stored_as_versioned_ciphertext_under_the_active_key(
    portal_client: httpx.Client, test_settings: Settings, tenant: Tenant
) -> None:
    merchant_id = _merchant_with_account(portal_client, tenant)
    active_kid = test_settings.field_encryption_keys.split(",")[0].split(":")[0]
    ciphertext = _ciphertext(test_settings, merchant_id)
    version, kid, nonce, sealed = ciphertext.split(".")
    assert (version, kid) == ("v1", active_kid)
    assert nonce
    assert sealed

    row = _sql(
        test_settings,
        "SELECT m::text AS row FROM portal.merchants m WHERE id = :id",
        id=merchant_id,
    )[0].row
    for secret in ("9081726354", "Encrypted Holder KK", "Resona Bank", "Shinjuku"):
        assert secret not in row, f"{secret!r} is stored in clear"
    assert "6354" in row  # only the last four digits, for display


def test_the_ciphertext_opens_only_for_its_own_merchant_row(
    portal_client: httpx.Client, test_settings: Settings, tenant: Tenant
) -> None:
    merchant_id = _merchant_with_account(portal_client, tenant)
    cipher = FieldCipher.from_spec(test_settings.field_encryption_keys)
    ciphertext = _ciphertext(test_settings, merchant_id)
    own_row = f"portal.merchants.bank_account:{merchant_id}"
    assert json.loads(cipher.decrypt(ciphertext, associated_data=own_row)) == BANK_ACCOUNT
    with pytest.raises(FieldDecryptionError):
        cipher.decrypt(
            ciphertext, associated_data=f"portal.merchants.bank_account:{tenant.merchant_id}"
        )


def test_each_encryption_uses_a_fresh_nonce(
    portal_client: httpx.Client, test_settings: Settings, tenant: Tenant
) -> None:
    merchant_id = _merchant_with_account(portal_client, tenant)
    first = _ciphertext(test_settings, merchant_id)
    response = portal_client.patch(
        f"/v1/merchants/{merchant_id}",
        headers=tenant.admin.headers,
        json={"bank_account": BANK_ACCOUNT},
    )
    assert response.status_code == 200, response.text
    second = _ciphertext(test_settings, merchant_id)
    assert first != second
    assert first.split(".")[2] != second.split(".")[2]


def test_bank_account_reads_back_decrypted_with_last4_on_the_merchant(
    portal_client: httpx.Client, tenant: Tenant
) -> None:
    merchant_id = _merchant_with_account(portal_client, tenant)
    merchant = portal_client.get(f"/v1/merchants/{merchant_id}", headers=tenant.admin.headers)
    assert merchant.json()["bank_account_last4"] == "6354"
    assert "9081726354" not in merchant.text
    account = portal_client.get(
        f"/v1/merchants/{merchant_id}/bank-account", headers=tenant.admin.headers
    )
    assert account.status_code == 200, account.text
    assert account.json() == BANK_ACCOUNT
    viewed = portal_client.get(
        "/v1/audit-events",
        headers=tenant.admin.headers,
        params={"event_type": "merchant.bank_account_viewed"},
    ).json()["items"]
    assert viewed[0]["target_id"] == merchant_id
    assert viewed[0]["request_id"] == account.headers["x-request-id"]


def _assert_unreadable(response: httpx.Response) -> None:
    assert response.status_code == 409, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "bank_account_unreadable"
    assert "9081726354" not in response.text


def test_a_ciphertext_copied_into_another_merchant_is_a_clean_error_and_audited(
    portal_client: httpx.Client, test_settings: Settings, tenant: Tenant
) -> None:
    source = _merchant_with_account(portal_client, tenant)
    victim = _merchant_with_account(
        portal_client, tenant, {**BANK_ACCOUNT, "account_number": "1111222233"}
    )
    _set_ciphertext(test_settings, victim, _ciphertext(test_settings, source))

    response = portal_client.get(
        f"/v1/merchants/{victim}/bank-account", headers=tenant.admin.headers
    )
    _assert_unreadable(response)
    refused = portal_client.get(
        "/v1/audit-events",
        headers=tenant.admin.headers,
        params={"event_type": "merchant.bank_account_viewed", "outcome": "failure"},
    ).json()["items"]
    assert [e["request_id"] for e in refused] == [response.headers["x-request-id"]]
    assert (refused[0]["target_id"], refused[0]["reason"]) == (victim, "ciphertext_invalid")
    # The merchant itself still reads, and a new account replaces the bad one.
    assert portal_client.get(f"/v1/merchants/{victim}", headers=tenant.admin.headers).is_success
    replaced = portal_client.patch(
        f"/v1/merchants/{victim}", headers=tenant.admin.headers, json={"bank_account": BANK_ACCOUNT}
    )
    assert replaced.status_code == 200
    again = portal_client.get(f"/v1/merchants/{victim}/bank-account", headers=tenant.admin.headers)
    assert again.json() == BANK_ACCOUNT


@pytest.mark.parametrize(
    "stored",
    [
        "garbage",
        "v1.nokey.AAAA.BBBB",
        "v2.{kid}.AAAA.BBBB",
        "v1.{kid}.AAAA.BBBB",
        "v1.{kid}.!!!!.????",
        "{foreign}",
    ],
)
def test_a_damaged_or_foreign_ciphertext_is_a_clean_error(
    portal_client: httpx.Client, test_settings: Settings, tenant: Tenant, stored: str
) -> None:
    merchant_id = _merchant_with_account(portal_client, tenant)
    kid = test_settings.field_encryption_keys.split(",")[0].split(":")[0]
    # Encrypted for the right row, but under a key this platform does not hold.
    foreign = FieldCipher.from_spec(generate_key_spec(kid)).encrypt(
        json.dumps(BANK_ACCOUNT), associated_data=f"portal.merchants.bank_account:{merchant_id}"
    )
    _set_ciphertext(
        test_settings, merchant_id, stored.replace("{kid}", kid).replace("{foreign}", foreign)
    )
    response = portal_client.get(
        f"/v1/merchants/{merchant_id}/bank-account", headers=tenant.admin.headers
    )
    _assert_unreadable(response)
