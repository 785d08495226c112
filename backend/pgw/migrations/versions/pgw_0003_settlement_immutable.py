"""settlement batches are immutable; a batched payment or refund stays in its batch

Revision ID: pgw_0003
Revises: pgw_0002
"""

from alembic import op

revision = "pgw_0003"
down_revision = "pgw_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A closed batch is a financial record: the database itself refuses to change or remove it.
    op.execute(
        """
        CREATE FUNCTION pgw.settlement_batches_immutable() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'pgw.settlement_batches is immutable (% refused)', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END $$;
        """
    )
    op.execute(
        "CREATE TRIGGER settlement_batches_immutable BEFORE UPDATE OR DELETE OR TRUNCATE"
        " ON pgw.settlement_batches FOR EACH STATEMENT"
        " EXECUTE FUNCTION pgw.settlement_batches_immutable()"
    )
    # Once in a batch, a payment or refund neither leaves it nor changes the amounts it added.
    op.execute(
        """
        CREATE FUNCTION pgw.settled_row_frozen() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '% of a % row in settlement batch % refused',
                TG_OP, TG_TABLE_NAME, OLD.settlement_batch_id
                USING ERRCODE = 'insufficient_privilege';
        END $$;
        """
    )
    op.execute(
        "CREATE TRIGGER payments_settled_frozen BEFORE UPDATE ON pgw.payments FOR EACH ROW"
        " WHEN (OLD.settlement_batch_id IS NOT NULL AND ("
        " NEW.settlement_batch_id IS DISTINCT FROM OLD.settlement_batch_id"
        " OR NEW.amount_captured <> OLD.amount_captured"
        " OR NEW.tip_amount <> OLD.tip_amount"
        " OR NEW.currency <> OLD.currency))"
        " EXECUTE FUNCTION pgw.settled_row_frozen()"
    )
    op.execute(
        "CREATE TRIGGER payments_settled_undeletable BEFORE DELETE ON pgw.payments FOR EACH ROW"
        " WHEN (OLD.settlement_batch_id IS NOT NULL)"
        " EXECUTE FUNCTION pgw.settled_row_frozen()"
    )
    op.execute(
        "CREATE TRIGGER refunds_settled_frozen BEFORE UPDATE ON pgw.refunds FOR EACH ROW"
        " WHEN (OLD.settlement_batch_id IS NOT NULL AND ("
        " NEW.settlement_batch_id IS DISTINCT FROM OLD.settlement_batch_id"
        " OR NEW.amount <> OLD.amount"
        " OR NEW.currency <> OLD.currency"
        " OR NEW.status <> OLD.status))"
        " EXECUTE FUNCTION pgw.settled_row_frozen()"
    )
    op.execute(
        "CREATE TRIGGER refunds_settled_undeletable BEFORE DELETE ON pgw.refunds FOR EACH ROW"
        " WHEN (OLD.settlement_batch_id IS NOT NULL)"
        " EXECUTE FUNCTION pgw.settled_row_frozen()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER refunds_settled_undeletable ON pgw.refunds")
    op.execute("DROP TRIGGER refunds_settled_frozen ON pgw.refunds")
    op.execute("DROP TRIGGER payments_settled_undeletable ON pgw.payments")
    op.execute("DROP TRIGGER payments_settled_frozen ON pgw.payments")
    op.execute("DROP FUNCTION pgw.settled_row_frozen()")
    op.execute("DROP TRIGGER settlement_batches_immutable ON pgw.settlement_batches")
    op.execute("DROP FUNCTION pgw.settlement_batches_immutable()")
