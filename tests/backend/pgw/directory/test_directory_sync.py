"""portal -> pgw directory sync: outbox, HMAC-signed delivery, newest version wins."""

from __future__ import annotations

import uuid

import httpx
import pytest

from backend.core.settings import Settings
from tests.support.pgw import service_client, wait_for_directory
from tests.support.portal import Tenant


@pytest.fixture
def as_portal(test_settings: Settings) -> httpx.Client:
    return service_client(test_settings, "portal", test_settings.url_of("pgw"))


def test_a_new_store_reaches_pgw(test_settings: Settings, tenant: Tenant) -> None:
    wait_for_directory(test_settings, store_id=tenant.store_b_id)


def test_an_older_version_never_overwrites_a_newer_one(as_portal: httpx.Client) -> None:
    store_id = str(uuid.uuid4())
    body = {
        "psp_id": str(uuid.uuid4()),
        "merchant_id": str(uuid.uuid4()),
        "name": "Ginza",
        "timezone": "Asia/Tokyo",
        "status": "closed",
        "source_version": 10,
    }
    newer = as_portal.put(f"/internal/v1/directory/stores/{store_id}", json=body)
    older = as_portal.put(
        f"/internal/v1/directory/stores/{store_id}",
        json={**body, "status": "active", "source_version": 9},
    )
    repeated = as_portal.put(f"/internal/v1/directory/stores/{store_id}", json=body)

    assert newer.json()["applied"] is True
    assert older.json()["applied"] is False
    assert repeated.json()["applied"] is False
    assert as_portal.get(f"/internal/v1/directory/stores/{store_id}").json()["status"] == "closed"


def test_only_the_portal_may_write_the_directory(
    test_settings: Settings, pgw_client: httpx.Client
) -> None:
    body = {"psp_id": str(uuid.uuid4()), "name": "x", "status": "active", "source_version": 1}
    path = f"/internal/v1/directory/merchants/{uuid.uuid4()}"
    with service_client(test_settings, "smarttab", test_settings.url_of("pgw")) as smarttab:
        as_smarttab = smarttab.put(path, json=body)
    unsigned = pgw_client.put(path, json=body)

    assert as_smarttab.status_code == 403
    assert as_smarttab.json()["code"] == "hmac_caller_not_allowed"
    assert unsigned.status_code == 401


def test_a_malformed_sync_is_refused_precisely(as_portal: httpx.Client) -> None:
    response = as_portal.put(
        f"/internal/v1/directory/merchants/{uuid.uuid4()}",
        json={"psp_id": "nope", "name": "x", "status": "sleeping", "source_version": 0},
    )
    assert response.status_code == 422
    assert {tuple(e["loc"][-1:]) for e in response.json()["errors"]} >= {
        ("psp_id",),
        ("status",),
        ("source_version",),
    }


@pytest.mark.parametrize("kind", ["merchants", "stores", "terminals"])
def test_a_source_version_beyond_bigint_is_refused_not_a_500(
    as_portal: httpx.Client, kind: str
) -> None:
    """Found by the API fuzzer: a version past PostgreSQL's BIGINT passed validation and made
    the upsert fail (500 internal_error)."""
    body = {
        "psp_id": str(uuid.uuid4()),
        "merchant_id": str(uuid.uuid4()),
        "store_id": str(uuid.uuid4()),
        "name": "by_method",
        "timezone": "Asia/Tokyo",
        "serial": "SN-1",
        "status": "decommissioned",
        "source_version": 1735736872964162678947840,
    }
    if kind == "merchants":
        body = {key: body[key] for key in ("psp_id", "name", "status", "source_version")}
    elif kind == "stores":
        body.pop("store_id"), body.pop("serial")
    else:
        body.pop("name"), body.pop("timezone")
    response = as_portal.put(f"/internal/v1/directory/{kind}/{uuid.uuid4()}", json=body)
    assert response.status_code == 422, response.text
    assert [error["loc"] for error in response.json()["errors"]] == [["body", "source_version"]]
    at_the_limit = as_portal.put(
        f"/internal/v1/directory/{kind}/{uuid.uuid4()}", json={**body, "source_version": 2**63 - 1}
    )
    assert at_the_limit.status_code == 200, at_the_limit.text
