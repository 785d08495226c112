"""Fixtures of the WebView SDK's browser tests: one headless Chromium per session (Debian's
``/usr/bin/chromium`` driven by Playwright), a new context per test, a terminal that issues
payment tokens, and each test's final page kept as a screenshot.

Screenshots go to the test's tmp dir; with ``MPAC_ARTIFACTS_DIR`` set they are also copied to
``$MPAC_ARTIFACTS_DIR/screenshots/<test>.png`` (``.ci/run`` uses ``reports/``, git-ignored), the
path is printed and attached to the test's report as the ``screenshot`` property.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from backend.core.settings import Settings
from backend.runtime.server import PlatformThread
from tests.support.portal import Tenant, build_tenant
from tests.webview_sdk.support import CHROMIUM, ConsoleLog, DemoPage, Shop, new_shop

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

# A SmartPOS WebView in portrait, in CSS pixels.
VIEWPORT_WIDTH, VIEWPORT_HEIGHT = 412, 860


@pytest.fixture(scope="session")
def settings(platform: PlatformThread) -> Settings:
    return platform.settings


@pytest.fixture(scope="session")
def pgw_url(settings: Settings) -> str:
    return settings.url_of("pgw")


@pytest.fixture(scope="session")
def portal(settings: Settings) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=settings.url_of("portal"), timeout=20.0) as client:
        yield client


@pytest.fixture(scope="session")
def pgw(pgw_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=pgw_url, timeout=20.0) as client:
        yield client


@pytest.fixture(scope="session")
def tenant(settings: Settings, portal: httpx.Client) -> Tenant:
    return build_tenant(settings, portal)


@pytest.fixture
def shop(settings: Settings, portal: httpx.Client, pgw: httpx.Client, tenant: Tenant) -> Shop:
    """A terminal of its own per test, so its payments at pgw are this test's payments."""
    return new_shop(settings, portal, pgw, tenant)


@pytest.fixture(scope="package")
def browser(platform: PlatformThread, tenant: Tenant) -> Iterator[Browser]:
    """Chromium for this package's tests, started after the platform and the tenant: while
    Playwright's sync API runs it keeps an asyncio loop running on this thread, so nothing on
    it may call ``asyncio.run`` (database work goes to a thread: ``support.expire_token``), and
    the browser stops with the package, before other tests need the thread again."""
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the playwright package is not installed"
    )
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    created = browser.new_context(
        viewport={"width": VIEWPORT_WIDTH, "height": VIEWPORT_HEIGHT}, locale="en-US"
    )
    created.set_default_timeout(15_000)
    try:
        yield created
    finally:
        created.close()


def _artifact_name(node_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", node_name).strip("_")[:120]


@pytest.fixture
def console() -> ConsoleLog:
    return ConsoleLog()


@pytest.fixture
def page(
    context: BrowserContext, console: ConsoleLog, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Page]:
    """A page of its own; at the end its screenshot is kept and nothing secret was logged."""
    opened = context.new_page()
    console.attach(opened)
    yield opened
    shot = tmp_path / "final.png"
    try:
        opened.screenshot(path=str(shot), full_page=True)
    except Exception as error:  # the test's own failure matters more than its picture
        print(f"screenshot failed: {error}")
        return
    request.node.user_properties.append(("screenshot", str(shot)))
    artifacts = os.environ.get("MPAC_ARTIFACTS_DIR")
    if artifacts:
        target = Path(artifacts) / "screenshots" / f"{_artifact_name(request.node.name)}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)
        request.node.user_properties.append(("screenshot_artifact", str(target)))
        shot = target
    print(f"screenshot: {shot}")
    console.assert_no_secrets()


@pytest.fixture
def demo(page: Page, pgw_url: str, console: ConsoleLog) -> DemoPage:
    return DemoPage(page, pgw_url, console)
