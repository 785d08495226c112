from __future__ import annotations

from backend.core.authz import TenantScope
from backend.portal.models import Terminal


def terminal_scope(terminal: Terminal) -> TenantScope:
    """The tenant a terminal belongs to; also the tenant of every audit row about it."""
    return TenantScope(
        psp_id=terminal.psp_id, merchant_id=terminal.merchant_id, store_id=terminal.store_id
    )
