"""The native bridge between a page's JavaScript SDK and the Business App.

The protocol (``docs/terminal-emulator.md``, "WebView"): the app injects ``window.MpacNative``
before the page's scripts; the page calls ``window.MpacNative.request(json)`` with
``{"id": <call id>, "method": "pay_card" | "cancel" | "query", "params": {...}}`` and gets
``undefined`` back at once; the app answers later by evaluating
``window.MpacPay._nativeResult(callId, resultJsonString)`` in the page, the result being the
contract's ``TransactionResult.to_json()`` as text. An answer that arrives before the SDK has
defined ``window.MpacPay`` is queued in the page (by :data:`INIT_SCRIPT`) and delivered as soon
as it appears; answers are only delivered to a document of the origin the bridge serves.

:class:`NativeBridge` does the plumbing for one WebView: it adds the interface and the init
script, checks each call's origin and shape, hands good calls to the app and answers bad ones
with an ``INVALID_REQUEST`` (or ``PERMISSION_DENIED``) result.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from terminal_emulator.contract import Action, ErrorCode, TransactionResult
from terminal_emulator.webview.host import WebViewError, WebViewHost, origin_of, without_fragment

log = logging.getLogger(__name__)

NATIVE_OBJECT = "MpacNative"
NATIVE_METHOD = "request"
METHODS = ("pay_card", "cancel", "query")
MAX_MESSAGE_CHARS = 64 * 1024
MAX_CALL_ID_CHARS = 128

CallId = str | int

# Runs before the page's scripts in every document: a queue for answers that arrive before the
# SDK defines ``window.MpacPay._nativeResult`` (flushed as soon as it exists; given up after
# two minutes). Defined non-writable so a page cannot replace it by accident.
INIT_SCRIPT = """
(function () {
  if (window.__mpacNativeDeliver) { return; }
  var queue = [];
  var timer = null;
  function sdk() {
    var pay = window.MpacPay;
    return pay && typeof pay._nativeResult === "function" ? pay : null;
  }
  function flush() {
    var pay = sdk();
    if (!pay) { return false; }
    while (queue.length) {
      var item = queue.shift();
      try { pay._nativeResult(item[0], item[1]); }
      catch (error) { console.error("MpacNative: _nativeResult failed", error); }
    }
    return true;
  }
  function deliver(callId, resultJson) {
    queue.push([callId, resultJson]);
    if (flush()) { return "delivered"; }
    if (timer === null) {
      var waited = 0;
      timer = setInterval(function () {
        waited += 50;
        if (flush() || waited >= 120000) { clearInterval(timer); timer = null; }
      }, 50);
    }
    return "queued";
  }
  Object.defineProperty(window, "__mpacNativeDeliver", {
    value: deliver, writable: false, configurable: false, enumerable: false
  });
  document.addEventListener("DOMContentLoaded", flush);
})();
"""

# The answer, as evaluated in the page: the arguments are one JSON array
# ``[callId, resultJson, origin]`` between _RESULT_PREFIX and _RESULT_SUFFIX.
_RESULT_PREFIX = (
    "/*mpac-native-result*/(function (a) {"
    ' if (window.location.origin !== a[2]) { return "wrong-origin"; }'
    ' if (typeof window.__mpacNativeDeliver === "function") {'
    " return window.__mpacNativeDeliver(a[0], a[1]); }"
    " var pay = window.MpacPay;"
    ' if (pay && typeof pay._nativeResult === "function") {'
    ' pay._nativeResult(a[0], a[1]); return "delivered"; }'
    ' return "no-sdk"; })('
)
_RESULT_SUFFIX = ")"


def result_script(call_id: CallId, result_json: str, origin: str) -> str:
    """The expression that hands ``result_json`` (a string) to the page's SDK for
    ``call_id``, only in a document of ``origin``; it evaluates to ``"delivered"``,
    ``"queued"`` (no SDK yet), ``"wrong-origin"`` or ``"no-sdk"``."""
    arguments = json.dumps([call_id, result_json, origin], ensure_ascii=True)
    return f"{_RESULT_PREFIX}{arguments}{_RESULT_SUFFIX}"


def parse_result_script(script: str) -> tuple[CallId, str, str] | None:
    """``(call_id, result_json, origin)`` of a :func:`result_script`; None for other scripts
    (what a fake page uses to read the app's answers)."""
    if not (script.startswith(_RESULT_PREFIX) and script.endswith(_RESULT_SUFFIX)):
        return None
    try:
        call_id, result_json, origin = json.loads(
            script[len(_RESULT_PREFIX) : len(script) - len(_RESULT_SUFFIX)]
        )
    except (ValueError, TypeError):
        return None
    return call_id, result_json, origin


@dataclass(frozen=True)
class BridgeCall:
    call_id: CallId
    method: str  # one of METHODS
    params: dict[str, Any] = field(default_factory=dict)
    page_url: str = ""


class BridgeError(Exception):
    """A call the bridge cannot take; ``call_id`` when one could be read (then it is
    answered), else None (nothing to answer: only logged)."""

    def __init__(
        self,
        message: str,
        call_id: CallId | None = None,
        code: ErrorCode = ErrorCode.INVALID_REQUEST,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.call_id = call_id
        self.code = code


def _call_id(value: Any) -> CallId | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and abs(value) < 2**53:
        return value
    if isinstance(value, str) and 0 < len(value) <= MAX_CALL_ID_CHARS:
        return value
    return None


def parse_call(text: str, page_url: str = "") -> BridgeCall:
    """Read one ``MpacNative.request`` message; raises :class:`BridgeError`."""
    if len(text) > MAX_MESSAGE_CHARS:
        raise BridgeError(f"message longer than {MAX_MESSAGE_CHARS} characters")
    try:
        document = json.loads(text)
    except ValueError:
        raise BridgeError("message is not JSON") from None
    if not isinstance(document, dict):
        raise BridgeError("message is not a JSON object")
    call_id = _call_id(document.get("id"))
    if call_id is None:
        raise BridgeError(f"id must be a string of 1-{MAX_CALL_ID_CHARS} characters or an integer")
    method = document.get("method")
    if not isinstance(method, str) or method not in METHODS:
        raise BridgeError(f"unknown method {method!r} (one of {', '.join(METHODS)})", call_id)
    params = document.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise BridgeError("params must be a JSON object", call_id)
    return BridgeCall(call_id, method, params, page_url)


def error_result(
    code: ErrorCode, message: str, *, request_id: str | None = None
) -> TransactionResult:
    return TransactionResult.failure(code, message, request_id=request_id, action=Action.PAYMENT)


class NativeBridge:
    """``window.MpacNative`` in one WebView, serving pages of one origin.

    ``on_call(call)`` gets every well-formed call from a document of ``origin`` (on the loop
    that attached the bridge); the app answers each with :meth:`answer`, once. Calls from
    another origin are answered ``PERMISSION_DENIED`` (which that document never receives:
    answers go to ``origin`` only); malformed ones ``INVALID_REQUEST`` when they carry an id.
    """

    def __init__(
        self,
        host: WebViewHost,
        origin: str,
        on_call: Callable[[BridgeCall], None],
        *,
        on_log: Callable[[str], None] | None = None,
        spawn: Callable[[Coroutine[Any, Any, None]], Any] | None = None,
    ) -> None:
        self.host = host
        self.origin = origin
        self._on_call = on_call
        self._on_log = on_log or (lambda message: log.info("%s", message))
        # How answers run in the background: the app passes its process's launch(), so they
        # die with the process; default: a task of the running loop.
        self._spawn = spawn
        self._tasks: set[asyncio.Task[None]] = set()
        self.refused: list[BridgeError] = []
        self.answers: list[tuple[CallId, TransactionResult, str]] = []
        self.retry_delay_s = 0.2  # after a failed evaluate (a navigation), 1x then 2x

    async def attach(self) -> None:
        """Add the interface and the init script (before the first load)."""
        await self.host.add_init_script(INIT_SCRIPT)
        await self.host.add_javascript_interface(NATIVE_OBJECT, {NATIVE_METHOD: self._request})

    def _request(self, text: str, page_url: str) -> None:
        try:
            if origin_of(page_url) != self.origin:
                raise BridgeError(
                    f"a page of {origin_of(page_url) or without_fragment(page_url)!r} may not "
                    f"use the bridge of {self.origin}",
                    _peek_id(text),
                    ErrorCode.PERMISSION_DENIED,
                )
            call = parse_call(text, page_url)
        except BridgeError as error:
            self.refused.append(error)
            self._on_log(f"bridge call refused: {error.message}")
            if error.call_id is not None:
                self.answer_soon(error.call_id, error_result(error.code, error.message))
            return
        self._on_call(call)

    def answer_soon(self, call_id: CallId, result: TransactionResult) -> None:
        """:meth:`answer` in the background (from synchronous code)."""

        async def send() -> None:
            await self.answer(call_id, result)

        if self._spawn is not None:
            self._spawn(send())
            return
        task = asyncio.get_running_loop().create_task(send())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def answer(self, call_id: CallId, result: TransactionResult) -> str:
        """Deliver ``result`` for ``call_id``; what the page said (``delivered``, ``queued``,
        ``wrong-origin``, ``no-sdk``) or ``failed`` (the page is gone). Never raises but
        for cancellation."""
        script = result_script(call_id, result.to_json_text(), self.origin)
        outcome = "failed"
        for attempt in range(3):
            try:
                outcome = str(await self.host.evaluate(script))
                break
            except WebViewError as error:
                # A navigation in progress destroys the context: try the new document.
                self._on_log(f"answer to call {call_id!r} not delivered yet: {error}")
                if attempt < 2:
                    await asyncio.sleep(self.retry_delay_s * (attempt + 1))
            except Exception as error:  # an engine's surprise must not crash the app
                log.exception("answer to call %r failed", call_id)
                self._on_log(f"answer to call {call_id!r} failed: {error}")
                break
        self.answers.append((call_id, result, outcome))
        return outcome

    async def wait_idle(self) -> None:
        """Until the answers sent with :meth:`answer_soon` (default spawn) are evaluated."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def _peek_id(text: str) -> CallId | None:
    try:
        document = json.loads(text)
    except ValueError:
        return None
    return _call_id(document.get("id")) if isinstance(document, dict) else None
