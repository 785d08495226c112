from backend.core.migrations import run_env
from backend.smarttab.models import SmartTabBase

run_env(SmartTabBase.metadata)
