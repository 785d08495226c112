"""Structured logs: JSON lines with service, request, trace and tenant ids; card data masked."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from backend.observability.logs import (
    ContextFilter,
    JsonFormatter,
    LogTenant,
    TextFormatter,
    bind_log_tenant,
    mask_card_data,
    mask_fields,
    set_log_service,
)
from backend.runtime.server import PlatformThread
from tests.support.pgw import PayingTerminal, card_payment
from tests.support.service_logs import CapturedLogs, captured_service_logs

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def _format(record: logging.LogRecord) -> dict[str, Any]:
    ContextFilter().filter(record)
    parsed: dict[str, Any] = json.loads(JsonFormatter().format(record))
    return parsed


def _record(msg: str, *args: Any, **extra: Any) -> logging.LogRecord:
    record = logging.LogRecord("backend.test", logging.INFO, __file__, 1, msg, args, None)
    for name, value in extra.items():
        setattr(record, name, value)
    return record


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("card 4242424242424242 declined", "card ************4242 declined"),
        ("card 4242 4242 4242 4242", "card ************4242"),
        ("card 4242-4242-4242-4242.", "card ************4242."),
        # A mistyped number (fails Luhn) is still card data.
        ("pan=4242424242424241", "pan=************4241"),
        ("19 digits 6011000990139424123", "19 digits ***************4123"),
        # Not card numbers: too short, too long, part of an identifier.
        ("amount 1200 JPY, order 123456789012", "amount 1200 JPY, order 123456789012"),
        ("ref 12345678901234567890123", "ref 12345678901234567890123"),
        ("id pay_4242424242424242x", "id pay_4242424242424242x"),
    ],
)
def test_card_numbers_are_masked_to_their_last_four_digits(text: str, expected: str) -> None:
    assert mask_card_data(text) == expected


def test_card_fields_are_masked_whole_wherever_they_nest() -> None:
    masked = mask_fields(
        {"card": {"pan": "4242424242424242", "cvv": "123", "exp_month": 12}, "pin": "1234"}
    )

    assert masked == {
        "card": {"pan": "[masked]", "cvv": "[masked]", "exp_month": 12},
        "pin": "[masked]",
    }


def test_a_json_line_masks_the_message_its_arguments_extras_and_exception() -> None:
    try:
        raise ValueError("provider refused card 5555555555554444")
    except ValueError:
        record = logging.LogRecord(
            "backend.test",
            logging.ERROR,
            __file__,
            1,
            "charging %s for %d",
            ("4000000000000002", 1200),
            exc_info=sys.exc_info(),
        )
    record.card = {"pan": "4111111111111111", "brand": "visa"}
    line = JsonFormatter().format(record)

    for pan in ("4000000000000002", "5555555555554444", "4111111111111111"):
        assert pan not in line
    entry = json.loads(line)
    assert entry["msg"] == "charging ************0002 for 1200"
    assert entry["extra"]["card"] == {"pan": "[masked]", "brand": "visa"}
    assert "************4444" in entry["exception"]
    assert entry["level"] == "error"


def test_the_text_format_masks_card_numbers_too() -> None:
    record = _record("card %s", "4242424242424242", service="pgw")

    assert "4242424242424242" not in TextFormatter().format(record)


def test_a_line_carries_the_service_and_tenant_of_its_context() -> None:
    tenant = LogTenant(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), "device")

    def in_context() -> dict[str, Any]:
        set_log_service("pgw")
        bind_log_tenant(tenant)
        return _format(_record("hello"))

    entry = contextvars.copy_context().run(in_context)

    assert entry["service"] == "pgw"
    assert entry["merchant_id"] == str(tenant.merchant_id)
    assert entry["store_id"] == str(tenant.store_id)
    assert entry["psp_id"] == str(tenant.psp_id)
    assert entry["principal"] == "device"
    # Outside that context nothing leaks into other lines.
    assert "merchant_id" not in _format(_record("elsewhere"))


@pytest.fixture
def captured(platform: PlatformThread) -> Iterator[CapturedLogs]:
    # After the platform started: an embedded platform quiets the access line when it starts.
    with captured_service_logs() as logs:
        yield logs


def test_a_payment_request_logs_its_request_trace_and_tenant_ids(
    paying: PayingTerminal, pgw_client: httpx.Client, captured: CapturedLogs
) -> None:
    response = pgw_client.post(
        "/v1/payments",
        json=card_payment(),
        headers={**paying.headers, "Idempotency-Key": uuid.uuid4().hex, "traceparent": TRACEPARENT},
    )
    assert response.status_code == 201, response.text
    request_id = response.headers["x-request-id"]
    # The caller is told which trace its request joined (W3C traceresponse).
    assert response.headers["traceresponse"].split("-")[1] == TRACE_ID

    line = captured.access_line(request_id)
    assert line["service"] == "pgw"
    assert line["trace_id"] == TRACE_ID  # the caller's trace continues
    assert len(line["span_id"]) == 16
    assert line["merchant_id"] == paying.tenant.merchant_id
    assert line["store_id"] == paying.tenant.store_a_id
    assert line["principal"] == "device"
    assert line["extra"]["http"]["route"] == "/v1/payments"
    assert line["extra"]["http"]["status"] == 201
    assert "4242424242424242" not in captured.text


def test_a_card_number_in_a_url_is_masked_in_the_access_line(
    paying: PayingTerminal, pgw_client: httpx.Client, captured: CapturedLogs
) -> None:
    # A confused client putting a PAN where a payment id belongs: refused, and not logged.
    response = pgw_client.get("/v1/payments/4242424242424242", headers=paying.headers)

    assert response.status_code == 422
    line = captured.access_line(response.headers["x-request-id"])
    assert line["msg"].startswith("GET /v1/payments/************4242 422 ")
    assert "4242424242424242" not in captured.text
