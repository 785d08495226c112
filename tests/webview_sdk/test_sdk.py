"""The MpacPay SDK in headless Chromium against the session's real platform: the demo page
(pgw's /demo/webview/) pays by card (the SDK's browser fallback with test cards) and by QR
wallet, and shows an expired token, a declined card, network loss and a double submit the way a
customer would see them; pgw's records say what really happened."""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from backend.core.settings import Settings
from terminal_emulator.contract import Action, ErrorCode, Status, TransactionResult
from tests.support.pgw import simulate_qr
from tests.webview_sdk.support import (
    DemoPage,
    MerchantSite,
    RequestLog,
    Shop,
    expire_token,
    issue_token,
    payments_of,
)

pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")

from playwright.sync_api import BrowserContext, Page, Route, expect

if TYPE_CHECKING:
    from playwright.sync_api import Response

DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs/screenshots/webview-demo-qr.png"


def only_payment(shop: Shop) -> dict[str, Any]:
    payments = payments_of(shop)
    assert len(payments) == 1, [payment["status"] for payment in payments]
    return payments[0]


def open_blank_page(page: Page, origin: str) -> None:
    """An empty HTML page of ``origin``, for scripts that import the SDK as a page there would.

    Served by the browser itself: pgw's own answers are JSON, whose Content-Security-Policy
    (rightly) lets nothing run in them.
    """
    url = f"{origin}/__blank__.html"
    page.route(
        url,
        lambda route: route.fulfill(
            status=200, content_type="text/html", body="<!doctype html><title>blank</title>"
        ),
    )
    page.goto(url)


class TestCard:
    def test_a_card_payment_completes_in_the_page(self, demo: DemoPage, shop: Shop) -> None:
        demo.open(issue_token(shop)["token"])
        expect(demo.page.locator("#total")).to_have_text("¥1,200")
        expect(demo.page.locator("#test-mode")).to_be_visible()

        demo.pay_by_card("visa-approved")

        demo.expect_state("paid")
        expect(demo.status).to_contain_text("Paid ¥1,200")
        expect(demo.status).to_contain_text("VISA •••• 4242")
        payment = only_payment(shop)
        assert payment["status"] == "captured"
        assert payment["amount_captured"] == 1200
        assert payment["method"] == "card_present"
        assert payment["card"]["last4"] == "4242"
        assert payment["terminal_id"] == shop.terminal_id
        assert demo.status.get_attribute("data-payment-id") == payment["id"]
        assert len(demo.log.payment_creations()) == 1

    def test_the_customer_orders_more_when_the_token_names_no_amount(
        self, demo: DemoPage, shop: Shop
    ) -> None:
        demo.open(shop.issue()["token"])
        expect(demo.page.locator("#amount-note")).to_be_hidden()

        demo.page.get_by_role("button", name="One more Matcha ice cream").click()
        expect(demo.page.locator("#total")).to_have_text("¥1,450")
        demo.pay_by_card("jcb-approved")

        demo.expect_state("paid")
        expect(demo.status).to_contain_text("Paid ¥1,450 · JCB •••• 0505")
        payment = only_payment(shop)
        assert (payment["amount_captured"], payment["currency"]) == (1450, "JPY")

    def test_a_declined_card_shows_the_reason_and_charges_nothing(
        self, demo: DemoPage, shop: Shop
    ) -> None:
        demo.open(issue_token(shop)["token"])

        demo.pay_by_card("visa-insufficient-funds")

        demo.expect_state("declined")
        expect(demo.status).to_have_text("Declined (insufficient funds). Nothing was charged.")
        payment = only_payment(shop)
        assert payment["status"] == "declined"
        assert payment["failure_code"] == "insufficient_funds"
        assert payment["amount_captured"] == 0
        # The token paid for its one attempt: no button offers another.
        expect(demo.page.locator("#pay-card")).to_be_disabled()
        expect(demo.page.locator("#retry")).to_be_hidden()

    def test_the_customer_cancels_the_card_picker(self, demo: DemoPage, shop: Shop) -> None:
        demo.open(issue_token(shop)["token"])

        demo.page.click("#pay-card")
        demo.page.click('[data-mpac-test-card="cancel"]')

        demo.expect_state("cancelled")
        assert payments_of(shop) == []
        assert demo.log.payment_creations() == []


class TestQr:
    def test_the_page_shows_the_code_and_learns_of_the_payment_by_sse(
        self, demo: DemoPage, shop: Shop, settings: Settings
    ) -> None:
        demo.open(issue_token(shop)["token"])

        demo.page.click("#pay-qr")

        demo.expect_state("awaiting_payment")
        image = demo.page.locator("#qr-image")
        expect(image).to_be_visible()
        expect(image).to_have_attribute("src", _starts_with("data:image/svg+xml;base64,"))
        expect(demo.page.locator("#qr-amount")).to_have_text("¥1,200")
        assert image.evaluate("img => img.complete && img.naturalWidth > 0")
        payment = only_payment(shop)
        assert payment["status"] == "requires_action"
        _keep_docs_screenshot(demo.page)

        simulate_qr(settings, payment["id"], "paid")

        demo.expect_state("paid")
        expect(demo.page.locator("#qr")).to_be_hidden()
        assert only_payment(shop)["status"] == "captured"
        path = f"/v1/payments/{payment['id']}"
        assert len(demo.log.matching("GET", f"{path}/stream")) == 1
        assert demo.log.matching("GET", path) == [], "the page polled although SSE worked"

    def test_cancel_voids_the_waiting_qr_payment(self, demo: DemoPage, shop: Shop) -> None:
        demo.open(issue_token(shop)["token"])
        demo.page.click("#pay-qr")
        demo.expect_state("awaiting_payment")

        demo.page.click("#cancel")

        demo.expect_state("cancelled")
        expect(demo.page.locator("#qr")).to_be_hidden()
        assert only_payment(shop)["status"] == "canceled"


class TestExpiredToken:
    def test_a_token_that_expires_while_the_page_is_open(
        self, demo: DemoPage, shop: Shop, settings: Settings
    ) -> None:
        issued = issue_token(shop)
        demo.open(issued["token"])
        expire_token(settings, issued["id"])

        demo.pay_by_card("visa-approved")

        demo.expect_state("error")
        assert demo.status.get_attribute("data-code") == "token_expired"
        expect(demo.status).to_have_text(
            "This payment session has expired. Please ask the staff for a new one."
        )
        assert payments_of(shop) == []
        expect(demo.page.locator("#pay-card")).to_be_disabled()

    def test_a_page_opened_with_an_expired_token(
        self, demo: DemoPage, shop: Shop, settings: Settings
    ) -> None:
        issued = issue_token(shop)
        expire_token(settings, issued["id"])

        demo.open(issued["token"], ready=False)

        demo.expect_state("error")
        assert demo.status.get_attribute("data-code") == "token_expired"
        expect(demo.page.locator("#pay-card")).to_be_disabled()
        expect(demo.page.locator("#pay-qr")).to_be_disabled()

    def test_a_page_opened_without_a_token(self, demo: DemoPage) -> None:
        demo.page.goto(f"{demo.pgw_url}/demo/webview/")

        demo.expect_state("error")
        assert demo.status.get_attribute("data-code") == "token_invalid"
        expect(demo.page.locator("#pay-card")).to_be_disabled()
        expect(demo.page.locator("#total")).to_have_text("¥1,200")  # the menu is still shown

    def test_the_token_leaves_the_address_bar(self, demo: DemoPage, shop: Shop) -> None:
        token = issue_token(shop)["token"]
        demo.open(token)

        assert token not in demo.page.url
        assert demo.page.url.endswith("/demo/webview/")


class TestNetworkLoss:
    def test_a_lost_answer_is_retried_with_the_same_key_and_charged_once(
        self, demo: DemoPage, shop: Shop
    ) -> None:
        """The first POST reaches pgw (which charges the card) but its answer never reaches
        the page: the SDK retries with the same Idempotency-Key and pgw replays the payment."""
        first_answers: list[int] = []

        def lose_the_first_answer(route: Route) -> None:
            if route.request.method != "POST" or first_answers:
                route.continue_()
                return
            first_answers.append(route.fetch().status)  # pgw did the work...
            route.abort("connectionreset")  # ...and the page never hears of it

        replayed: list[str | None] = []

        def on_response(response: Response) -> None:
            if response.request.method == "POST" and response.url.endswith("/v1/payments"):
                replayed.append(response.headers.get("idempotent-replayed"))

        demo.page.route("**/v1/payments", lose_the_first_answer)
        demo.page.on("response", on_response)
        demo.open(issue_token(shop)["token"])

        demo.pay_by_card("visa-approved")

        demo.expect_state("paid")
        assert first_answers == [201]
        posts = demo.log.payment_creations()
        assert len(posts) == 2
        keys = {post.headers["idempotency-key"] for post in posts}
        assert len(keys) == 1, "the retry must carry the first attempt's Idempotency-Key"
        assert replayed == ["true"]
        payment = only_payment(shop)
        assert payment["status"] == "captured"
        assert demo.status.get_attribute("data-payment-id") == payment["id"]

    def test_offline_until_the_retries_run_out_then_retry(
        self, demo: DemoPage, shop: Shop, context: BrowserContext
    ) -> None:
        demo.open(issue_token(shop)["token"])
        context.set_offline(True)

        demo.pay_by_card("visa-approved")

        demo.expect_state("error")
        assert demo.status.get_attribute("data-code") == "network"
        expect(demo.status).to_have_text("Connection lost. Check the network and tap Retry.")
        assert payments_of(shop) == []
        retry = demo.page.locator("#retry")
        expect(retry).to_be_visible()

        context.set_offline(False)
        retry.click()

        demo.expect_state("paid")
        only_payment(shop)
        keys = {post.headers["idempotency-key"] for post in demo.log.payment_creations()}
        assert len(keys) == 1

    def test_the_network_comes_back_while_the_sdk_backs_off(
        self, demo: DemoPage, shop: Shop, context: BrowserContext
    ) -> None:
        demo.open(issue_token(shop)["token"])
        context.set_offline(True)

        demo.pay_by_card("visa-approved")
        demo.expect_state("retrying")
        context.set_offline(False)

        demo.expect_state("paid")
        assert only_payment(shop)["status"] == "captured"


class TestDoubleSubmit:
    def test_a_double_click_sends_one_request(
        self, demo: DemoPage, shop: Shop, settings: Settings
    ) -> None:
        demo.open(issue_token(shop)["token"])

        demo.page.locator("#pay-qr").dblclick()

        demo.expect_state("awaiting_payment")
        expect(demo.page.locator("#notice")).to_have_text("A payment is already in progress.")
        payment = only_payment(shop)
        simulate_qr(settings, payment["id"], "paid")
        demo.expect_state("paid")
        assert len(demo.log.payment_creations()) == 1

    def test_the_sdk_refuses_a_second_pay_at_once(
        self, page: Page, pgw_url: str, shop: Shop
    ) -> None:
        token = issue_token(shop)["token"]
        open_blank_page(page, pgw_url)
        log = RequestLog()
        log.attach(page)

        outcome = page.evaluate(
            """async (token) => {
                const { init } = await import("/sdk/v1/mpac-pay.mjs");
                const client = init({ token });
                const first = client.payByQr();
                const second = await client.payByCard().then(
                    () => "resolved", (error) => error.code);
                const busy = client.busy;
                const cancelled = await new Promise((resolve) => {
                    client.on("qrcode", () => client.cancel().then(resolve));
                });
                const firstCode = await first.then(() => "paid", (error) => error.code);
                return { second, busy, cancelled, firstCode };
            }""",
            token,
        )

        assert outcome == {
            "second": "double_submit",
            "busy": True,
            "cancelled": True,
            "firstCode": "cancelled",
        }
        assert len(log.payment_creations()) == 1
        assert only_payment(shop)["status"] == "canceled"


class TestNativeBridge:
    """With window.MpacNative the SDK hands card payments to the Business App. Here the test
    plays the Business App (the emulator's real one is tested in tests/terminal_emulator): it
    records the page's calls and answers with the contract's own TransactionResult JSON."""

    def test_pay_by_card_goes_through_the_bridge(self, demo: DemoPage, shop: Shop) -> None:
        bridge = BusinessApp(demo.page)
        demo.open(issue_token(shop)["token"])
        expect(demo.page.locator("#test-mode")).to_be_hidden()

        demo.page.click("#pay-card")

        demo.expect_state("awaiting_card")
        expect(demo.status).to_have_text("Present the card on the terminal…")
        call = bridge.next_call()
        assert call["method"] == "pay_card"
        params = call["params"]
        assert set(params) == {"request_id", "amount", "currency"}
        assert (params["amount"], params["currency"]) == (1200, "JPY")
        approved = TransactionResult(
            status=Status.APPROVED,
            request_id=params["request_id"],
            action=Action.PAYMENT,
            payment_id=str(uuid.uuid4()),
            auth_code="A1B2C3",
            masked_pan="**** **** **** 4242",
            card_brand="visa",
            amount=1200,
            currency="JPY",
            payment_status="captured",
        )
        assert bridge.answer(call, approved) is True

        demo.expect_state("paid")
        expect(demo.status).to_contain_text("Paid ¥1,200 · VISA •••• 4242")
        assert demo.status.get_attribute("data-payment-id") == approved.payment_id
        assert demo.log.payment_creations() == []  # the Credit Card App paid, not the page

    def test_a_lost_answer_is_asked_again_with_the_same_request_id(
        self, page: Page, pgw_url: str, shop: Shop
    ) -> None:
        bridge = BusinessApp(page)
        open_blank_page(page, pgw_url)

        first = page.evaluate(
            """async (token) => {
                const { init } = await import("/sdk/v1/mpac-pay.mjs");
                const client = init({ token, nativeTimeoutMs: 300 });
                const outcome = await client.payByCard({ amount: 1200, currency: "JPY" }).then(
                    () => null, (error) => ({ code: error.code, retryable: error.retryable }));
                window.second = client.retry().then(
                    (result) => ({ result }),
                    (error) => ({ code: error.code, declineCode: error.declineCode }));
                return outcome;
            }""",
            issue_token(shop)["token"],
        )
        lost, again = bridge.next_call(), bridge.next_call()
        declined = TransactionResult.failure(
            ErrorCode.DECLINED_INSUFFICIENT_FUNDS,
            request_id=again["params"]["request_id"],
            action=Action.PAYMENT,
        )
        assert bridge.answer(again, declined) is True
        second = page.evaluate("() => window.second")

        assert first == {"code": "network", "retryable": True}
        assert again["method"] == "pay_card"
        assert again["params"]["request_id"] == lost["params"]["request_id"]
        assert again["id"] != lost["id"]
        assert second == {"code": "declined", "declineCode": "insufficient_funds"}
        assert bridge.answer(lost, declined) is False  # too late: nobody waits for it


class TestScriptTag:
    def test_the_script_tag_build_on_a_merchant_origin(
        self, page: Page, pgw_url: str, shop: Shop
    ) -> None:
        """A merchant's own page (its own web server, another origin) loads
        /sdk/v1/mpac-pay.js: CORS, window.MpacPay and the default baseUrl (the script's)."""
        html = (
            "<!doctype html><title>Checkout</title>"
            f'<script src="{pgw_url}/sdk/v1/mpac-pay.js"></script>'
            "<p id='out'>…</p>"
        )
        with MerchantSite({"/checkout.html": html}) as site:
            merchant = f"{site.url}/checkout.html"
            token = issue_token(shop, amount=850)["token"]
            page.goto(merchant)

            page.evaluate(
                """(token) => {
                    const client = MpacPay.init({ token });
                    window.checkout = client.getSession().then(async (session) => {
                        document.getElementById("out").textContent =
                            "Due " + client.formatAmount() + " at " + client.baseUrl;
                        const result = await client.payByCard();
                        return { result, session, version: MpacPay.VERSION, mode: client.cardMode };
                    });
                }""",
                token,
            )
            page.click('[data-mpac-test-card="mastercard-approved"]')
            done = page.evaluate("() => window.checkout")

            assert done["version"] == "1.0.0"
            assert done["mode"] == "test"
            assert done["session"]["amount"] == 850
            assert done["result"]["status"] == "paid"
            assert done["result"]["card"] == {"brand": "mastercard", "last4": "4444"}
            expect(page.locator("#out")).to_have_text(f"Due ¥850 at {pgw_url}")
            payment = only_payment(shop)
            assert payment["id"] == done["result"]["paymentId"]
            assert payment["amount_captured"] == 850


class BusinessApp:
    """The test's stand-in for the Business App's side of the bridge: window.MpacNative
    records calls; answers go back through window.MpacPay._nativeResult, as the app sends them."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.calls: list[dict[str, Any]] = []
        page.expose_function("__mpacTestBridge", lambda text: self.calls.append(json.loads(text)))
        page.add_init_script(
            "window.MpacNative = { request: (json) => { window.__mpacTestBridge(json); } };"
        )
        self._taken = 0

    def next_call(self, timeout_s: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while len(self.calls) <= self._taken:
            assert time.monotonic() < deadline, "the page made no bridge call"
            self.page.wait_for_timeout(50)  # lets Playwright deliver the page's calls
        self._taken += 1
        return self.calls[self._taken - 1]

    def answer(self, call: dict[str, Any], result: TransactionResult) -> bool:
        delivered: bool = self.page.evaluate(
            "([id, json]) => window.MpacPay._nativeResult(id, json)",
            [call["id"], result.to_json_text()],
        )
        return delivered


def _starts_with(prefix: str) -> Any:
    import re

    return re.compile("^" + re.escape(prefix))


def _keep_docs_screenshot(page: Page) -> None:
    """``MPAC_UPDATE_DOCS_SCREENSHOT=1``: the demo mid-payment becomes the docs' picture."""
    if os.environ.get("MPAC_UPDATE_DOCS_SCREENSHOT") != "1":
        return
    shot = DOCS_SCREENSHOT.with_suffix(".tmp.png")
    page.screenshot(path=str(shot), full_page=True)
    shutil.move(shot, DOCS_SCREENSHOT)
