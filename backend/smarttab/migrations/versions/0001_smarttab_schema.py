"""Create the smarttab schema (tables arrive with the smarttab issue).

Revision ID: smarttab_0001
Revises:
"""

revision = "smarttab_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    # run_env creates the schema itself, before the version table is written into it.
    pass


def downgrade() -> None:
    pass
