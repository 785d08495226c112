"""The MpacPay WebView SDK: the JavaScript merchant pages use inside the terminal's WebView to
take one payment through pgw with a 5-minute payment token (docs/webview-sdk.md).

``src/`` holds the ES module and its hand-written type declarations; ``python -m
webview_sdk.build`` writes ``dist/`` (committed, served by pgw under ``/sdk/v1/``); ``demo/`` is
the merchant page pgw serves at ``/demo/webview/``.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
SRC_DIR = PACKAGE_DIR / "src"
DIST_DIR = PACKAGE_DIR / "dist"
DEMO_DIR = PACKAGE_DIR / "demo"
# The versioned path pgw serves dist/ under (`/sdk/v1/mpac-pay.mjs`, …).
SDK_PATH = "/sdk/v1"
DEMO_PATH = "/demo/webview"

__all__ = ["DEMO_DIR", "DEMO_PATH", "DIST_DIR", "PACKAGE_DIR", "SDK_PATH", "SRC_DIR"]
