"""scripts/audit_dependencies.py: how pip-audit's report becomes an exit status.

pip-audit is replaced by a stand-in that prints a canned report (or fails like an unreachable
service), since the real one needs a vulnerability service this machine may not reach.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).parents[2] / "scripts" / "audit_dependencies.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("audit_dependencies", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


audit = _load()

MPAC = {"name": "mpac", "skip_reason": "distribution marked as editable"}
CLEAN_DEP = {"name": "anyio", "version": "4.16.0", "vulns": []}
VULNERABLE_DEP = {
    "name": "setuptools",
    "version": "65.5.0",
    "vulns": [
        {
            "id": "PYSEC-2022-43012",
            "fix_versions": ["65.5.1"],
            "aliases": ["CVE-2022-40897", "GHSA-r9hx-vwmv-q579"],
            "description": "ReDoS in package_index",
        }
    ],
}


def _not_found(name: str) -> dict[str, str]:
    return {
        "name": name,
        "skip_reason": f"Dependency not found on PyPI and could not be audited: {name} (1.0)",
    }


def _report(*dependencies: dict[str, Any]) -> dict[str, Any]:
    return {"dependencies": list(dependencies), "fixes": []}


def test_everything_checked_and_clean_is_0() -> None:
    verdict = audit.judge(_report(MPAC, CLEAN_DEP), {}, allow_unavailable=False)
    assert verdict.status == 0
    assert verdict.lines == ["ok: 1 dependencies checked, no known vulnerabilities."]


def test_a_known_vulnerability_is_1_and_names_the_fix() -> None:
    verdict = audit.judge(_report(CLEAN_DEP, VULNERABLE_DEP), {}, allow_unavailable=True)
    assert verdict.status == 1
    assert "setuptools 65.5.0: PYSEC-2022-43012" in "\n".join(verdict.lines)
    assert "fixed in 65.5.1" in "\n".join(verdict.lines)


def test_an_ignored_vulnerability_matches_by_any_alias_and_is_shown_with_its_reason() -> None:
    verdict = audit.judge(
        _report(VULNERABLE_DEP), {"CVE-2022-40897": "build-time only"}, allow_unavailable=False
    )
    assert verdict.status == 0
    assert verdict.lines[0] == ("ignored: setuptools 65.5.0 PYSEC-2022-43012 (build-time only)")


def test_an_ignore_entry_that_matches_nothing_is_pointed_out() -> None:
    verdict = audit.judge(_report(CLEAN_DEP), {"GHSA-old": "gone"}, allow_unavailable=False)
    assert verdict.status == 0
    assert any("GHSA-old matched nothing" in line for line in verdict.lines)


def test_nothing_checked_is_3_not_a_silent_pass() -> None:
    # What pip-audit reports behind a mirror without PyPI's per-version JSON API: exit 0 and
    # "No known vulnerabilities found", having checked nothing.
    report = _report(MPAC, _not_found("anyio"), _not_found("redis"))
    verdict = audit.judge(report, {}, allow_unavailable=False)
    assert verdict.status == 3
    assert "no dependency was checked" in verdict.lines[0]


def test_some_not_checked_is_3_too() -> None:
    verdict = audit.judge(_report(CLEAN_DEP, _not_found("redis")), {}, allow_unavailable=False)
    assert verdict.status == 3
    assert "1 dependencies were not checked" in verdict.lines[0]


def test_allow_unavailable_passes_with_a_warning() -> None:
    verdict = audit.judge(_report(_not_found("redis")), {}, allow_unavailable=True)
    assert verdict.status == 0
    assert verdict.lines[-1].startswith("WARNING")


def test_a_vulnerability_still_fails_an_incomplete_audit() -> None:
    report = _report(VULNERABLE_DEP, _not_found("redis"))
    assert audit.judge(report, {}, allow_unavailable=True).status == 1


def test_ignore_entries_need_a_reason(tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_text("# comment\n\nGHSA-aaaa  only the docs build uses it # really\n")
    assert audit.read_ignore_list(good) == {"GHSA-aaaa": "only the docs build uses it # really"}
    bad = tmp_path / "bad.txt"
    bad.write_text("GHSA-bbbb\n")
    with pytest.raises(ValueError, match="no reason"):
        audit.read_ignore_list(bad)


def test_the_shipped_ignore_list_parses() -> None:
    audit.read_ignore_list(SCRIPT.with_name("audit_ignore.txt"))


def _fake_pip_audit(tmp_path: Path, *, stdout: str, exit_code: int) -> str:
    fake = tmp_path / "pip-audit"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import os, sys\n"
        "assert os.environ['PIPAPI_PYTHON_LOCATION'] == 'target-python'\n"
        "assert '--skip-editable' in sys.argv\n"
        f"sys.stdout.write({stdout!r})\n"
        "sys.stderr.write('ConnectionError: Failed to resolve api.osv.dev\\n')\n"
        f"sys.exit({exit_code})\n"
    )
    fake.chmod(0o755)
    return str(fake)


@pytest.mark.parametrize(
    ("stdout", "exit_code", "expected"),
    [
        (json.dumps(_report(MPAC, CLEAN_DEP)), 0, 0),
        (json.dumps(_report(VULNERABLE_DEP)), 1, 1),
        (json.dumps(_report(MPAC, _not_found("anyio"))), 0, 3),
        ("", 1, 3),  # pip-audit crashed: the service is unreachable
    ],
    ids=["clean", "vulnerable", "nothing-checked", "service-unreachable"],
)
def test_main_runs_pip_audit_on_the_target_and_exits_with_the_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], stdout: str, exit_code: int, expected: int
) -> None:
    fake = _fake_pip_audit(tmp_path, stdout=stdout, exit_code=exit_code)
    ignore = tmp_path / "ignore.txt"
    ignore.write_text("")

    status = audit.main(
        ["--pip-audit", fake, "--python", "target-python", "--ignore-file", str(ignore)]
    )

    assert status == expected
    out = capsys.readouterr().out
    if expected == 3:
        assert "NOT AUDITED" in out
