"""The Business App (``jp.mpac.business``): the cashier's POS. Amount entry, smarttab tabs
(kept live through the real-time stream), results and receipts, refunds and end of day; every
money movement is an Intent to the Credit Card App (``docs/intent-contract.md``)."""

from __future__ import annotations

from terminal_emulator.android import (
    ACTION_MAIN,
    CATEGORY_LAUNCHER,
    ActivityDeclaration,
    IntentFilter,
    PackageManifest,
)
from terminal_emulator.apps.business.app import BusinessApplication
from terminal_emulator.apps.business.main import MainActivity
from terminal_emulator.apps.business.webview import WEBVIEW_ACTIVITY, WebViewActivity
from terminal_emulator.apps.common import TerminalServices
from terminal_emulator.contract import BUSINESS_PACKAGE

__all__ = ["WEBVIEW_ACTIVITY", "BusinessApplication", "MainActivity", "WebViewActivity", "manifest"]


def manifest(services: TerminalServices) -> PackageManifest:
    return PackageManifest(
        package=BUSINESS_PACKAGE,
        label="Business",
        system=True,
        activities=(
            ActivityDeclaration(
                ".MainActivity",
                lambda: MainActivity(services),
                intent_filters=(
                    IntentFilter.create([ACTION_MAIN], categories=[CATEGORY_LAUNCHER]),
                ),
                label="POS",
            ),
            # A merchant's page: am start -n jp.mpac.business/.WebViewActivity -d <url>
            ActivityDeclaration(
                ".WebViewActivity",
                lambda: WebViewActivity(services),
                exported=True,
                label="Web page",
            ),
        ),
        application=lambda: BusinessApplication(services),
    )
