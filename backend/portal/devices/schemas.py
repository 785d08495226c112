from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class EnrollmentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    activation_code: str = Field(min_length=4, max_length=64)
    # The device's own EC P-256 public key; its private half never leaves the device.
    public_jwk: dict[str, Any]
    serial: str | None = Field(default=None, max_length=64)


class Enrollment(BaseModel):
    client_id: uuid.UUID
    terminal_id: uuid.UUID
    psp_id: uuid.UUID
    merchant_id: uuid.UUID
    store_id: uuid.UUID
    key_thumbprint: str
    issuer: str
    token_endpoint: str
    token_endpoint_auth_method: str = "private_key_jwt"
    token_endpoint_auth_signing_alg: str = "ES256"


class DeviceToken(BaseModel):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int
