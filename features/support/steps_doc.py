"""The step catalogue of ``docs/bdd.md``, rendered from the step library itself.

Every step of ``features/steps/`` (the modules of ``STEP_MODULES``) and every word of
:mod:`features.support.vocabulary` is listed between ``<!-- steps:start -->`` and
``<!-- steps:end -->``; ``features/test_support.py`` fails when the document differs. Regenerate
it with ``python -m features.support.steps_doc --write``.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from pytest_bdd.steps import step_function_context_registry

from features.steps import STEP_MODULES
from features.support import vocabulary
from terminal_emulator.hardware import catalogue

START = "<!-- steps:start -->"
END = "<!-- steps:end -->"
DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "bdd.md"
_PLACEHOLDER = re.compile(r"\{(\w+)(?::(\w+))?\}")


@dataclass(frozen=True)
class StepDoc:
    keyword: str  # Given, When, Then, or Given/When/Then (any)
    text: str  # the template with <placeholders>
    words: tuple[str, ...]  # "amount: Yen", ...
    sets: str | None  # the fixture the step's result becomes (target_fixture)
    summary: str  # first line of the step function's docstring
    module: str
    line: int


def readable(template: str) -> tuple[str, tuple[str, ...]]:
    """``charges {amount:Yen}`` → (``charges <amount>``, (``amount``: Yen))."""
    words = tuple(
        f"`{match.group(1)}`: {match.group(2) or 'text'}"
        for match in _PLACEHOLDER.finditer(template)
    )
    return _PLACEHOLDER.sub(lambda match: f"<{match.group(1)}>", template), words


def collect() -> list[StepDoc]:
    """Every step of the library, module by module in ``STEP_MODULES`` order, then by line."""
    for name in STEP_MODULES:
        importlib.import_module(name)
    found = []
    for context in list(step_function_context_registry.values()):
        function = context.step_func
        if function.__module__ not in STEP_MODULES:
            continue
        text, words = readable(context.parser.name)
        doc = inspect.getdoc(function) or ""
        found.append(
            StepDoc(
                keyword=context.type.capitalize() if context.type else "Given/When/Then",
                text=text,
                words=words,
                sets=context.target_fixture,
                summary=" ".join(doc.split("\n\n")[0].split()).replace("``", "`"),
                module=function.__module__,
                line=function.__code__.co_firstlineno,
            )
        )
    order = {name: index for index, name in enumerate(STEP_MODULES)}
    return sorted(found, key=lambda step: (order[step.module], step.line, step.text))


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_steps() -> str:
    lines: list[str] = []
    current = None
    for step in collect():
        if step.module != current:
            current = step.module
            module = sys.modules[step.module]
            title = (inspect.getdoc(module) or step.module).split("\n\n")[0].split(":")[0]
            path = step.module.replace(".", "/") + ".py"
            lines += ["", f"### {title} (`{path}`)", ""]
            lines += ["| step | words | sets | what it does |", "|---|---|---|---|"]
        words = "<br>".join(step.words)
        sets = f"`{step.sets}`" if step.sets else ""
        lines.append(
            f"| **{step.keyword}** `{_cell(step.text)}` | {_cell(words)} | {sets} "
            f"| {_cell(step.summary)} |"
        )
    return "\n".join(lines).strip()


def render_words() -> str:
    """The parse types: what each placeholder accepts."""
    lines = ["| word | accepts |", "|---|---|"]
    lines.append(
        "| Yen | an amount in yen as a store writes it: `¥1,200`, `¥880`, `¥0` (integers only) |"
    )
    presentations = ", ".join(f"`{word}`" for word in vocabulary.PRESENTATIONS)
    lines.append(f"| Presentation | {presentations} |")
    reasons = ", ".join(f"`{phrase}`" for phrase in vocabulary.DECLINE_REASONS)
    lines.append(f"| DeclineReason | {reasons} |")
    statuses = ", ".join(f"`{phrase}`" for phrase in vocabulary.PAYMENT_STATUSES)
    lines.append(f"| PaymentStatus | {statuses} |")
    modes = ", ".join(f"`{mode}`" for mode in vocabulary.ENTRY_MODES)
    lines.append(f"| EntryMode | {modes} |")
    lines.append(f"| Role | {', '.join(f'`{role}`' for role in vocabulary.ROLES)} |")
    terminal_statuses = ", ".join(f"`{status}`" for status in vocabulary.TERMINAL_STATUSES)
    lines.append(f"| TerminalStatus | {terminal_statuses} |")
    lines.append("| Name | any text without a double quote (the step puts it in quotes) |")
    lines.append("| Count, Digits | digits |")
    lines.append("| Card | a card of the test catalogue, by the name below |")
    lines += ["", "| Card (name in the step) | brand | the catalogue says |", "|---|---|---|"]
    labels = {entry.pan: entry.label for entry in catalogue()}
    for card in vocabulary.CARDS.values():
        lines.append(f"| {card.name} | {card.brand} | {labels[card.pan]} |")
    return "\n".join(lines)


def render() -> str:
    return f"{START}\n## Words\n\n{render_words()}\n\n## Steps\n\n{render_steps()}\n{END}"


def extract(document: str) -> str | None:
    match = re.search(re.escape(START) + r".*?" + re.escape(END), document, flags=re.DOTALL)
    return match.group(0) if match else None


def write(path: Path = DOC_PATH) -> None:
    document = path.read_text()
    current = extract(document)
    if current is None:
        raise SystemExit(f"{path} has no {START} … {END} block")
    path.write_text(document.replace(current, render()))


def main(argv: list[str]) -> None:
    if "--write" in argv:
        write()
        print(f"updated {DOC_PATH}")
    else:
        print(render())


if __name__ == "__main__":
    main(sys.argv[1:])
