"""Optimistic concurrency: ETag = version, If-Match required, stale writes refused, races."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from tests.support.pgw import PayingTerminal
from tests.support.smarttab import NO_IF_MATCH, Tabs, card, etag_version, item


def test_every_answer_carries_the_version_as_etag(tabs: Tabs) -> None:
    tab = tabs.open_ok()
    response = tabs.read(tab["id"])
    assert response.headers["etag"] == '"1"'
    changed = tabs.add_item(tab)
    assert etag_version(changed) == changed.json()["version"] == 2
    assert tabs.read(tab["id"]).headers["etag"] == '"2"'


@pytest.mark.parametrize(
    ("action", "args"),
    [
        ("update", {"label": "x"}),
        ("add_item", item()),
        ("split", {"mode": "full"}),
        ("cancel", {}),
        ("refresh", None),
        ("refund", {}),
    ],
)
def test_a_change_without_if_match_is_428(tabs: Tabs, action: str, args: Any) -> None:
    tab = tabs.tab_with(item())
    if action == "refresh":
        response = tabs.change("POST", f"/v1/tabs/{tab['id']}/refresh", version=NO_IF_MATCH)
    else:
        path = {
            "update": "",
            "add_item": "/items",
            "split": "/splits",
            "cancel": "/cancel",
            "refund": "/refunds",
        }[action]
        method = "PATCH" if action == "update" else "POST"
        response = tabs.change(
            method, f"/v1/tabs/{tab['id']}{path}", json=args, version=NO_IF_MATCH
        )
    assert response.status_code == 428, response.text
    assert response.json()["code"] == "precondition_required"
    assert tabs.get(tab["id"])["version"] == tab["version"]


def test_other_item_and_payment_routes_need_if_match_too(tabs: Tabs) -> None:
    tab = tabs.tab_with(item())
    line = tab["items"][0]["id"]
    for method, path, body in (
        ("PATCH", f"/items/{line}", {"quantity": 2}),
        ("DELETE", f"/items/{line}", None),
        ("POST", "/parts/1/pay", card()),
    ):
        response = tabs.change(
            method, f"/v1/tabs/{tab['id']}{path}", json=body, version=NO_IF_MATCH
        )
        assert response.status_code == 428, (method, path)


@pytest.mark.parametrize("value", ["*", ""])
def test_a_wildcard_or_empty_if_match_is_428(tabs: Tabs, value: str) -> None:
    tab = tabs.open_ok()
    response = tabs.update(tab | {"version": value}, label="x")
    assert response.status_code == 428


@pytest.mark.parametrize("value", ['W/"1"', '"one"', '"1', "1.0", '"-1"', '"1", "2"'])
def test_a_malformed_if_match_is_400(tabs: Tabs, value: str) -> None:
    tab = tabs.open_ok()
    response = tabs.update(tab | {"version": value}, label="x")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_if_match"


def test_a_bare_version_number_is_accepted(tabs: Tabs) -> None:
    tab = tabs.open_ok()
    assert tabs.update(tab | {"version": "1"}, label="x").status_code == 200


def test_a_stale_version_is_refused_with_the_current_one(tabs: Tabs) -> None:
    first_view = tabs.tab_with(item("Coffee", 500))
    second_view = dict(first_view)
    tabs.add_item_ok(first_view, name="Cake", unit_price=700)

    response = tabs.update_item(second_view, second_view["items"][0]["id"], quantity=5)

    assert response.status_code == 412
    body = response.json()
    assert body["code"] == "version_conflict"
    assert body["current_version"] == first_view["version"] + 1
    assert response.headers["etag"] == f'"{first_view["version"] + 1}"'
    tab = tabs.get(first_view["id"])
    assert [line["quantity"] for line in tab["items"]] == [1, 1]  # the stale change is lost


def test_two_terminals_racing_on_one_version_exactly_one_wins(
    tabs: Tabs, smarttab_client: httpx.Client, terminal: PayingTerminal
) -> None:
    tab = tabs.tab_with(item("Coffee", 500))
    contenders = 8
    barrier = threading.Barrier(contenders)
    results: list[httpx.Response] = []
    lock = threading.Lock()

    def add(n: int) -> None:
        with httpx.Client(base_url=str(smarttab_client.base_url), timeout=30) as client:
            racer = Tabs(client, terminal.headers)
            barrier.wait()
            response = racer.add_item(tab, name=f"Racer {n}", unit_price=100 + n)
            with lock:
                results.append(response)

    threads = [threading.Thread(target=add, args=(n,)) for n in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    statuses = sorted(response.status_code for response in results)
    assert statuses == [201] + [412] * (contenders - 1), [r.text for r in results]
    final = tabs.get(tab["id"])
    assert final["version"] == tab["version"] + 1
    assert len(final["items"]) == 2
    winner = next(response for response in results if response.status_code == 201)
    assert final["items"][1]["name"] == winner.json()["items"][1]["name"]
    for loser in (response for response in results if response.status_code == 412):
        assert loser.json()["current_version"] in (tab["version"], tab["version"] + 1)


def test_racing_payments_of_one_part_charge_once(
    tabs: Tabs, smarttab_client: httpx.Client, terminal: PayingTerminal, test_settings: Any
) -> None:
    from tests.support.smarttab import pgw_payments_of

    tab = tabs.split_ok(tabs.tab_with(item("Set menu", 3000)), mode="full")
    barrier = threading.Barrier(4)
    results: list[httpx.Response] = []

    def pay() -> None:
        with httpx.Client(base_url=str(smarttab_client.base_url), timeout=30) as client:
            barrier.wait()
            results.append(Tabs(client, terminal.headers).pay(tab, 1, card()))

    threads = [threading.Thread(target=pay) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(response.status_code for response in results) == [200, 412, 412, 412]
    payments = pgw_payments_of(test_settings, tab)
    assert [payment["status"] for payment in payments] == ["captured"]
    assert tabs.get(tab["id"])["status"] == "paid"
