"""Dev/test control of the simulated network conditions (per provider process)."""

from __future__ import annotations

from fastapi import APIRouter

from backend.provider.context import API_KEY, ProviderDep, RuntimeConfig
from backend.provider.control.schemas import ConfigRead, ConfigUpdate

router = APIRouter(prefix="/v1/_control/config", tags=["control"], dependencies=API_KEY)


@router.get("", summary="Current latency, failure rate and timeout-card delay")
async def get_config(provider: ProviderDep) -> ConfigRead:
    return ConfigRead(**provider.config.as_dict())


@router.post("", summary="Change latency, failure rate or timeout-card delay at runtime")
async def update_config(body: ConfigUpdate, provider: ProviderDep) -> ConfigRead:
    for field, value in body.model_dump(exclude_none=True).items():
        setattr(provider.config, field, value)
    return ConfigRead(**provider.config.as_dict())


@router.delete("", summary="Back to the values from the settings")
async def reset_config(provider: ProviderDep) -> ConfigRead:
    provider.config = RuntimeConfig.from_settings(provider.settings)
    return ConfigRead(**provider.config.as_dict())
