"""The Business App's WebViewActivity on a real enrolled terminal (the session's platform), with
the fake WebView playing the page: opening with a payment token, pay_card through the Credit
Card App, retries that cannot charge twice, malformed calls, a lost result followed by QUERY,
cancel, and the view closed with the activity or its process."""

from __future__ import annotations

import asyncio
import shlex
import uuid
from collections.abc import Callable
from typing import Any

from terminal_emulator.android import LogFilter
from terminal_emulator.apps.business import MainActivity, WebViewActivity
from terminal_emulator.contract import BUSINESS_PACKAGE, CREDIT_CARD_PACKAGE
from terminal_emulator.hardware import ScriptedCardReader, SimulatedCardReader, hang, tap
from terminal_emulator.shell import executor_for
from terminal_emulator.terminal import EmulatedTerminal
from terminal_emulator.webview import FakeWebViewEngine, FakeWebViewHost
from tests.terminal_emulator.apps.conftest import Registered
from tests.terminal_emulator.apps.helpers import until
from tests.terminal_emulator.shell.helpers import sh

MakeTerminal = Callable[..., tuple[EmulatedTerminal, Registered]]

PAGE = "https://shop.example/menu/?table=7"
APPROVED = "4242424242424242"


def rid() -> str:
    return f"R-{uuid.uuid4().hex[:12]}"


def pay(call_id: str, request_id: str, amount: Any = 1200, **params: Any) -> dict[str, Any]:
    return {
        "id": call_id,
        "method": "pay_card",
        "params": {"request_id": request_id, "amount": amount, "currency": "JPY", **params},
    }


async def open_page(
    terminal: EmulatedTerminal, url: str = PAGE, extras: str = ""
) -> tuple[WebViewActivity, FakeWebViewHost]:
    """``am start -W -n jp.mpac.business/.WebViewActivity -d <url>`` through the terminal's
    shell, as a host over ADB would; the page once loaded."""
    shell = executor_for(terminal)
    out = await sh(
        shell, f"am start -W -n jp.mpac.business/.WebViewActivity -d {shlex.quote(url)} {extras}"
    )
    assert out.status == 0, out
    assert "Status: ok" in out.out
    assert "Activity: jp.mpac.business/.WebViewActivity" in out.out
    engine = terminal.config.apps.webview
    assert isinstance(engine, FakeWebViewEngine)
    host = await engine.wait_for_host()
    await host.wait_for(lambda: host.loaded)
    activity = terminal.device.am.foreground_activity
    assert isinstance(activity, WebViewActivity)
    await until(lambda: activity.page_state == "ready", what="the page loaded")
    return activity, host


def logged(terminal: EmulatedTerminal) -> str:
    return "\n".join(terminal.device.logcat.dump(LogFilter.parse(["*:V"])))


async def terminal_payments(terminal: EmulatedTerminal) -> list[dict[str, Any]]:
    return await terminal.pgw.list_payments(terminal_id=str(terminal.identity.terminal_id))


def test_opens_the_page_with_a_payment_token_and_closes(make_terminal: MakeTerminal) -> None:
    async def scenario() -> None:
        terminal, _ = make_terminal()
        async with terminal:
            engine = terminal.config.apps.webview
            assert isinstance(engine, FakeWebViewEngine)
            assert engine.hosts == []  # nothing opened at start
            _activity, host = await open_page(
                terminal, PAGE + "#lang=ja", "--el amount 1200 --es currency JPY"
            )
            assert len(host.loaded) == 1
            url, _, fragment = host.loaded[0].partition("#")
            assert url == PAGE
            assert fragment.startswith("lang=ja&token=pt_")
            token = fragment.removeprefix("lang=ja&token=")
            # the token is pgw's, for this store, limited to the amount the page was opened for
            answer = await terminal.http.get(
                f"{terminal.config.urls.pgw}/v1/payment-tokens/current",
                headers={"authorization": f"Bearer {token}"},
            )
            assert answer.status_code == 200, answer.text
            assert (answer.json()["amount"], answer.json()["currency"]) == (1200, "JPY")
            assert answer.json()["terminal_id"] == str(terminal.identity.terminal_id)
            # the native object and the answer queue are injected before the page's scripts
            assert set(host.interfaces) == {"MpacNative"}
            assert any("__mpacNativeDeliver" in script for script in host.init_scripts)

            screen = await terminal.presenter.wait_for("webview")
            assert screen.app == "business"
            assert screen.title == "Fake page"
            assert screen.lines[0] == PAGE  # without the fragment (where the token is)
            assert [b.id for b in screen.buttons] == ["reload", "close"]
            assert token not in repr(screen)
            assert token not in logged(terminal)

            # the page may charge only what it was opened for
            host.call_native(pay("c-1", rid(), amount=1500))
            refused = await host.wait_for_result("c-1")
            assert refused["error_code"] == "INVALID_REQUEST"
            assert "may charge ¥1,200 only" in refused["error_message"]

            # Reload: a fresh token, the page again
            terminal.presenter.press("reload")
            await host.wait_for(lambda: len(host.loaded) == 2)
            assert host.loaded[1] != host.loaded[0]

            terminal.presenter.press("close")
            await host.wait_for(lambda: host.closed)
            await until(lambda: isinstance(terminal.device.am.foreground_activity, MainActivity))

    asyncio.run(scenario())


def test_pay_card_is_approved_and_a_retry_charges_once(make_terminal: MakeTerminal) -> None:
    async def scenario() -> None:
        reader = ScriptedCardReader([tap(APPROVED)])
        terminal, registered = make_terminal(card_reader=reader)
        async with terminal:
            activity, host = await open_page(terminal)
            request_id = rid()
            host.call_native(pay("c-1", request_id, note="Table 7", metadata={"order": 17}))
            result = await host.wait_for_result("c-1", 30)
            assert result["status"] == "approved", result
            assert result["result_code"] == -1
            assert result["request_id"] == request_id  # the page's id, not the contract's
            assert result["action"] == "jp.mpac.creditcard.action.PAYMENT"
            assert result["masked_pan"] == "**** **** **** 4242"
            assert result["card_brand"] == "visa"
            assert (result["amount"], result["currency"]) == (1200, "JPY")
            assert result["metadata"] == '{"order":17}'
            assert reader.requests == ["card"]

            payments = await terminal_payments(terminal)
            assert [p["id"] for p in payments] == [result["payment_id"]]
            assert payments[0]["status"] == "captured"
            assert payments[0]["terminal_id"] == registered.terminal_id
            terminal_id = terminal.identity.terminal_id
            assert payments[0]["reference"] == f"mpac:{terminal_id}:wv:{request_id}:payment:1"

            # the SDK retries after a lost answer: same request id, the journaled result
            host.call_native(pay("c-2", request_id, note="Table 7", metadata={"order": 17}))
            assert await host.wait_for_result("c-2", 30) == result
            # query by the page's request id
            host.call_native({"id": "c-3", "method": "query", "params": {"request_id": request_id}})
            assert (await host.wait_for_result("c-3", 30))["payment_id"] == result["payment_id"]
            host.call_native({"id": "c-4", "method": "query", "params": {"request_id": rid()}})
            assert (await host.wait_for_result("c-4", 30))["status"] == "not_found"
            assert reader.requests == ["card"]  # no second card read
            assert len(await terminal_payments(terminal)) == 1
            assert activity.payment is None

    asyncio.run(scenario())


def test_bad_calls_are_answered_with_errors(make_terminal: MakeTerminal) -> None:
    async def scenario() -> None:
        reader = ScriptedCardReader()
        terminal, _ = make_terminal(card_reader=reader)
        async with terminal:
            activity, host = await open_page(terminal)
            host.call_native("this is not JSON")  # no id: nothing to answer
            host.call_native({"id": "c-1", "method": "refund", "params": {}})
            host.call_native({"id": "c-2", "method": "pay_card", "params": "x"})
            host.call_native(pay("c-3", "bad id with spaces"))
            host.call_native({"id": "c-4", "method": "pay_card", "params": {"request_id": "R-1"}})
            host.call_native(pay("c-5", "R-2", entry_modes=["qr"]))
            host.call_native(pay("c-6", "R-3", amount=0))
            host.call_native(pay("c-7", "R-4", amount="1200"))
            host.call_native({"id": "c-8", "method": "query", "params": {}})
            host.call_native({"id": "c-9", "method": "cancel", "params": {"request_id": "R-5"}})
            for call_id in [f"c-{n}" for n in range(1, 10)]:
                await host.wait_for_result(call_id)
            results = dict(host.native_results())
            assert len(host.native_results()) == 9  # "this is not JSON" got no answer
            codes = {call_id: result["error_code"] for call_id, result in results.items()}
            assert codes == {
                "c-1": "INVALID_REQUEST",
                "c-2": "INVALID_REQUEST",
                "c-3": "INVALID_REQUEST",
                "c-4": "INVALID_REQUEST",
                "c-5": "INVALID_REQUEST",
                "c-6": "INVALID_REQUEST",
                "c-7": "INVALID_REQUEST",
                "c-8": "INVALID_REQUEST",
                "c-9": "ILLEGAL_STATE",
            }
            assert all(result["status"] == "error" for result in results.values())
            assert "unknown method 'refund'" in results["c-1"]["error_message"]
            assert "amount is required" in results["c-4"]["error_message"]
            assert results["c-4"]["request_id"] == "R-1"
            assert "entry_modes" in results["c-5"]["error_message"]
            # nothing reached the Credit Card App
            assert reader.requests == []
            assert "jp.mpac.creditcard/.TransactionActivity" not in logged(terminal)
            assert "bridge call refused: message is not JSON" in logged(terminal)
            assert activity.page_state == "ready"

    asyncio.run(scenario())


def test_a_lost_result_is_queried_before_the_page_is_answered(
    make_terminal: MakeTerminal,
) -> None:
    async def scenario() -> None:
        reader = ScriptedCardReader([hang()])
        terminal, _ = make_terminal(card_reader=reader)
        async with terminal:
            activity, host = await open_page(terminal)
            request_id = rid()
            host.call_native(pay("c-1", request_id))
            await until(lambda: reader.requests == ["card"], what="the card screen")
            screen = await terminal.presenter.wait_for("present_card")
            assert screen.app == "creditcard"
            # the Credit Card App dies: RESULT_CANCELED without data, then QUERY, then answer
            terminal.device.am.force_stop(CREDIT_CARD_PACKAGE)
            result = await host.wait_for_result("c-1", 20)
            assert result["status"] == "cancelled"
            assert result["error_code"] == "INTERRUPTED"
            assert result["request_id"] == request_id
            assert f"result of wv:{request_id} lost; QUERY #1" in logged(terminal)
            assert await terminal_payments(terminal) == []
            assert activity.payment is None
            assert (await terminal.presenter.wait_for("webview")).app == "business"

    asyncio.run(scenario())


def test_cancel_from_the_page_and_a_second_payment_while_busy(
    make_terminal: MakeTerminal,
) -> None:
    async def scenario() -> None:
        reader = SimulatedCardReader()
        terminal, _ = make_terminal(card_reader=reader)
        async with terminal:
            activity, host = await open_page(terminal)
            request_id = rid()
            host.call_native(pay("c-1", request_id))
            await asyncio.wait_for(reader.wait_for_prompt("card"), 10)
            host.call_native(pay("c-2", rid()))  # another payment while one is in flight
            busy = await host.wait_for_result("c-2")
            assert busy["error_code"] == "TERMINAL_BUSY"
            host.call_native(pay("c-3", request_id))  # the same one again: waits for it
            host.call_native(pay("c-4", request_id, amount=999))  # same id, other payment
            assert (await host.wait_for_result("c-4"))["error_code"] == "REQUEST_ID_REUSED"
            host.call_native(
                {"id": "c-5", "method": "cancel", "params": {"request_id": request_id}}
            )
            answers = [await host.wait_for_result(call_id, 20) for call_id in ("c-1", "c-3", "c-5")]
            assert answers[0] == answers[1] == answers[2]
            assert answers[0]["status"] == "cancelled"
            assert answers[0]["error_code"] == "CUSTOMER_CANCELLED"
            assert answers[0]["request_id"] == request_id
            assert await terminal_payments(terminal) == []
            assert activity.payment is None

    asyncio.run(scenario())


def test_the_view_closes_with_its_process_and_bad_urls_are_refused(
    make_terminal: MakeTerminal,
) -> None:
    async def scenario() -> None:
        terminal, _ = make_terminal()
        async with terminal:
            _activity, host = await open_page(terminal)
            out = await sh(executor_for(terminal), f"am force-stop {BUSINESS_PACKAGE}")
            assert out.status == 0
            await host.wait_for(lambda: host.closed)

            out = await sh(
                executor_for(terminal),
                "am start -n jp.mpac.business/.WebViewActivity -d file:///etc/passwd",
            )
            assert out.status == 0, out
            screen = await terminal.presenter.wait_for("webview")
            assert "Not an http(s) URL: file:///etc/passwd" in screen.lines
            engine = terminal.config.apps.webview
            assert isinstance(engine, FakeWebViewEngine)
            assert len(engine.hosts) == 1  # no view for it

            # a page that cannot load says so; Reload tries again
            engine.make_host = lambda: FakeWebViewHost(fail_load="net::ERR_NAME_NOT_RESOLVED")
            await sh(
                executor_for(terminal),
                f"am start -n jp.mpac.business/.WebViewActivity -d {shlex.quote(PAGE)}",
            )
            screen = await terminal.presenter.wait_for(
                lambda s: any("did not load" in line for line in s.lines)
            )
            assert "The page did not load: net::ERR_NAME_NOT_RESOLVED" in screen.lines

    asyncio.run(scenario())


def test_no_payment_token_without_pgw(make_terminal: MakeTerminal) -> None:
    async def scenario() -> None:
        terminal, _ = make_terminal()
        async with terminal:
            terminal.pgw.base_url = "http://127.0.0.1:9"  # nothing listens there
            shell = executor_for(terminal)
            await sh(shell, f"am start -n jp.mpac.business/.WebViewActivity -d {PAGE}")
            screen = await terminal.presenter.wait_for(
                lambda s: any(line.startswith("No payment token") for line in s.lines)
            )
            assert screen.name == "webview"
            engine = terminal.config.apps.webview
            assert isinstance(engine, FakeWebViewEngine)
            assert engine.hosts[-1].loaded == []  # the page is not opened without its token

    asyncio.run(scenario())
