"""Text PostgreSQL cannot store is refused at the door: 422 ``validation_failed``.

PostgreSQL refuses the NUL character in ``text`` and ``jsonb`` ("invalid byte sequence for
encoding UTF8: 0x00"), and a string holding an unpaired UTF-16 surrogate (JSON ``"\\ud800"``)
cannot even be encoded to UTF-8 for the driver. Either, anywhere in a request (a JSON body, a
form, the query string), would otherwise reach an INSERT or a WHERE clause and fail as a 500.
One middleware in every service (``create_service_app``) refuses them before any route runs,
naming where (``errors[].loc``, type ``string_unstorable``) without echoing the input; a path
with a NUL names nothing that exists (404 ``route_not_found``). Bodies of other media types are
passed on untouched.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backend.core.errors import PROBLEM_CONTENT_TYPE, NotFound, Problem, Unprocessable

ERROR_TYPE = "string_unstorable"
_MESSAGE = "NUL characters and unpaired surrogates cannot be stored"
# Only a body with one of these escapes (or a raw NUL) can hold such a string: the others are
# passed on without being parsed twice.
_JSON_SUSPECT = re.compile(rb"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})|\x00")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def storable(text: str) -> bool:
    """Whether PostgreSQL can store ``text``: no NUL, no unpaired surrogate."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _json_locations(document: Any) -> list[list[str | int]]:
    """Where in a parsed JSON document a string (or an object key) is not storable."""
    found: list[list[str | int]] = []
    stack: list[tuple[list[str | int], Any]] = [([], document)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if not storable(value):
                found.append(path)
        elif isinstance(value, dict):
            for key, item in value.items():
                if not storable(key):
                    found.append(path)  # the key itself: the object holding it is named
                else:
                    stack.append(([*path, key], item))
        elif isinstance(value, list):
            stack.extend(([*path, index], item) for index, item in enumerate(value))
    return sorted(found, key=str)


def _pairs_locations(raw: bytes, where: str) -> list[list[str | int]]:
    """Names of ``a=b&c=d`` pairs (query string, form) whose name or value is not storable."""
    if b"%00" not in raw and b"\x00" not in raw:
        return []
    pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True, encoding="latin-1")
    names = {key for key, value in pairs if "\x00" in key or "\x00" in value}
    return [[where, name.replace("\x00", "")] for name in sorted(names)]


def _media_type(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            return value.decode("latin-1").split(";")[0].strip().lower()
    return ""


async def _read_body(receive: Receive) -> tuple[bytes, list[Message]]:
    chunks: list[bytes] = []
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks), messages


class UnstorableTextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope.get("path", ""):
            # Nothing is named with a NUL: no such path, like any other unknown one.
            await _answer(scope, receive, send, NotFound("No such route.", code="route_not_found"))
            return
        locations = _pairs_locations(scope.get("query_string", b""), "query")
        media_type = _media_type(scope)
        is_json = media_type == "application/json" or media_type.endswith("+json")
        is_form = media_type == "application/x-www-form-urlencoded"
        if scope.get("method") in _BODY_METHODS and (is_json or is_form):
            body, messages = await _read_body(receive)
            if is_form:
                locations += _pairs_locations(body, "body")
            elif _JSON_SUSPECT.search(body):
                try:
                    document = json.loads(body)
                except (ValueError, RecursionError):
                    document = None  # not JSON (or too deep): the app answers it as usual
                locations += [["body", *path] for path in _json_locations(document)]
            receive = _replay(messages, receive)
        if locations:
            problem = Unprocessable(
                "The request does not match the expected schema.",
                code="validation_failed",
                errors=[{"loc": loc, "msg": _MESSAGE, "type": ERROR_TYPE} for loc in locations],
            )
            await _answer(scope, receive, send, problem)
            return
        await self.app(scope, receive, send)


async def _answer(scope: Scope, receive: Receive, send: Send, problem: Problem) -> None:
    instance = scope.get("path", "").replace("\x00", "")
    response = JSONResponse(
        problem.body(instance), status_code=problem.status, media_type=PROBLEM_CONTENT_TYPE
    )
    await response(scope, receive, send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """``receive`` that first gives back the messages already read."""
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
