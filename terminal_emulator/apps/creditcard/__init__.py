"""The Credit Card App (``jp.mpac.creditcard``): takes the Intent contract's actions
(``docs/intent-contract.md``), reads cards through the card reader and talks to pgw (and to
smarttab for tab payments) with the terminal's device token."""

from __future__ import annotations

from terminal_emulator.android import (
    CATEGORY_DEFAULT,
    ActivityDeclaration,
    IntentFilter,
    PackageManifest,
    ReceiverDeclaration,
)
from terminal_emulator.apps.common import TerminalServices
from terminal_emulator.apps.creditcard.app import CreditCardApplication, Operation, Stage
from terminal_emulator.apps.creditcard.components import (
    ACTION_SHOW,
    ResultReceiver,
    TransactionActivity,
)
from terminal_emulator.contract import CREDIT_CARD_PACKAGE, Action

CONTRACT_ACTIONS = tuple(action.value for action in Action)

__all__ = [
    "ACTION_SHOW",
    "CreditCardApplication",
    "Operation",
    "ResultReceiver",
    "Stage",
    "TransactionActivity",
    "manifest",
]


def manifest(services: TerminalServices) -> PackageManifest:
    return PackageManifest(
        package=CREDIT_CARD_PACKAGE,
        label="Credit Card",
        system=True,
        activities=(
            ActivityDeclaration(
                ".TransactionActivity",
                lambda: TransactionActivity(services),
                intent_filters=(
                    IntentFilter.create(CONTRACT_ACTIONS, categories=[CATEGORY_DEFAULT]),
                ),
                exported=True,
                label="Payment",
            ),
        ),
        receivers=(
            ReceiverDeclaration(
                ".ResultReceiver",
                ResultReceiver,
                intent_filters=(IntentFilter.create(CONTRACT_ACTIONS),),
                exported=True,
            ),
        ),
        application=lambda: CreditCardApplication(services),
    )
