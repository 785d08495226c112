"""RFC 9457 problem details: the only error format any service answers with."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg.exceptions
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SqlAlchemyPoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend.core.cors import CORS_HEADERS_STATE_KEY
from backend.core.request_context import REQUEST_ID_HEADER, current_request_id
from backend.observability.metrics import service_metrics

PROBLEM_CONTENT_TYPE = "application/problem+json"
logger = logging.getLogger(__name__)


# The body of every error answer, as each service's OpenAPI documents it (components.schemas).
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details; `code` is stable (docs/errors.md).",
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string", "description": "`urn:mpac:problem:<code>`"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "code": {"type": "string", "description": "What clients branch on"},
        "instance": {"type": "string"},
        "request_id": {"type": "string", "description": "Equals the X-Request-ID header"},
        "errors": {
            "type": "array",
            "description": "`validation_failed`, `malformed_json`: what does not match",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                    "msg": {"type": "string"},
                    "type": {"type": ["string", "null"]},
                },
            },
        },
    },
    # Extension members (current_status, retry_after_s, permission, ...) per code.
    "additionalProperties": True,
}
PROBLEM_SCHEMA_REF = "#/components/schemas/Problem"


def problem_response_doc(description: str) -> dict[str, Any]:
    """An OpenAPI ``responses`` entry answered as problem details."""
    return {
        "description": description,
        "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": PROBLEM_SCHEMA_REF}}},
    }


# Every operation of every service documents these (create_service_app); a route documents a
# specific error status with problem_response_doc to say what it means there.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": problem_response_doc("The request was refused: problem details (docs/errors.md)"),
    "5XX": problem_response_doc(
        "The service could not answer (`service_busy`, `dependency_unavailable`, "
        "`provider_unavailable`, ...); 500 `internal_error` is a defect"
    ),
}


class Problem(Exception):
    """An error the client can act on; ``code`` is stable and documented, ``detail`` is prose."""

    status = 400
    code = "bad_request"
    title = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        status: int | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        commit: bool = False,
        **extensions: Any,
    ) -> None:
        self.status = status or self.status
        # A refusal whose only writes are its own security record (audit row, revoked refresh
        # family) sets commit=True so the request's session keeps them instead of rolling back.
        self.commit = commit
        self.code = code or self.code
        self.title = title or self.title
        self.detail = detail or self.title
        self.headers = headers or {}
        self.extensions = extensions
        super().__init__(f"{self.code}: {self.detail}")

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"urn:mpac:problem:{self.code}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
        }
        if instance:
            body["instance"] = instance
        request_id = current_request_id()
        if request_id:
            body["request_id"] = request_id
        body.update(self.extensions)
        return body


class BadRequest(Problem):
    status, code, title = 400, "bad_request", "Bad request"


class Unauthorized(Problem):
    status, code, title = 401, "unauthorized", "Authentication required"

    def __init__(self, detail: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        super().__init__(detail, **kwargs)


class Forbidden(Problem):
    status, code, title = 403, "forbidden", "Not allowed"


class NotFound(Problem):
    status, code, title = 404, "not_found", "Not found"


class Conflict(Problem):
    status, code, title = 409, "conflict", "Conflict"


class Unprocessable(Problem):
    status, code, title = 422, "unprocessable", "Unprocessable request"


class TooManyRequests(Problem):
    status, code, title = 429, "rate_limited", "Too many requests"

    def __init__(self, detail: str | None = None, *, retry_after_s: int, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"Retry-After": str(retry_after_s)})
        super().__init__(detail, retry_after_s=retry_after_s, **kwargs)


class ServiceUnavailable(Problem):
    status, code, title = 503, "service_unavailable", "Service unavailable"


def _count_problem(request: Request | None, status: int, code: str) -> None:
    service = getattr(request.app.state, "service", None) if request is not None else None
    if service is not None:
        service_metrics(service).problems.labels(service, str(status), code).inc()


class DependencyUnreachable(ConnectionError):
    """A connection to PostgreSQL could not be opened (``backend.core.database``)."""


# What PostgreSQL or Redis being stopped, restarted or out of reach raises, as itself or as the
# cause of SQLAlchemy's wrapper: the request may well succeed when retried in a moment.
_UNREACHABLE: tuple[type[BaseException], ...] = (
    DependencyUnreachable,
    RedisConnectionError,
    RedisTimeoutError,
    # 08xxx, including "connection was closed in the middle of operation".
    asyncpg.exceptions.PostgresConnectionError,
    # 57P01-57P03: terminated by a (fast) shutdown, crash recovery, starting up / shutting down.
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
)


def unreachable_dependency(exc: BaseException) -> BaseException | None:
    """The error in ``exc``'s explicit causes (``raise ... from``) that says the database or
    Redis could not be reached or dropped the connection; None for anything else (a defect)."""
    current: BaseException | None = exc
    for _ in range(8):
        if current is None:
            return None
        if isinstance(current, _UNREACHABLE):
            return current
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return current.orig
        current = current.__cause__
    return None


def problem_response(problem: Problem, request: Request | None = None) -> JSONResponse:
    instance = request.url.path if request is not None else None
    _count_problem(request, problem.status, problem.code)
    return JSONResponse(
        problem.body(instance),
        status_code=problem.status,
        headers=problem.headers,
        media_type=PROBLEM_CONTENT_TYPE,
    )


_HTTP_STATUS_CODES = {
    400: ("bad_request", "Bad request"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Not allowed"),
    404: ("route_not_found", "No such route"),
    405: ("method_not_allowed", "Method not allowed"),
    406: ("not_acceptable", "Not acceptable"),
    413: ("payload_too_large", "Payload too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
}


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Echoing "input" back could repeat a card number or a password into a log or a screen.
    return [
        {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type")}
        for error in exc.errors()
    ]


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc)
        if any(error["type"] == "json_invalid" for error in errors):
            problem: Problem = BadRequest(
                "The request body is not valid JSON.", code="malformed_json", errors=errors
            )
        else:
            problem = Unprocessable(
                "The request does not match the expected schema.",
                code="validation_failed",
                errors=errors,
            )
        return problem_response(problem, request)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.__cause__, UnicodeDecodeError):
            # FastAPI's own 400 for a JSON body that is not even UTF-8: the same refusal as
            # any other body that is not JSON.
            return problem_response(
                BadRequest("The request body is not valid JSON.", code="malformed_json"), request
            )
        code, title = _HTTP_STATUS_CODES.get(exc.status_code, ("http_error", "HTTP error"))
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail else title
        headers = dict(exc.headers) if exc.headers else None
        problem = Problem(detail, code=code, status=exc.status_code, title=title, headers=headers)
        return problem_response(problem, request)

    @app.exception_handler(SqlAlchemyPoolTimeout)
    async def _pool_exhausted(request: Request, exc: SqlAlchemyPoolTimeout) -> JSONResponse:
        # Every pooled connection is in use for longer than the pool timeout: the service is
        # overloaded, not broken. Clients retry after a second instead of reporting a defect.
        logger.warning(
            "database pool exhausted on %s %s: answering 503", request.method, request.url.path
        )
        problem = ServiceUnavailable(
            "The service is busy; retry in a moment.",
            code="service_busy",
            headers={"Retry-After": "1"},
        )
        return problem_response(problem, request)

    async def _unreachable(request: Request, exc: Exception) -> JSONResponse:
        cause = unreachable_dependency(exc)
        if cause is None:
            # Any other database or Redis error is a defect: the 500 handler logs it.
            raise exc
        # A restart or a network blip of PostgreSQL or Redis, not a defect: the service finds
        # them again by itself, so the client is told to retry (with the same Idempotency-Key).
        # The cause only: the wrapper's text would repeat the statement and its parameters.
        logger.warning(
            "dependency unreachable on %s %s (%s: %s): answering 503",
            request.method,
            request.url.path,
            type(cause).__name__,
            cause,
        )
        problem = ServiceUnavailable(
            "A database or cache this service needs is unreachable; retry in a moment.",
            code="dependency_unavailable",
            headers={"Retry-After": "1"},
        )
        return problem_response(problem, request)

    for unreachable in (DBAPIError, RedisError, DependencyUnreachable):
        app.add_exception_handler(unreachable, _unreachable)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        request_id = getattr(request.state, "request_id", None)
        logger.exception(
            "unhandled error on %s %s (request %s)", request.method, request.url.path, request_id
        )
        problem = Problem(
            "An unexpected error occurred; it has been logged.",
            code="internal_error",
            status=500,
            title="Internal server error",
        )
        body = problem.body(request.url.path)
        _count_problem(request, 500, problem.code)
        if request_id:
            body["request_id"] = request_id
        # Sent by Starlette's outermost middleware, past the ones that add X-Request-ID and
        # CORS headers (a page of another origin must be able to read this answer too).
        headers: dict[str, str] = dict(getattr(request.state, CORS_HEADERS_STATE_KEY, None) or {})
        if request_id:
            headers[REQUEST_ID_HEADER] = request_id
        return JSONResponse(
            body, status_code=500, headers=headers or None, media_type=PROBLEM_CONTENT_TYPE
        )
