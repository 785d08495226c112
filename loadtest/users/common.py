"""What every simulated user shares within one locust process: the configuration, the fleet,
who takes which terminal or login, recent payments (for the webhook user) and helpers to call
the APIs and report custom (WebSocket) measurements to locust's statistics."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from locust.contrib.fasthttp import FastHttpSession, ResponseContextManager
from locust.env import Environment

from loadtest.config import LoadConfig
from loadtest.fleet import DeviceIdentity, Fleet, FleetTerminal, FleetUser, load_fleet

# Roles a PortalUser logs in as (the fleet's merchant- and store-level staff).
PORTAL_ROLES = ("merchant_admin", "auditor", "store_manager")
RECENT_PAYMENTS = 5000


@dataclass
class LoadContext:
    """Per process (master, worker or local): built once, on the first user's start."""

    config: LoadConfig
    fleet: Fleet
    # Where this process starts in the fleet's lists, so workers take different terminals.
    offset: int = 0
    _terminals: list[FleetTerminal] = field(default_factory=list, init=False)
    _next_terminal: int = 0
    _next_login: int = 0
    _identities: dict[str, DeviceIdentity] = field(default_factory=dict)
    recent_payments: deque[dict[str, Any]] = field(
        default_factory=lambda: deque(maxlen=RECENT_PAYMENTS)
    )

    def __post_init__(self) -> None:
        self._terminals = self.fleet.terminals_across_stores()

    def next_terminal(self) -> FleetTerminal:
        terminals = self._terminals
        if not terminals:
            raise RuntimeError(f"the fleet {self.config.fleet_path} has no terminals")
        terminal = terminals[(self.offset + self._next_terminal) % len(terminals)]
        self._next_terminal += 1
        return terminal

    def next_login(self) -> FleetUser:
        users = self.fleet.users_with_role(*PORTAL_ROLES)
        if not users:
            raise RuntimeError(
                f"the fleet {self.config.fleet_path} has no merchant or store users "
                "(provisioned with --no-users?)"
            )
        user = users[(self.offset + self._next_login) % len(users)]
        self._next_login += 1
        return user

    def identity(self, terminal: FleetTerminal) -> DeviceIdentity:
        identity = self._identities.get(terminal.terminal_id)
        if identity is None:
            identity = self._identities[terminal.terminal_id] = DeviceIdentity(terminal)
        return identity

    def stores_of(self, user: FleetUser) -> list[str]:
        if user.store_id:
            return [user.store_id]
        return [store.id for store in self.fleet.stores if store.merchant_id == user.merchant_id]


_CONTEXTS: dict[int, LoadContext] = {}


def context_of(environment: Environment) -> LoadContext:
    """The process's context, built from the options (on a worker: the master's options)."""
    context = _CONTEXTS.get(id(environment))
    if context is None:
        options = environment.parsed_options
        if options is None:
            raise RuntimeError("the load test options were not parsed (run through locust)")
        fleet = load_fleet(options.fleet)
        config = LoadConfig.from_options(options, fleet)
        runner = environment.runner
        index = max(0, int(getattr(runner, "worker_index", 0) or 0))
        workers = max(1, int(getattr(options, "expect_workers", 1) or 1))
        offset = index * max(1, len(fleet.terminals) // workers)
        context = _CONTEXTS[id(environment)] = LoadContext(config, fleet, offset=offset)
    return context


def fire(
    environment: Environment,
    request_type: str,
    name: str,
    response_time_ms: float,
    *,
    length: int = 0,
    exception: BaseException | None = None,
) -> None:
    """Report a measurement that is not an HTTP request of the client (WebSocket traffic)."""
    environment.events.request.fire(
        request_type=request_type,
        name=name,
        response_time=response_time_ms,
        response_length=length,
        exception=exception,
        context={},
    )


class UnexpectedResponse(Exception):
    pass


def problem_code(response: Any) -> str:
    try:
        body = json.loads(response.text or "{}")
    except (ValueError, TypeError):
        return ""
    return str(body.get("code", "")) if isinstance(body, dict) else ""


def call(
    client: FastHttpSession,
    method: str,
    url: str,
    *,
    name: str,
    expected: Sequence[int] = (200,),
    json_body: Any = None,
    form: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> Any:
    """One request named after its route; anything but ``expected`` counts as a failure.

    Returns the parsed JSON body (``{}`` when there is none) of an expected answer, else None
    (an unexpected status, or no answer at all: a connection error or timeout, which locust
    counts as a failure by itself).
    """
    extra = dict(headers or {})
    data: str | None = None
    if form is not None:
        data = urllib.parse.urlencode(form)
        extra["content-type"] = "application/x-www-form-urlencoded"
    response: ResponseContextManager
    with client.request(
        method,
        url,
        name=name,
        catch_response=True,
        json=json_body,
        data=data,
        headers=extra,
        params=params,
    ) as response:
        status = int(response.status_code or 0)
        if status in expected:
            response.success()
            try:
                return response.json() if response.text else {}
            except ValueError:
                return {}
        if status:
            code = problem_code(response)
            response.failure(f"{status} {code}".strip())
        return None


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def monotonic() -> float:
    return time.monotonic()
