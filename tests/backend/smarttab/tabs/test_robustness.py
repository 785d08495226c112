"""Whatever is sent, a tab route answers problem+json 4xx, never a 500, and writes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.smarttab import Tabs, card, item

JUNK_BODIES: list[Any] = [
    None,
    [],
    "text",
    0,
    {"a": 1},
    {"mode": None},
    {"name": "\u0000", "unit_price": 1},
    {"name": "x", "unit_price": 10**30},
    {"name": "x", "unit_price": 1, "quantity": 10**30},
    {"amounts": [{"nested": [[[[]]]]}], "mode": "amounts"},
    {"mode": "items", "parts": [["not-a-uuid"]]},
    {"mode": "equal", "count": True},
    {"discount": {"kind": "percentage", "percent": "NaN"}},
    {"discount": {"kind": "percentage", "percent": 1e308}},
    {"tip_amount": 10**13},
    {"method": "card_present", "entry_mode": "chip", "card": {"pan": "4" * 40}},
    {"part_number": 0},
    {"part_number": 10**9, "amount": -5},
]

PATHS = [
    ("PATCH", ""),
    ("POST", "/items"),
    ("PATCH", "/items/{item}"),
    ("POST", "/splits"),
    ("POST", "/parts/1/pay"),
    ("POST", "/refunds"),
    ("POST", "/cancel"),
    ("POST", "/refresh"),
]


@pytest.mark.parametrize(("method", "path"), PATHS)
def test_junk_bodies_are_4xx_problems(tabs: Tabs, method: str, path: str) -> None:
    tab = tabs.split_ok(tabs.tab_with(item("Coffee", 500)), mode="full")
    url = f"/v1/tabs/{tab['id']}" + path.replace("{item}", tab["items"][0]["id"])
    for body in JUNK_BODIES:
        if body is None and path in ("/cancel", "/refresh"):
            continue  # their body is optional
        response = tabs.change(method, url, tab, json=body)
        assert 400 <= response.status_code < 500, (body, response.text)
        assert response.headers["content-type"] == "application/problem+json", body
        assert "4444444444" not in response.text
    assert tabs.get(tab["id"])["version"] == tab["version"]


@pytest.mark.parametrize("number", ["0", "-1", "51", "x", "1.5", "99999999999999999999"])
def test_bad_part_numbers_are_422(tabs: Tabs, number: str) -> None:
    tab = tabs.split_ok(tabs.tab_with(item()), mode="full")
    response = tabs.change("POST", f"/v1/tabs/{tab['id']}/parts/{number}/pay", tab, json=card())
    assert response.status_code == 422
    assert response.json()["code"] == "validation_failed"


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "201"},
        {"status": "closed"},
        {"after": "x"},
        {"created_from": "yesterday"},
        {"store_id": "1"},
    ],
)
def test_bad_list_queries_are_422(tabs: Tabs, params: dict[str, str]) -> None:
    response = tabs.list(**params)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_failed"
