"""Field types shared by the provider's domains."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

# Integer minor units only: strict, so 10.0 or "10" is refused rather than coerced.
Amount = Annotated[int, Field(strict=True, gt=0, le=10**12)]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")]
# The caller's idempotency key (pgw's payment or refund id); safe in a URL path segment.
Reference = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
ExternalId = Annotated[str, Field(min_length=1, max_length=128)]
