from backend.core.migrations import run_env
from backend.pgw.models import PgwBase

run_env(PgwBase.metadata)
