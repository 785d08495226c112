"""A settlement batch as CSV: the batch, one line per payment and refund, then its totals.

Three blocks separated by an empty line, each with its own header row. Card data is brand and
last four digits only (pgw never holds more). Text cells that a spreadsheet would run as a
formula (starting with ``=``, ``+``, ``-``, ``@``, tab or CR) are prefixed with ``'``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from backend.pgw.models import Payment, Refund, SettlementBatch
from backend.pgw.settlement.service import BREAKDOWNS

BATCH_HEADER = (
    "batch_id",
    "scope",
    "psp_id",
    "merchant_id",
    "store_id",
    "terminal_id",
    "period_start",
    "period_end",
    "closed_at",
    "closed_by",
    "payment_count",
    "refund_count",
)
LINE_HEADER = (
    "record_type",
    "id",
    "payment_id",
    "occurred_at",
    "terminal_id",
    "method",
    "entry_mode",
    "card_brand",
    "card_last4",
    "currency",
    "amount",
    "tip_amount",
    "amount_captured",
    "refund_amount",
    "net",
    "status",
    "reference",
)
TOTALS_HEADER = (
    "section",
    "currency",
    "key",
    "count",
    "amount",
    "refund_count",
    "refund_amount",
    "net",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _row(values: Iterable[Any]) -> list[Any]:
    return [_cell(value) for value in values]


def batch_csv(
    batch: SettlementBatch,
    payments: Sequence[Payment],
    refunds: Sequence[tuple[Refund, Payment | None]],
) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(BATCH_HEADER)
    writer.writerow(
        _row(
            (
                batch.id,
                batch.scope,
                batch.psp_id,
                batch.merchant_id,
                batch.store_id,
                batch.terminal_id,
                batch.period_start,
                batch.period_end,
                batch.closed_at,
                batch.closed_by,
                batch.payment_count,
                batch.refund_count,
            )
        )
    )
    writer.writerow([])
    writer.writerow(LINE_HEADER)
    for payment in payments:
        writer.writerow(
            _row(
                (
                    "payment",
                    payment.id,
                    payment.id,
                    payment.captured_at or payment.created_at,
                    payment.terminal_id,
                    payment.method,
                    payment.entry_mode,
                    payment.card_brand,
                    payment.card_last4,
                    payment.currency,
                    payment.amount,
                    payment.tip_amount,
                    payment.amount_captured,
                    None,
                    payment.amount_captured,
                    payment.status,
                    payment.reference,
                )
            )
        )
    for refund, paid in refunds:
        writer.writerow(
            _row(
                (
                    "refund",
                    refund.id,
                    refund.payment_id,
                    refund.created_at,
                    refund.terminal_id,
                    paid.method if paid else None,
                    paid.entry_mode if paid else None,
                    paid.card_brand if paid else None,
                    paid.card_last4 if paid else None,
                    refund.currency,
                    None,
                    None,
                    None,
                    refund.amount,
                    -refund.amount,
                    refund.status,
                    paid.reference if paid else None,
                )
            )
        )
    writer.writerow([])
    writer.writerow(TOTALS_HEADER)
    for currency, line in batch.totals.items():
        writer.writerow(
            _row(
                (
                    "total",
                    currency,
                    "",
                    line["payment_count"],
                    line["gross"],
                    line["refund_count"],
                    line["refunds"],
                    line["net"],
                )
            )
        )
        writer.writerow(_row(("tips", currency, "", "", line["tips"], "", "", "")))
        for name in BREAKDOWNS:
            for key, entry in line[name].items():
                writer.writerow(
                    _row(
                        (
                            name,
                            currency,
                            key,
                            entry["count"],
                            entry["amount"],
                            entry["refund_count"],
                            entry["refund_amount"],
                            entry["net"],
                        )
                    )
                )
    return out.getvalue()
