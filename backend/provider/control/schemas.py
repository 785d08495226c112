from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ConfigUpdate(BaseModel):
    """Only the given knobs change; the others keep their current value."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: int | None = Field(default=None, strict=True, ge=0, le=120_000)
    failure_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    timeout_delay_s: float | None = Field(default=None, ge=0.0, le=600.0)


class ConfigRead(BaseModel):
    latency_ms: int
    failure_rate: float
    timeout_delay_s: float
