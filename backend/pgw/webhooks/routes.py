from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request

from backend.core.database import SessionDep, on_commit
from backend.core.errors import BadRequest
from backend.observability.metrics import service_metrics
from backend.pgw.context import PgwDep
from backend.pgw.webhooks import signature
from backend.pgw.webhooks.service import provider_event_service

router = APIRouter(tags=["provider webhooks"])

WEBHOOK_TOLERANCE_S = 300
# Refused deliveries (bad signature, stale timestamp) are counted as problems by their code.
WEBHOOKS_RECEIVED = service_metrics("pgw").webhook_deliveries


@router.post(
    "/v1/provider/webhooks",
    summary="Events from the payment provider (signed; applied exactly once)",
)
async def receive_provider_event(
    request: Request, session: SessionDep, pgw: PgwDep
) -> dict[str, Any]:
    body = await request.body()
    secrets = [s.strip() for s in pgw.settings.provider_webhook_secrets.split(",") if s.strip()]
    signature.verify(
        request.headers.get(signature.SIGNATURE_HEADER),
        body,
        secrets,
        tolerance_s=WEBHOOK_TOLERANCE_S,
    )
    try:
        event = json.loads(body)
        if (
            not isinstance(event, dict)
            or not isinstance(event.get("id"), str)
            or not isinstance(event.get("type"), str)
        ):
            raise ValueError("not an event")
    except ValueError as exc:
        raise BadRequest(
            "The webhook body is not a provider event.", code="webhook_body_invalid"
        ) from exc
    outcome = await provider_event_service.handle(session, event, pgw.connector)
    on_commit(session, lambda: WEBHOOKS_RECEIVED.labels("pgw", "received", outcome).inc())
    return {"received": True, "event_id": event["id"], "outcome": outcome}
