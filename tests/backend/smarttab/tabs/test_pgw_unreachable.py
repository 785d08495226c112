"""Paying a tab part when smarttab cannot reach pgw, or pgw's answer never comes back.

A second smarttab (in this process, on the session's database, Redis and portal) reaches pgw
only through a TCP proxy the test can cut, so pgw really refuses its connections while the
session's own smarttab and the test's checks still reach pgw directly. docs/smarttab.md says
what smarttab does then: the part stays ``processing`` (outcome unknown), the device gets
202 ``outcome: pending`` with no payment, and paying the part again sends the same attempt under
the same Idempotency-Key, so the customer is charged once.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from backend.core.hmac_signing import signed_client
from backend.core.settings import Settings
from backend.runtime.embedded import derive_settings
from backend.runtime.server import PlatformThread
from backend.smarttab.tabs.pgw_client import PgwClient
from tests.helpers import free_ports
from tests.support.pgw import PayingTerminal, provider_api, wait_until
from tests.support.smarttab import Tabs, card, item, pgw_payments_of, tab_events
from tests.support.tcp_proxy import TcpProxy

# smarttab normally waits pgw_provider_timeout_s + 10 s (12 s here) for pgw; a second is enough
# to make it give up while pgw is still working, without a test that waits 12 s.
PGW_TIMEOUT_S = 1.0
# pgw waits 2 s for the provider: this slow it still captures, after smarttab gave up.
PROVIDER_LATENCY_MS = 1_600


@dataclass
class CutOffSmarttab:
    url: str
    link: TcpProxy  # smarttab -> pgw


def _impatient_pgw_client(cls: type[PgwClient], settings: Settings) -> PgwClient:
    return cls(
        signed_client(
            settings, "smarttab", settings.url_of("pgw"), timeout=httpx.Timeout(PGW_TIMEOUT_S)
        )
    )


@pytest.fixture(scope="module")
def cut_off(platform: PlatformThread, test_settings: Settings) -> Iterator[CutOffSmarttab]:
    link = TcpProxy(test_settings.pgw_port).start()
    (port,) = free_ports(1)
    settings = derive_settings(test_settings, smarttab_port=port, pgw_port=link.port)
    # Only this smarttab's client is built while the patch holds (the session's already runs).
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(PgwClient, "from_settings", classmethod(_impatient_pgw_client))
        thread = PlatformThread(settings, services=("smarttab",)).start()
    try:
        yield CutOffSmarttab(settings.url_of("smarttab"), link)
    finally:
        thread.stop()
        link.close()


@pytest.fixture
def link(cut_off: CutOffSmarttab) -> Iterator[TcpProxy]:
    try:
        yield cut_off.link
    finally:
        cut_off.link.restore()


@pytest.fixture
def tabs(cut_off: CutOffSmarttab, terminal: PayingTerminal) -> Iterator[Tabs]:
    """The terminal's view of the smarttab that reaches pgw through ``link``."""
    with httpx.Client(base_url=cut_off.url, timeout=10) as client:
        yield Tabs(client, terminal.headers)


@pytest.fixture
def provider(test_settings: Settings) -> Iterator[httpx.Client]:
    with provider_api(test_settings) as client:
        try:
            yield client
        finally:
            client.delete("/v1/_control/config").raise_for_status()


def refuses_connections(link: TcpProxy) -> bool:
    try:
        socket.create_connection((link.host, link.port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def dinner(tabs: Tabs) -> dict[str, Any]:
    tab = tabs.tab_with(item("Course", 4000, quantity=2), item("Wine", 3000))
    assert tab["totals"]["total"] == 12100
    return tabs.split_ok(tab, mode="equal", count=2)  # 6050 each


def assert_pending_unknown(response: httpx.Response, tabs: Tabs) -> dict[str, Any]:
    """smarttab's answer when pgw's is missing; returns the tab, checked against a fresh read."""
    assert response.status_code == 202, response.text
    result = response.json()
    assert (result["outcome"], result["payment"]) == ("pending", None)
    part = result["part"]
    assert (part["number"], part["status"], part["attempts"]) == (1, "processing", 1)
    assert (part["payment_id"], part["amount_captured"], part["paid_at"]) == (None, 0, None)
    assert part["last_attempt"]["status"] == "processing"
    tab = result["tab"]
    assert (tab["status"], tab["amount_paid"], tab["amount_due"]) == ("paying", 0, 12100)
    assert [p["status"] for p in tab["split"]["parts"]] == ["processing", "unpaid"]
    # What the device was told is what smarttab holds.
    assert tabs.get(tab["id"]) == tab
    return dict(tab)


def assert_paid_once(
    result: dict[str, Any], test_settings: Settings, provider: httpx.Client
) -> None:
    """Part 1 paid by its first attempt: one payment at pgw, one charge at the provider."""
    tab, part = result["tab"], result["part"]
    assert (part["status"], part["attempts"], part["amount_captured"]) == ("paid", 1, 6050)
    assert (tab["status"], tab["amount_paid"], tab["amount_due"]) == ("open", 6050, 6050)
    [payment] = pgw_payments_of(test_settings, tab)
    reference = f"tab:{tab['id']}:split:{tab['split']['generation']}:part:1:attempt:1"
    assert (payment["id"], payment["reference"]) == (part["payment_id"], reference)
    assert (payment["status"], payment["amount_captured"]) == ("captured", 6050)
    charge = provider.get(f"/v1/authorizations/by-reference/{payment['id']}")
    assert charge.status_code == 200, charge.text
    assert charge.json()["amount_captured"] == 6050
    paid = [e for e in tab_events(test_settings, tab) if e["event"] == "tab.part_paid"]
    assert [(e["data"]["part_number"], e["data"]["payment_id"]) for e in paid] == [
        (1, payment["id"])
    ]


def test_paying_while_pgw_refuses_connections_leaves_the_part_pending_and_a_retry_pays_once(
    tabs: Tabs,
    link: TcpProxy,
    test_settings: Settings,
    provider: httpx.Client,
    caplog: pytest.LogCaptureFixture,
) -> None:
    tab = dinner(tabs)

    link.cut()
    # The proxy's accept loop may take one more connection (and drop it) just after the cut.
    wait_until(lambda: refuses_connections(link), what="the link to pgw to refuse connections")
    try:
        refused = tabs.pay(tab, 1, card())
    finally:
        link.restore()

    tab = assert_pending_unknown(refused, tabs)
    assert "pgw did not answer: ConnectError" in caplog.text
    assert pgw_payments_of(test_settings, tab) == []
    # Nothing else can change the tab while its payment's outcome is unknown.
    assert tabs.add_item(tab).status_code == 409
    assert tabs.pay(tab, 1, card(tip_amount=100)).json()["code"] == "attempt_in_doubt"

    retry = tabs.pay_ok(tab, 1, card())

    assert_paid_once(retry, test_settings, provider)


def test_a_pgw_answer_that_comes_too_late_leaves_the_part_pending_and_a_retry_pays_once(
    tabs: Tabs, test_settings: Settings, provider: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    tab = dinner(tabs)
    provider.post("/v1/_control/config", json={"latency_ms": PROVIDER_LATENCY_MS})

    late = tabs.pay(tab, 1, card())

    provider.delete("/v1/_control/config").raise_for_status()
    tab = assert_pending_unknown(late, tabs)
    assert "pgw did not answer: ReadTimeout" in caplog.text
    # pgw went on after smarttab stopped waiting: the customer was charged, the tab knows not.
    charged = wait_until(
        lambda: [p for p in pgw_payments_of(test_settings, tab) if p["status"] == "captured"],
        what="pgw to capture the payment smarttab gave up on",
    )
    assert tabs.get(tab["id"])["split"]["parts"][0]["status"] == "processing"

    retry = tabs.pay_ok(tab, 1, card())

    assert retry["payment"]["id"] == charged[0]["id"]
    assert_paid_once(retry, test_settings, provider)
