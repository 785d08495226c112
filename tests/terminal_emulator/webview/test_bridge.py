"""The native bridge protocol on its own: reading the page's calls, the answer script, origins,
and :class:`NativeBridge` on the fake WebView (no device, no browser)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from terminal_emulator.apps.business.webview import page_request_id, url_with_token
from terminal_emulator.contract import ErrorCode, Status, TransactionResult
from terminal_emulator.webview import (
    INIT_SCRIPT,
    NATIVE_OBJECT,
    BridgeCall,
    BridgeError,
    FakeWebViewEngine,
    FakeWebViewHost,
    NativeBridge,
    WebViewError,
    engine_named,
    origin_of,
    parse_call,
    parse_result_script,
    result_script,
    without_fragment,
)

PAGE = "https://shop.example:8443/menu/?table=7"
ORIGIN = "https://shop.example:8443"


def test_a_well_formed_call_is_read() -> None:
    call = parse_call(
        json.dumps({"id": "c-1", "method": "pay_card", "params": {"amount": 1200}}), PAGE
    )
    assert call == BridgeCall("c-1", "pay_card", {"amount": 1200}, PAGE)
    assert parse_call('{"id": 7, "method": "cancel"}').params == {}
    assert parse_call('{"id": 7, "method": "query", "params": null}').call_id == 7


@pytest.mark.parametrize(
    ("text", "call_id", "message"),
    [
        ("not json", None, "not JSON"),
        ("[1, 2]", None, "not a JSON object"),
        ('{"method": "pay_card"}', None, "id must be"),
        ('{"id": true, "method": "pay_card"}', None, "id must be"),
        ('{"id": "", "method": "pay_card"}', None, "id must be"),
        ('{"id": "c-2", "method": "refund"}', "c-2", "unknown method 'refund'"),
        ('{"id": "c-3"}', "c-3", "unknown method None"),
        ('{"id": "c-4", "method": "query", "params": [1]}', "c-4", "params must be"),
        (json.dumps({"id": "c-5", "method": "query", "pad": "x" * 70_000}), None, "longer"),
    ],
)
def test_malformed_calls_are_refused_with_their_id_when_readable(
    text: str, call_id: str | None, message: str
) -> None:
    with pytest.raises(BridgeError) as raised:
        parse_call(text)
    assert raised.value.call_id == call_id
    assert message in raised.value.message
    assert raised.value.code is ErrorCode.INVALID_REQUEST


def test_the_answer_script_round_trips_any_text() -> None:
    result = json.dumps({"v": 1, "status": "approved", "note": 'quote " </script> \u2028 ¥'})
    script = result_script("call\"'\n", result, ORIGIN)
    assert "\n" not in script
    assert parse_result_script(script) == ("call\"'\n", result, ORIGIN)
    assert parse_result_script("window.alert(1)") is None
    assert "window.MpacPay" in script
    assert "_nativeResult" in script
    # the init script queues answers until the SDK defines MpacPay._nativeResult
    assert "__mpacNativeDeliver" in INIT_SCRIPT
    assert "_nativeResult" in INIT_SCRIPT


def test_origins_and_the_token_fragment() -> None:
    assert origin_of(PAGE) == ORIGIN
    assert origin_of("HTTP://Example.COM:80/x") == "http://example.com"
    assert origin_of("https://example.com:443/") == "https://example.com"
    assert origin_of("http://[::1]:8080/") == "http://[::1]:8080"
    assert origin_of("file:///etc/passwd") == ""
    assert origin_of("javascript:alert(1)") == ""
    assert origin_of("http://host:99999/") == ""
    assert url_with_token(PAGE, "pt_abc") == PAGE + "#token=pt_abc"
    assert url_with_token(PAGE + "#lang=ja", "pt_abc") == PAGE + "#lang=ja&token=pt_abc"
    assert url_with_token(PAGE + "#", "pt_abc") == PAGE + "#token=pt_abc"
    assert without_fragment(PAGE + "#token=pt_abc") == PAGE
    assert page_request_id("wv:R-1") == "R-1"
    assert page_request_id("R-2") == "R-2"


def test_engines_by_name() -> None:
    assert isinstance(engine_named("fake"), FakeWebViewEngine)
    assert engine_named("chromium").name == "chromium"
    with pytest.raises(ValueError, match="unknown WebView engine"):
        engine_named("webkit")


def test_native_bridge_on_the_fake_view() -> None:
    async def scenario() -> None:
        host = FakeWebViewHost()
        calls: list[BridgeCall] = []
        logged: list[str] = []
        bridge = NativeBridge(host, ORIGIN, calls.append, on_log=logged.append)
        bridge.retry_delay_s = 0.01
        await bridge.attach()
        assert set(host.interfaces) == {NATIVE_OBJECT}
        assert set(host.interfaces[NATIVE_OBJECT]) == {"request"}
        assert host.init_scripts == [INIT_SCRIPT]
        await host.load(PAGE + "#token=pt_x")

        # a good call reaches the app, untouched
        host.call_native({"id": "c-1", "method": "pay_card", "params": {"amount": 5}})
        assert calls == [BridgeCall("c-1", "pay_card", {"amount": 5}, PAGE + "#token=pt_x")]

        # bad JSON: no id to answer, only logged
        host.call_native("{oops")
        # an unknown method with an id: answered INVALID_REQUEST
        host.call_native({"id": "c-2", "method": "refund"})
        # another origin (the page navigated away): refused, and the answer is not delivered
        host.call_native({"id": "c-3", "method": "query"}, page_url="https://evil.example/")
        await bridge.wait_idle()
        assert len(calls) == 1
        assert [error.message for error in bridge.refused] == [
            "message is not JSON",
            "unknown method 'refund' (one of pay_card, cancel, query)",
            "a page of 'https://evil.example' may not use the bridge of https://shop.example:8443",
        ]
        assert any("not JSON" in line for line in logged)
        answers = dict(host.native_results())
        assert set(answers) == {"c-2", "c-3"}
        assert answers["c-2"]["status"] == "error"
        assert answers["c-2"]["error_code"] == "INVALID_REQUEST"
        assert "unknown method" in answers["c-2"]["error_message"]
        assert answers["c-3"]["error_code"] == "PERMISSION_DENIED"
        assert ("c-2", "delivered") in [(cid, outcome) for cid, _r, outcome in bridge.answers]

        # an answer goes only to a document of the bridge's origin
        await host.load("https://evil.example/")
        approved = TransactionResult(status=Status.APPROVED, request_id="R")
        assert await bridge.answer("c-1", approved) == "wrong-origin"

        # a closed view: the answer fails quietly
        await host.close()
        assert await bridge.answer("c-1", approved) == "failed"
        with pytest.raises(WebViewError):
            await host.load(PAGE)

    asyncio.run(scenario())


def test_mpac_terminal_chooses_the_webview_engine(tmp_path: Path) -> None:
    from backend.cli import build_parser
    from terminal_emulator.commands import _configs
    from terminal_emulator.webview.chromium import ChromiumWebViewEngine

    common = ["terminal", "--headless", "--state-dir", str(tmp_path), "--count", "2"]
    fake = _configs(build_parser().parse_args(common))
    assert all(isinstance(config.apps.webview, FakeWebViewEngine) for config in fake)
    real = _configs(
        build_parser().parse_args(
            [*common, "--webview", "chromium", "--chromium", "/opt/chromium/chrome"]
        )
    )
    engines = [config.apps.webview for config in real]
    assert all(isinstance(engine, ChromiumWebViewEngine) for engine in engines)
    assert engines[0] is not engines[1]  # one per terminal, closed with it
    assert [getattr(engine, "executable_path", None) for engine in engines] == [
        "/opt/chromium/chrome"
    ] * 2
    assert not any(getattr(engine, "started", True) for engine in engines)  # launched lazily
