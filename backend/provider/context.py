"""What every provider request can reach: settings, the runtime knobs, and the API-key check."""

from __future__ import annotations

import asyncio
import hmac
import secrets
from dataclasses import asdict, dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from backend.core.errors import ServiceUnavailable, Unauthorized
from backend.core.settings import Settings


def parse_secrets(value: str) -> tuple[str, ...]:
    parsed = tuple(part.strip() for part in value.split(",") if part.strip())
    if not parsed:
        raise ValueError("provider_webhook_secrets names no secret")
    return parsed


def parse_retry_schedule(value: str) -> tuple[float, ...]:
    """``"1,5,30"`` -> (1.0, 5.0, 30.0): the waits before the 2nd, 3rd, 4th attempt."""
    try:
        schedule = tuple(float(part) for part in value.split(",") if part.strip())
    except ValueError as exc:
        raise ValueError(
            f"provider_webhook_retry_schedule_s {value!r} is not a list of seconds"
        ) from exc
    if any(delay < 0 for delay in schedule):
        raise ValueError("provider_webhook_retry_schedule_s has a negative delay")
    return schedule


@dataclass
class RuntimeConfig:
    """The knobs tests may turn while the provider runs (``POST /v1/_control/config``).

    Kept in the process: each provider process answers for itself.
    """

    latency_ms: int
    failure_rate: float
    timeout_delay_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> RuntimeConfig:
        return cls(
            latency_ms=settings.provider_latency_ms,
            failure_rate=settings.provider_failure_rate,
            timeout_delay_s=settings.provider_timeout_delay_s,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ProviderContext:
    settings: Settings
    config: RuntimeConfig
    webhook_secrets: tuple[str, ...]
    retry_schedule_s: tuple[float, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> ProviderContext:
        return cls(
            settings=settings,
            config=RuntimeConfig.from_settings(settings),
            webhook_secrets=parse_secrets(settings.provider_webhook_secrets),
            retry_schedule_s=parse_retry_schedule(settings.provider_webhook_retry_schedule_s),
        )

    @property
    def webhook_url(self) -> str:
        return self.settings.resolved_provider_webhook_url


def get_provider(request: Request) -> ProviderContext:
    provider: ProviderContext = request.app.state.provider
    return provider


ProviderDep = Annotated[ProviderContext, Depends(get_provider)]


async def require_api_key(request: Request, provider: ProviderDep) -> None:
    """Every ``/v1`` route: ``Authorization: Bearer <provider_api_key>``."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized(
            "Send the API key as 'Authorization: Bearer <key>'.",
            code="missing_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    expected = provider.settings.provider_api_key.encode()
    if not hmac.compare_digest(key.strip().encode(), expected):
        raise Unauthorized("The API key is not valid.", code="invalid_api_key")


_RATE_RESOLUTION = 1_000_000


async def simulated_conditions(provider: ProviderDep) -> None:
    """Network latency and outages, applied before a request touches anything."""
    config = provider.config
    if config.latency_ms > 0:
        await asyncio.sleep(config.latency_ms / 1000)
    if config.failure_rate > 0 and secrets.randbelow(_RATE_RESOLUTION) < round(
        config.failure_rate * _RATE_RESOLUTION
    ):
        raise ServiceUnavailable(
            "The provider is temporarily unavailable; nothing was processed. Retry later.",
            code="provider_unavailable",
            headers={"Retry-After": "1"},
        )


API_KEY = [Depends(require_api_key)]
SIMULATED = [Depends(require_api_key), Depends(simulated_conditions)]
