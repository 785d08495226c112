"""used client assertions (jti kept in the database as well as in Redis)

Revision ID: portal_0003
Revises: portal_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "portal_0003"
down_revision = "portal_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "used_client_assertions",
        sa.Column("terminal_id", sa.Uuid(), nullable=False),
        sa.Column("jti", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("terminal_id", "jti", name=op.f("pk_used_client_assertions")),
        schema="portal",
    )


def downgrade() -> None:
    op.drop_table("used_client_assertions", schema="portal")
