"""PAN, CVV, track data and PIN never reach a provider table or a log line."""

from __future__ import annotations

import logging

import httpx
import pytest

from backend.core.settings import Settings
from backend.provider.catalogue import CATALOGUE, fingerprint
from tests.backend.provider.support import (
    CVV,
    PIN,
    authorization_body,
    db_fetch,
    wait_for,
)

PANS = [*CATALOGUE, "4111111111111111", "4242424242424241", "6011111111111117"]
FORBIDDEN_COLUMN_WORDS = ("pan", "cvv", "cvc", "pin", "track", "card_number")


def _present_every_card(client: httpx.Client) -> None:
    for pan in PANS:
        if pan == "4000000000001034":
            continue  # the timeout card stalls; it is covered by the fast provider below
        for overrides in ({}, {"pin": PIN}):
            response = client.post(
                "/v1/authorizations",
                json=authorization_body(pan, card_overrides=overrides, capture=True),
            )
            assert response.status_code == 200, response.text
    # Refused before any processing: the number is in an invalid request.
    invalid = authorization_body("4242424242424242", amount=-1)
    assert client.post("/v1/authorizations", json=invalid).status_code == 422


def test_no_card_secret_is_stored_or_logged(
    caplog: pytest.LogCaptureFixture,
    provider_client: httpx.Client,
    fast_client: httpx.Client,
    test_settings: Settings,
) -> None:
    caplog.set_level(logging.DEBUG)
    # SQLAlchemy keeps its loggers at WARNING unless told; INFO logs statements and parameters.
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")
    _present_every_card(provider_client)
    _present_every_card(fast_client)
    timeout_card = authorization_body("4000000000001034", card_overrides={"pin": PIN})
    assert fast_client.post("/v1/authorizations", json=timeout_card).status_code == 200
    # Let the events of these payments be delivered (their bodies hold the card summary).
    wait_for(
        lambda: (
            not db_fetch(
                test_settings,
                "SELECT 1 FROM provider.webhook_events WHERE status = 'pending' AND endpoint_url = $1",
                fast_client.get("/v1/_control/webhooks", params={"limit": 1}).json()[0][
                    "endpoint_url"
                ],
            )
        ),
        timeout_s=15,
        what="pending webhooks to be delivered",
    )

    # Nothing in the logs: the SQL statements and their parameters are logged at DEBUG too.
    log_text = caplog.text
    assert "provider.authorizations" in log_text, "the SQL log was not captured"
    key = test_settings.provider_fingerprint_key
    assert fingerprint("4242424242424242", key) in log_text, "SQL parameters were not captured"
    for pan in PANS:
        assert pan not in log_text, f"a PAN ending {pan[-4:]} was logged"
    for word in ('"cvv"', '"pin"', '"pan"', "'cvv'", "'pin'", "'pan'"):
        assert word not in log_text

    # Nothing in any column of any provider table.
    columns = db_fetch(
        test_settings,
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'provider' AND table_name <> 'alembic_version'",
    )
    tables = sorted({c["table_name"] for c in columns})
    assert {"authorizations", "qr_payments", "refunds", "webhook_events"} <= set(tables)
    for column in columns:
        name = column["column_name"]
        assert not any(
            word == name or name.startswith(word + "_") for word in FORBIDDEN_COLUMN_WORDS
        ), name
    for table in tables:
        rows = db_fetch(test_settings, f'SELECT t::text AS row FROM provider."{table}" t')  # noqa: S608
        assert rows or table != "authorizations"
        for row in rows:
            for pan in PANS:
                assert pan not in row["row"], f"a PAN ending {pan[-4:]} is stored in {table}"
            for word in ('"cvv"', '"pin"', '"pan"', '"track'):
                assert word not in row["row"], f"{word} stored in {table}"
    text_columns = [c for c in columns if c["data_type"] == "text"]
    for column in text_columns:
        table, name = column["table_name"], column["column_name"]
        sql = f'SELECT count(*) AS n FROM provider."{table}" WHERE "{name}" IN ($1, $2)'  # noqa: S608
        leaked = db_fetch(test_settings, sql, CVV, PIN)
        assert leaked[0]["n"] == 0, (
            f"a CVV or PIN in {column['table_name']}.{column['column_name']}"
        )
