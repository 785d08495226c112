from __future__ import annotations

from backend.core.repository import TenantRepository
from backend.portal.models import User


class UserRepository(TenantRepository[User]):
    model = User
