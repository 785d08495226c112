"""What a failed scenario's report carries, so QA sees plainly what broke: the failed step, the
last HTTP exchanges of the drivers (redacted) and each terminal's logcat excerpt.

They are added as sections of the failure itself (``report.longrepr``), the one place every
report reads: the terminal output, JUnit XML (``<failure>``), cucumber JSON (the failed step's
``error_message``) and HTML reports built from either.
"""

from __future__ import annotations

import pytest
from pytest_bdd.parser import Feature, Scenario, Step
from pytest_bdd.scenario import scenario_wrapper_template_registry

from features.support.http_journal import HttpJournal
from features.support.scene import Scene

FAILED_STEP = pytest.StashKey[str | None]()
SCENE = pytest.StashKey[Scene]()
JOURNAL = pytest.StashKey[HttpJournal]()

HTTP_EXCHANGES_IN_FULL = 2


def step_line(feature: Feature, scenario: Scenario, step: Step, exception: BaseException) -> str:
    """``features/x.feature:12  When the customer taps …`` and why it failed, one block."""
    where = f"{feature.rel_filename}:{step.line_number}"
    reason = str(exception).strip().splitlines()
    first = reason[0] if reason else type(exception).__name__
    return (
        f"Scenario: {scenario.name}\n"
        f"Failed step: {step.keyword} {step.name}\n"
        f"  at {where}\n"
        f"  because: {first}"
    )


def sections(item: pytest.Item) -> list[tuple[str, str]]:
    """(title, text) of everything the report should carry for ``item``'s failure."""
    found: list[tuple[str, str]] = []
    failed_step = item.stash.get(FAILED_STEP, None)
    if failed_step:
        found.append(("failed step", failed_step))
    journal = item.stash.get(JOURNAL, None)
    if journal is not None:
        exchanges = journal.report(full=HTTP_EXCHANGES_IN_FULL)
        if exchanges:
            found.append(("last HTTP exchanges (redacted)", exchanges))
    scene = item.stash.get(SCENE, None)
    if scene is not None:
        for name, excerpt in scene.logcat_excerpts().items():
            found.append((f'logcat of terminal "{name}"', excerpt or "(empty)"))
    return found


def attach_failure_report(item: pytest.Item, report: pytest.TestReport) -> None:
    for title, text in sections(item):
        add_section = getattr(report.longrepr, "addsection", None)
        if callable(add_section):
            add_section(title, text)
        else:
            # A plain-text failure (pytest.fail(pytrace=False), an error in a hook, ...).
            report.longrepr = f"{report.longrepr}\n\n{'-' * 10} {title} {'-' * 10}\n{text}"


def point_skip_at_scenario(item: pytest.Item, report: pytest.TestReport) -> None:
    """A skipped scenario's reason points at its line in the feature file (pytest would name
    pytest-bdd's own wrapper function)."""
    function = getattr(item, "function", None)
    template = scenario_wrapper_template_registry.get(function) if function else None
    if template is None or not isinstance(report.longrepr, tuple):
        return
    _path, _line, reason = report.longrepr
    # pytest prints line + 1 (it keeps 0-based lines).
    report.longrepr = (template.feature.rel_filename, template.line_number - 1, reason)
