"""``mpac loadtest provision`` against the session platform: a fleet whose terminals work."""

from __future__ import annotations

import asyncio
import json
import stat
import uuid
from pathlib import Path

import httpx
import jwt
import pytest

from backend.cli import main
from backend.runtime.server import PlatformThread
from loadtest.fleet import DeviceIdentity, load_fleet
from loadtest.provision import ProvisionError, ProvisionPlan, provision, write_fleet
from tests.loadtest.conftest import plan_for
from tests.support.pgw import card_payment
from tests.support.portal import PASSWORD, bearer


def test_provisioned_terminals_get_tokens_and_pay(
    fleet_file: Path, platform: PlatformThread
) -> None:
    fleet = load_fleet(fleet_file)
    assert (len(fleet.merchants), len(fleet.stores), len(fleet.terminals)) == (1, 2, 4)
    assert {user.role for user in fleet.users} == {
        "merchant_admin",
        "auditor",
        "store_manager",
        "cashier",
    }
    assert stat.S_IMODE(fleet_file.stat().st_mode) == 0o600  # private keys inside
    assert {terminal.store_id for terminal in fleet.terminals} == {s.id for s in fleet.stores}

    with (
        httpx.Client(base_url=fleet.portal_url, timeout=10) as portal,
        httpx.Client(base_url=fleet.pgw_url, timeout=10) as pgw,
    ):
        for terminal in fleet.terminals:
            identity = DeviceIdentity(terminal)
            response = portal.post("/oauth2/token", data=identity.token_form())
            assert response.status_code == 200, response.text
            token = response.json()["access_token"]
            claims = jwt.decode(token, options={"verify_signature": False})
            assert claims["terminal_id"] == terminal.terminal_id
            assert claims["store_id"] == terminal.store_id
            # pgw already knows the terminal: provisioning waited for the directory sync.
            payment = pgw.post(
                "/v1/payments",
                json=card_payment(amount=500),
                headers={**bearer(token), "Idempotency-Key": uuid.uuid4().hex},
            )
            assert payment.status_code == 201, payment.text
            assert payment.json()["terminal_id"] == terminal.terminal_id

        # The users log in with the password written in the fleet.
        for user in fleet.users:
            login = portal.post(
                "/v1/auth/login", json={"email": user.email, "password": user.password}
            )
            assert login.status_code == 200, login.text


def test_a_second_run_adds_to_the_fleet(
    platform: PlatformThread, psp_admin: str, tmp_path: Path
) -> None:
    path = tmp_path / "fleet.json"
    first = asyncio.run(provision(plan_for(platform, psp_admin, terminals_per_store=1)))
    write_fleet(first, path)
    second = asyncio.run(
        provision(plan_for(platform, psp_admin, stores_per_merchant=1, terminals_per_store=1))
    )
    merged = write_fleet(second, path)
    assert merged == load_fleet(path)
    assert len(merged.terminals) == 3
    assert len(merged.stores) == 3
    assert [run["terminals"] for run in merged.runs] == [2, 1]
    assert {t.terminal_id for t in first.terminals} < {t.terminal_id for t in merged.terminals}
    assert first.runs[0]["tag"] != second.runs[0]["tag"]


def test_cli_provisions_and_refuses_a_wrong_login(
    platform: PlatformThread, psp_admin: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli-fleet.json"
    common = [
        "loadtest",
        "provision",
        "--portal-url",
        platform.portal_url,
        "--smarttab-url",
        platform.smarttab_url,
        "--pgw-url",
        platform.pgw_url,
        "--admin-email",
        psp_admin,
        "--out",
        str(out),
    ]
    sizes = ["--merchants", "1", "--stores-per-merchant", "1", "--terminals-per-store", "2"]
    assert main([*common, *sizes, "--admin-password", PASSWORD, "--no-users"]) == 0
    printed = capsys.readouterr().out
    assert "2 terminals with a device token, accepted by pgw" in printed
    assert json.loads(out.read_text())["version"] == 1
    assert len(load_fleet(out).terminals) == 2
    assert load_fleet(out).users == []

    assert main([*common, *sizes, "--admin-password", "wrong-password-123"]) == 1
    assert "cannot log in" in capsys.readouterr().err
    assert len(load_fleet(out).terminals) == 2  # the existing fleet is untouched


def test_a_fleet_of_another_platform_is_not_merged(tmp_path: Path, fleet_file: Path) -> None:
    fleet = load_fleet(fleet_file)
    elsewhere = type(fleet)(
        portal_url="http://127.0.0.1:1", smarttab_url="", pgw_url="", terminals=[]
    )
    with pytest.raises(ProvisionError, match="another --out or --replace"):
        write_fleet(elsewhere, fleet_file)
    target = tmp_path / "copy.json"
    write_fleet(fleet, target)
    assert write_fleet(elsewhere, target, replace=True).portal_url == "http://127.0.0.1:1"


def test_plan_sizes_are_checked() -> None:
    with pytest.raises(ValueError, match="terminals_per_store"):
        ProvisionPlan(merchants=1, stores_per_merchant=1, terminals_per_store=0)
    plan = ProvisionPlan(merchants=3, stores_per_merchant=4, terminals_per_store=5)
    assert (plan.store_count, plan.terminal_count) == (12, 60)
