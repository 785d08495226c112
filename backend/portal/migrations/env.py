from backend.core.migrations import run_env
from backend.portal.models import PortalBase

run_env(PortalBase.metadata)
