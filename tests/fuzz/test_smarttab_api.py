"""Fuzzing svc-smarttab's API with a cashier's token, a device token and as smarttab itself.

Each run opens real tabs with items (in a store pgw knows, so paying a part reaches pgw), which
give the fuzzer ids that exist; a change to one is sent with ``If-Match`` of the tab's current
version, so it gets past the version check to the change itself. Cancelling has a tab of its own
(a cancelled tab refuses every other change).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis

from backend.core.authz import Role
from backend.core.settings import Settings
from backend.runtime.server import PlatformThread
from tests.fuzz.runner import Credential, HmacRequestsAuth, Target, refreshing, run_fuzz
from tests.support.pgw import PayingTerminal, paying_terminal
from tests.support.portal import bearer, login
from tests.support.smarttab import Tabs, item

USER_TOKEN_MAX_AGE_S = 600.0  # of 15 minutes
DEVICE_TOKEN_MAX_AGE_S = 60.0  # of 90 seconds
CREDENTIALS = ["cashier", "device", "service:smarttab"]


@pytest.fixture(scope="module")
def paying(platform: PlatformThread, test_settings: Settings) -> PayingTerminal:
    with httpx.Client(base_url=platform.portal_url, timeout=10) as portal:
        return paying_terminal(test_settings, portal)


@dataclass
class RunTabs:
    ids: dict[str, list[Any]]
    cancel_ids: dict[str, list[Any]]

    @property
    def tab_ids(self) -> set[str]:
        return {*self.ids["tab_id"], *self.cancel_ids["tab_id"]}


def _open_tabs(smarttab: httpx.Client, headers: dict[str, str]) -> RunTabs:
    tabs = Tabs(smarttab, headers)
    tab = tabs.tab_with(item("Ramen", 900), item("Gyoza", 450, quantity=2), label="fuzz")
    to_cancel = tabs.tab_with(item("Tea", 300), label="fuzz-cancel")
    ids = {
        "tab_id": [tab["id"]],
        "item_id": [line["id"] for line in tab["items"]],
        "number": [1, 2],
    }
    return RunTabs(ids, {"tab_id": [to_cancel["id"]]})


def _current_version(smarttab: httpx.Client, headers: dict[str, str], tab_id: str) -> Any:
    response = smarttab.get(f"/v1/tabs/{tab_id}", headers=headers)
    return response.json()["version"] if response.status_code == 200 else None


@pytest.mark.parametrize("credential", CREDENTIALS)
def test_smarttab_api(
    platform: PlatformThread, test_settings: Settings, paying: PayingTerminal, credential: str
) -> None:
    with (
        httpx.Client(base_url=platform.portal_url, timeout=10) as portal,
        httpx.Client(base_url=platform.smarttab_url, timeout=10) as smarttab,
    ):
        _fuzz_smarttab(platform, test_settings, paying, credential, portal, smarttab)


def _fuzz_smarttab(
    platform: PlatformThread,
    test_settings: Settings,
    paying: PayingTerminal,
    credential: str,
    portal: httpx.Client,
    smarttab: httpx.Client,
) -> None:
    tabs = _open_tabs(smarttab, bearer(paying.terminal.fresh_token(portal)))
    if credential == "device":
        issue = lambda: paying.terminal.fresh_token(portal)  # noqa: E731
        headers = refreshing(issue, max_age_s=DEVICE_TOKEN_MAX_AGE_S)
        auth = None
    elif credential == "service:smarttab":
        headers, auth = dict, HmacRequestsAuth(test_settings, "smarttab")
    else:
        email = paying.tenant.user(Role(credential)).email
        headers = refreshing(
            lambda: str(login(portal, email)["access_token"]), max_age_s=USER_TOKEN_MAX_AGE_S
        )
        auth = None

    def if_match_current(case: schemathesis.Case, sent: dict[str, str]) -> None:
        tab_id = (case.path_parameters or {}).get("tab_id")
        if case.method.upper() == "GET" or tab_id not in tabs.tab_ids or not sent:
            return
        version = _current_version(smarttab, sent, tab_id)
        if version is not None:
            case.headers = {**(case.headers or {}), "if-match": f'"{version}"'}

    run_fuzz(
        Target(
            "smarttab",
            platform.smarttab_url,
            Credential(credential, headers, auth=auth),
            read_ids=tabs.ids,
            write_ids=tabs.ids,
            operation_ids={"POST /v1/tabs/{tab_id}/cancel": tabs.cancel_ids},
            prepare=if_match_current,
        )
    )
