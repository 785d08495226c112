"""Response shapes shared by every service."""

from __future__ import annotations

import uuid
from typing import Generic, TypeVar

from pydantic import BaseModel

ItemT = TypeVar("ItemT")


class Page(BaseModel, Generic[ItemT]):
    items: list[ItemT]
    # Pass as ``after`` to get the next page; null on the last page.
    next_cursor: uuid.UUID | None
