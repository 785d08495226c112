from backend.core.migrations import run_env
from backend.provider.models import ProviderBase

run_env(ProviderBase.metadata)
