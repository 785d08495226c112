"""The reconciler settles payments left ``processing`` by asking the provider."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from backend.core.database import create_engine, create_sessionmaker
from backend.core.ids import uuid7, uuid7_time
from backend.core.settings import Settings
from backend.pgw.connectors.base import PaymentConnector
from backend.pgw.connectors.fake import FakeConnector
from backend.pgw.connectors.simulated import SimulatedProviderConnector
from backend.pgw.models import Payment
from backend.pgw.webhooks.service import reconciler
from tests.helpers import run
from tests.support.pgw import PayingTerminal


def _stuck_payment(paying: PayingTerminal, payment_id: uuid.UUID, amount: int) -> Payment:
    created = uuid7_time(payment_id)
    tenant = paying.tenant
    return Payment(
        id=payment_id,
        created_at=created,
        updated_at=created,
        psp_id=uuid.UUID(tenant.psp_id),
        merchant_id=uuid.UUID(tenant.merchant_id),
        store_id=uuid.UUID(tenant.store_a_id),
        terminal_id=uuid.UUID(paying.terminal.terminal_id),
        status="processing",
        method="card_present",
        entry_mode="chip",
        capture_method="automatic",
        currency="JPY",
        amount=amount,
        tip_amount=0,
        amount_captured=0,
        amount_refunded=0,
        metadata_={},
        version=1,
    )


async def _reconcile(
    settings: Settings, stuck: Payment, connector: PaymentConnector | None = None
) -> dict[str, int]:
    engine = create_engine(settings, application_name="tests")
    try:
        sessionmaker = create_sessionmaker(engine)
        async with sessionmaker() as session, session.begin():
            session.add(stuck)
        async with httpx.AsyncClient() as http:
            connector = connector or SimulatedProviderConnector(
                http, base_url=settings.provider_url, api_key=settings.provider_api_key, timeout_s=5
            )
            session: AsyncSession
            async with sessionmaker() as session, session.begin():
                return await reconciler.run_once(
                    session, connector, min_age_s=0, payment_ids=[stuck.id]
                )
    finally:
        await engine.dispose()


@pytest.fixture
def earlier_id() -> uuid.UUID:
    return uuid7()


def test_a_payment_the_provider_charged_becomes_captured(
    test_settings: Settings, paying: PayingTerminal, pgw_client: httpx.Client, earlier_id: uuid.UUID
) -> None:
    # The provider charged, its answer was lost, and no webhook came: only asking tells.
    provider = FakeConnector()
    provider.charged(earlier_id, amount=3100)

    counts = run(_reconcile(test_settings, _stuck_payment(paying, earlier_id, 3100), provider))

    assert counts.get("captured") == 1
    assert provider.calls == ["find_authorization"]
    payment = pgw_client.get(f"/v1/payments/{earlier_id}", headers=paying.headers).json()
    assert payment["status"] == "captured"
    assert payment["amount_captured"] == 3100
    assert payment["card"]["last4"] == "4242"
    events = pgw_client.get(f"/v1/payments/{earlier_id}/events", headers=paying.headers).json()
    assert events[-1]["actor"] == "system:reconciler"


def test_an_unreachable_provider_leaves_the_payment_processing(
    test_settings: Settings, paying: PayingTerminal, pgw_client: httpx.Client, earlier_id: uuid.UUID
) -> None:
    provider = FakeConnector()
    provider.unreachable = True

    counts = run(_reconcile(test_settings, _stuck_payment(paying, earlier_id, 900), provider))

    assert counts == {"provider_unreachable": 1}
    payment = pgw_client.get(f"/v1/payments/{earlier_id}", headers=paying.headers).json()
    assert payment["status"] == "processing"


def test_a_payment_the_provider_never_saw_fails_without_a_charge(
    test_settings: Settings, paying: PayingTerminal, pgw_client: httpx.Client, earlier_id: uuid.UUID
) -> None:
    counts = run(_reconcile(test_settings, _stuck_payment(paying, earlier_id, 500)))

    assert counts.get("failed") == 1
    payment = pgw_client.get(f"/v1/payments/{earlier_id}", headers=paying.headers).json()
    assert payment["status"] == "failed"
    assert payment["failure_code"] == "provider_no_record"
    assert payment["amount_captured"] == 0
