"""Fuzzing the simulated acquirer's API with its API key."""

from __future__ import annotations

import uuid

import httpx
import schemathesis

from backend.core.settings import Settings
from backend.runtime.server import PlatformThread
from tests.fuzz.runner import Credential, Target, run_fuzz
from tests.support.pgw import APPROVED_VISA, provider_api


def _ok(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_provider_api(platform: PlatformThread, test_settings: Settings) -> None:
    merchant, store = str(uuid.uuid4()), str(uuid.uuid4())
    card = {"pan": APPROVED_VISA, "exp_month": 12, "exp_year": 2030}
    with provider_api(test_settings) as provider:

        def authorize(capture: bool) -> dict:
            return _ok(
                provider.post(
                    "/v1/authorizations",
                    json={
                        "reference": f"fuzz-{uuid.uuid4().hex}",
                        "amount": 5000,
                        "currency": "JPY",
                        "capture": capture,
                        "entry_mode": "contactless",
                        "card": card,
                        "merchant_id": merchant,
                        "store_id": store,
                    },
                )
            )

        authorized, captured = authorize(False), authorize(True)
        qr = _ok(
            provider.post(
                "/v1/qr-payments",
                json={
                    "reference": f"fuzz-{uuid.uuid4().hex}",
                    "amount": 800,
                    "currency": "JPY",
                    "merchant_id": merchant,
                    "store_id": store,
                },
            )
        )
        events = provider.get("/v1/_control/webhooks", params={"limit": 5}).json()

        def reset_config(case: schemathesis.Case, response: schemathesis.Response) -> None:
            # Latency or a failure rate set by a case must not slow or fail everyone else.
            if case.path == "/v1/_control/config" and case.method.upper() == "POST":
                provider.delete("/v1/_control/config")

        ids = {
            "authorization_id": [authorized["id"], captured["id"]],
            "reference": [authorized["reference"], qr["reference"]],
            "qr_payment_id": [qr["id"]],
            "event_id": [event["id"] for event in events][:2],
        }
        run_fuzz(
            Target(
                "provider",
                test_settings.provider_url,
                Credential(
                    "api_key",
                    lambda: {"authorization": f"Bearer {test_settings.provider_api_key}"},
                ),
                read_ids=ids,
                write_ids=ids,
                after=reset_config,
            )
        )
