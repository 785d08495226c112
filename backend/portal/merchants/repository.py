from __future__ import annotations

from backend.core.repository import TenantRepository
from backend.portal.models import Merchant


class MerchantRepository(TenantRepository[Merchant]):
    model = Merchant
