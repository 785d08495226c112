"""The BDD suite's targets, fixtures and failure report.

Targets (``docs/bdd.md``): the backend in-process (default) or a running deployment
(``--mpac-url``); the terminal from ``android_bridge.pytest_plugin`` (``--terminal``,
``--adb-serial``). Scenario tags ``@backend:<capability>`` and ``@terminal:<capability>`` skip a
scenario, with the reason, on a target that lacks the capability.

A failing scenario's report (terminal, JUnit XML, cucumber JSON) carries the failed step, the
last HTTP exchanges of the drivers (credentials and card data redacted) and the logcat excerpt
of every terminal the scenario used.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_bdd.parser import Feature, Scenario, Step

from android_bridge.driver import TerminalDriver, TerminalTarget
from backend.core.settings import Settings
from backend.runtime.server import PlatformThread
from features.support import deployment as deployments
from features.support.attachments import (
    FAILED_STEP,
    JOURNAL,
    SCENE,
    attach_failure_report,
    point_skip_at_scenario,
    step_line,
)
from features.support.backoffice import Backoffice
from features.support.deployment import Deployment
from features.support.http_journal import HttpJournal
from features.support.scene import OWN_TERMINALS, Scene
from features.support.terminals import TerminalFleet
from features.support.world import Merchant
from terminal_emulator.terminal import EmulatedTerminal

NEEDS_MARKER = "needs"
NEED_KINDS = ("backend", "terminal")


# --------------------------------------------------------------------------------------------
# Options and markers


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mpac", "the MPAC backend the BDD features run against")
    group.addoption(
        "--mpac-url",
        metavar="URL",
        default=None,
        help="portal URL of a running deployment (default: the backend in-process, with "
        "embedded PostgreSQL and Redis)",
    )
    for service, offset in (("smarttab", 10), ("pgw", 20), ("provider", 30)):
        group.addoption(
            f"--mpac-{service}-url",
            metavar="URL",
            default=None,
            help=f"{service} of the deployment (default: the portal's host, port + {offset})",
        )
    group.addoption(
        "--mpac-admin-email",
        default=deployments.DEMO_PSP_ADMIN,
        help="the deployment's PSP admin the scenarios build merchants as (default: the demo "
        "PSP admin of `mpac up --demo`)",
    )
    group.addoption(
        "--mpac-admin-password",
        default=deployments.DEMO_PASSWORD,
        help="that admin's password (default: the demo password)",
    )
    group.addoption(
        "--mpac-provider-api-key",
        default="sim_sk_test_local",
        help="the simulated provider's API key (default: MPAC_PROVIDER_API_KEY's default)",
    )
    group.addoption(
        "--mpac-state-dir",
        metavar="DIR",
        default=None,
        help="the deployment's state dir (`mpac up --state-dir`): gives the operator "
        "capability (database, S2S keys) to scenarios that need it",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{NEEDS_MARKER}(kind, capability): from a scenario tag @backend:<capability> or "
        "@terminal:<capability>; skipped on a target without it",
    )


def pytest_report_header(config: pytest.Config) -> str:
    url = config.getoption("--mpac-url")
    return f"mpac backend: {url or 'in-process (embedded PostgreSQL and Redis)'}"


def pytest_bdd_apply_tag(tag: str, function: Callable[..., Any]) -> bool | None:
    """``@backend:operator`` / ``@terminal:card_presentation`` become ``needs`` markers."""
    kind, colon, capability = tag.partition(":")
    if not colon or kind not in NEED_KINDS:
        return None  # pytest-bdd's default: the tag as a marker (must be registered)
    pytest.mark.needs(kind, capability)(function)
    return True


# --------------------------------------------------------------------------------------------
# Targets


@pytest.fixture(scope="session")
def http_journal() -> HttpJournal:
    """Every driver's HTTP exchanges (redacted), for the failure report."""
    return HttpJournal()


@pytest.fixture(autouse=True)
def _fresh_http_journal(request: pytest.FixtureRequest, http_journal: HttpJournal) -> None:
    # A scenario's report shows only what that scenario did.
    http_journal.clear()
    request.node.stash[JOURNAL] = http_journal


@pytest.fixture(scope="session")
def deployment(request: pytest.FixtureRequest, http_journal: HttpJournal) -> Iterator[Deployment]:
    """The backend the session runs against: in-process, or ``--mpac-url``."""
    config = request.config
    url = config.getoption("--mpac-url")
    if url is None:
        target = deployments.in_process(request.getfixturevalue("platform_settings"), http_journal)
    else:
        state_dir = config.getoption("--mpac-state-dir")
        target = deployments.running(
            deployments.RunningOptions(
                portal_url=url,
                smarttab_url=config.getoption("--mpac-smarttab-url"),
                pgw_url=config.getoption("--mpac-pgw-url"),
                provider_url=config.getoption("--mpac-provider-url"),
                admin_email=config.getoption("--mpac-admin-email"),
                admin_password=config.getoption("--mpac-admin-password"),
                provider_api_key=config.getoption("--mpac-provider-api-key"),
                state_dir=Path(state_dir).expanduser() if state_dir else None,
            ),
            http_journal,
        )
    yield target
    target.close()


@pytest.fixture(scope="session")
def platform_settings(platform: PlatformThread, test_settings: Settings) -> Settings:
    """The in-process platform (``tests/support/platform.py``), started, and its settings."""
    return test_settings


@pytest.fixture(scope="session")
def terminal_fleet(
    deployment: Deployment, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TerminalFleet]:
    """The session's emulated terminals (one event loop); all stopped at the end."""
    fleet = TerminalFleet(deployment, tmp_path_factory.mktemp("terminals"))
    yield fleet
    fleet.close()


@pytest.fixture(scope="session")
def backoffice(deployment: Deployment) -> Backoffice:
    return Backoffice(deployment)


@pytest.fixture
def scene(
    request: pytest.FixtureRequest,
    deployment: Deployment,
    terminal_fleet: TerminalFleet,
    terminal_target: TerminalTarget,
) -> Iterator[Scene]:
    """This scenario's terminals on the ``--terminal`` target; closed when it ends."""

    def host_key() -> Path | None:
        key: Path | None = request.getfixturevalue("_terminal_session_key")
        return key

    def device_driver() -> TerminalDriver:
        driver: TerminalDriver = request.getfixturevalue("terminal_driver")
        return driver

    needs = [
        marker.args[1]
        for marker in request.node.iter_markers(NEEDS_MARKER)
        if marker.args[0] == "terminal"
    ]
    current = Scene(
        deployment=deployment,
        fleet=terminal_fleet,
        target=terminal_target,
        host_key=host_key,
        device_driver=device_driver,
        terminal_needs=needs,
    )
    if OWN_TERMINALS in needs:
        current.require_own_terminals()
    request.node.stash[SCENE] = current
    yield current
    current.close()


@pytest.fixture(autouse=True)
def _backend_needs(request: pytest.FixtureRequest) -> None:
    """``@backend:<capability>``: skip, with the reason, on a backend without it."""
    wanted = [
        marker.args[1]
        for marker in request.node.iter_markers(NEEDS_MARKER)
        if marker.args[0] == "backend"
    ]
    if wanted:
        target: Deployment = request.getfixturevalue("deployment")
        for capability in wanted:
            target.require(capability)


@pytest.fixture
def emulated_terminal_factory(
    deployment: Deployment, scene: Scene
) -> Callable[..., EmulatedTerminal]:
    """For ``android_bridge.pytest_plugin``'s ``terminal_driver``: ``factory()`` gives a
    started terminal enrolled in a store of a merchant of its own, with ADB on (stopped at
    the end of the test)."""

    def factory(name: str = "Counter") -> EmulatedTerminal:
        merchant = Merchant.create(deployment, "Terminal driver merchant")
        registration = merchant.register_terminal(merchant.open_store("Store"), name)
        return scene.start_emulated(registration, adb=True)

    return factory


# --------------------------------------------------------------------------------------------
# What the steps share by default (Given steps replace them with target_fixture)


def _not_given(what: str, step: str) -> Any:
    def fixture() -> Any:
        raise AssertionError(f"the scenario has no {what} yet: start it with '{step}'")

    fixture.__name__ = what
    return pytest.fixture(name=what)(fixture)


merchant = _not_given("merchant", 'Given the merchant "<name>" with a store "<store>"')
person = _not_given("person", 'Given "<name>" is a cashier at the store "<store>"')
terminal = _not_given("terminal", 'Given the store "<store>" has a terminal "<name>"')
registration = _not_given(
    "registration", 'Given the terminal "<name>" is registered at the store "<store>"'
)
sale = _not_given("sale", "When the cashier charges ¥<amount> on the terminal")
payment = _not_given("payment", "Given the customer paid ¥<amount> with <card> on the terminal")
refund = _not_given("refund", "When the cashier refunds ¥<amount> of the payment on the terminal")
void = _not_given("void", "When the cashier voids the payment on the terminal")
retry = _not_given(
    "retry", "When the answer is lost and the Business App sends the same request again"
)
closing = _not_given("closing", "When the cashier closes the day on the terminal")
tab = _not_given("tab", 'Given "<cashier>" opens a tab for table "<table>"')
device = _not_given(
    "device", 'Given a device enrolled as the terminal "<name>" at the store "<store>"'
)
webhook = _not_given("webhook", "When the provider sends the same webhook again")


# --------------------------------------------------------------------------------------------
# The failure report


def pytest_bdd_before_step(
    request: pytest.FixtureRequest, feature: Feature, scenario: Scenario, step: Step
) -> None:
    request.node.stash[FAILED_STEP] = None


def pytest_bdd_step_error(
    request: pytest.FixtureRequest,
    feature: Feature,
    scenario: Scenario,
    step: Step,
    exception: Exception,
) -> None:
    request.node.stash[FAILED_STEP] = step_line(feature, scenario, step, exception)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and report.when in ("setup", "call"):
        attach_failure_report(item, report)
    if report.skipped:
        point_skip_at_scenario(item, report)
    return report
