"""The messages of ``GET /v1/stream`` and its close codes (docs/smarttab.md, "Real-time channel").

Every frame is one JSON object with a ``type``. Client messages are validated strictly (unknown
types and fields are a protocol error); server messages are built by the functions below, so
the documentation has one place to be checked against.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import IntEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

# A client frame larger than this is refused (1009): tokens are ~1 KB, everything else tiny.
MAX_CLIENT_MESSAGE_CHARS = 16 * 1024
# RFC 6455 allows 123 bytes of close reason.
_MAX_REASON_BYTES = 123


class CloseCode(IntEnum):
    """Why the server closed the socket. 4xxx mirror the HTTP status a client already knows."""

    NORMAL = 1000
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    # Redis or PostgreSQL unavailable: reconnect later (with last_seq).
    TRY_AGAIN_LATER = 1013
    # A frame that is not JSON, not an object, of an unknown type, or out of order.
    PROTOCOL_ERROR = 4400
    # No token, a token that does not verify (forged, expired, wrong issuer...), no auth
    # message in time, or the session's token expired without a reauth.
    UNAUTHORIZED = 4401
    # A valid token that may not stream: not store-scoped, or a reauth for someone else.
    FORBIDDEN = 4403
    # Nothing received from the client for ws_idle_timeout_s.
    IDLE_TIMEOUT = 4408
    # The client did not read fast enough (its backlog passed ws_send_queue_limit): reconnect
    # with last_seq and the missed events are replayed.
    LAGGING = 4409


@dataclass(frozen=True, slots=True)
class Close:
    """A decision to close the socket with ``code`` and a human-readable ``reason``."""

    code: CloseCode
    reason: str

    @property
    def wire_reason(self) -> str:
        encoded = self.reason.encode()
        if len(encoded) <= _MAX_REASON_BYTES:
            return self.reason
        return encoded[: _MAX_REASON_BYTES - 3].decode(errors="ignore") + "..."


# --- client -> server ----------------------------------------------------------------------


class _ClientMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Seq = Annotated[int, Field(ge=0, le=2**63 - 1)]
Token = Annotated[str, Field(min_length=1, max_length=8192)]


class AuthMessage(_ClientMessage):
    """First message of a client that cannot send an Authorization header."""

    type: Literal["auth"]
    token: Token
    last_seq: Seq | None = None


class ReauthMessage(_ClientMessage):
    """A fresh token for the same terminal (or user) and store, sent before the old one expires."""

    type: Literal["reauth"]
    token: Token


class ResumeMessage(_ClientMessage):
    """Where to start: events after ``last_seq`` (null: after the hello's ``head_seq``)."""

    type: Literal["resume"]
    last_seq: Seq | None = None


class PingMessage(_ClientMessage):
    """The client checking the server; answered with a pong carrying the same ``t``."""

    type: Literal["ping"]
    t: int | None = None


class PongMessage(_ClientMessage):
    """The answer to the server's ping (any message counts as activity; this is the cheapest)."""

    type: Literal["pong"]
    t: int | None = None


ClientMessage = AuthMessage | ReauthMessage | ResumeMessage | PingMessage | PongMessage
_CLIENT_MESSAGE: TypeAdapter[ClientMessage] = TypeAdapter(
    Annotated[ClientMessage, Field(discriminator="type")]
)


class ProtocolError(ValueError):
    """A client frame the protocol does not allow; the text is safe to put in a close reason."""


def parse_client_message(text: str) -> ClientMessage:
    try:
        return _CLIENT_MESSAGE.validate_json(text)
    except ValidationError as exc:
        # Never echo the input back: it may hold a token.
        first = exc.errors(include_input=False, include_url=False)[0]
        if first["type"] == "json_invalid":
            raise ProtocolError("the frame is not valid JSON") from exc
        if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
            raise ProtocolError(
                "unknown or missing message type (auth, reauth, resume, ping, pong)"
            ) from exc
        if first["type"] in ("dict_type", "model_type", "model_attributes_type"):
            raise ProtocolError("a message is a JSON object") from exc
        location = ".".join(str(part) for part in first["loc"][1:]) or "message"
        raise ProtocolError(f"{location}: {first['msg']}") from exc


def parse_last_seq(value: str | None) -> int | None:
    """The ``?last_seq=`` query parameter: absent, or a non-negative integer."""
    if value is None:
        return None
    if not value.isdigit() or len(value) > 19:
        raise ProtocolError("last_seq must be a non-negative integer")
    return int(value)


# --- server -> client ----------------------------------------------------------------------


def now_ms() -> int:
    return int(time.time() * 1000)


def hello(
    *,
    session_id: str,
    principal: dict[str, Any],
    store_id: str,
    head_seq: int,
    expires_at: int,
    heartbeat_interval_s: float,
    idle_timeout_s: float,
    resume_wait_s: float | None,
) -> dict[str, Any]:
    return {
        "type": "hello",
        "session_id": session_id,
        "store_id": store_id,
        "principal": principal,
        "head_seq": head_seq,
        "expires_at": expires_at,
        "heartbeat_interval_s": heartbeat_interval_s,
        "idle_timeout_s": idle_timeout_s,
        # Null when the client already said where to start (?last_seq or the auth message).
        "resume_wait_s": resume_wait_s,
        "server_time": now_ms(),
    }


def resumed(*, after_seq: int, replayed: int, last_seq: int) -> dict[str, Any]:
    """Sent once, when the replay is done: from here on events arrive live."""
    return {"type": "resumed", "after_seq": after_seq, "replayed": replayed, "last_seq": last_seq}


def resync_required(*, last_seq: int, oldest_seq: int | None, head_seq: int) -> dict[str, Any]:
    """The events after ``last_seq`` cannot be replayed: refetch state; the stream goes on
    with the events after ``head_seq``."""
    return {
        "type": "resync_required",
        "last_seq": last_seq,
        "oldest_seq": oldest_seq,
        "head_seq": head_seq,
    }


def ping() -> dict[str, Any]:
    return {"type": "ping", "t": now_ms()}


def pong(t: int | None) -> dict[str, Any]:
    return {"type": "pong", "t": t, "server_time": now_ms()}


def reauthenticated(*, expires_at: int) -> dict[str, Any]:
    return {"type": "reauthenticated", "expires_at": expires_at}
