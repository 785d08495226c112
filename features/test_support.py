"""The BDD suite's own checks: ``docs/bdd.md`` lists every step, the words parse as a store
writes them, and the failure report never carries a secret or a card number."""

from __future__ import annotations

import json

import httpx
import pytest

from features.support import steps_doc, vocabulary
from features.support.http_journal import REDACTED, Exchange, HttpJournal, mask_card_numbers
from terminal_emulator.hardware import catalogue


def test_docs_bdd_lists_every_step_and_word() -> None:
    document = steps_doc.DOC_PATH.read_text()
    assert steps_doc.extract(document) == steps_doc.render(), (
        "docs/bdd.md is out of date: run `python -m features.support.steps_doc --write`"
    )


def test_every_step_says_what_it_does() -> None:
    steps = steps_doc.collect()
    assert steps, "no step found in the library"
    undocumented = [f"{step.module}:{step.line} {step.text}" for step in steps if not step.summary]
    assert undocumented == [], f"steps without a docstring: {undocumented}"


def test_every_step_text_is_unique() -> None:
    texts = [(step.keyword, step.text) for step in steps_doc.collect()]
    duplicated = sorted({text for text in texts if texts.count(text) > 1})
    assert duplicated == [], f"steps declared twice: {duplicated}"


def test_every_catalogue_card_has_a_name() -> None:
    assert set(vocabulary.CARD_NAMES) == {card.pan for card in catalogue()}
    assert vocabulary.parse_card("approved Visa card").pan == "4242424242424242"
    assert vocabulary.parse_card("Declined Visa card (lost card)").brand == "visa"
    assert "4242424242424242" not in repr(vocabulary.parse_card("approved Visa card"))


@pytest.mark.parametrize(
    ("text", "amount"), [("¥1,200", 1200), ("¥880", 880), ("¥0", 0), ("¥1,000,000", 1_000_000)]
)
def test_yen_amounts_are_integers(text: str, amount: int) -> None:
    parser = vocabulary.step_text("charge {amount:Yen}")
    assert parser.parse_arguments(f"charge {text}") == {"amount": amount}
    assert vocabulary.yen(amount) == text


@pytest.mark.parametrize("text", ["¥12,00", "¥1.5", "1,200", "¥1,2000", "¥"])
def test_malformed_amounts_do_not_match(text: str) -> None:
    assert not vocabulary.step_text("charge {amount:Yen}").is_matching(f"charge {text}")


def test_decline_reasons_cover_the_catalogue() -> None:
    declined = [name for name in vocabulary.CARD_NAMES.values() if name.startswith("declined")]
    reasons = {name.split("(")[1].rstrip(")") for name in declined}
    assert reasons <= set(vocabulary.DECLINE_REASONS)


def test_the_journal_redacts_credentials_and_card_data() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            201,
            json={"access_token": "eyJ.secret.token", "card": {"last4": "4242"}},
            headers={"set-cookie": "session=abc", "x-request-id": "req-1"},
        )

    journal = HttpJournal()
    with httpx.Client(
        base_url="http://pgw.test",
        transport=httpx.MockTransport(answer),
        event_hooks=journal.hooks("pgw"),
    ) as client:
        client.post(
            "/v1/payments",
            json={
                "amount": 1200,
                "card": {"pan": "4242424242424242", "cvv": "123", "pin": "1234"},
                "description": "card 5555555555554444 in free text",
                "password": "hunter2",
            },
            headers={"authorization": "Bearer eyJ.user.token"},
        )
        client.post("/oauth2/token", data={"client_assertion": "eyJ.assertion", "grant_type": "x"})
    report = journal.report(full=2)
    assert report is not None
    for secret in (
        "4242424242424242",
        "5555555555554444",
        "hunter2",
        "eyJ.secret.token",
        "eyJ.user.token",
        "eyJ.assertion",
        "session=abc",
        '"123"',
        '"1234"',
    ):
        assert secret not in report, secret
    assert REDACTED in report
    assert "[card ending 4444]" in report
    assert "x-request-id: req-1" in report
    assert '"last4": "4242"' in report


def test_masking_leaves_ids_and_amounts_alone() -> None:
    text = json.dumps({"amount": 1200, "id": "01a2157c-9371-7aef-901b-d1cf32e68a50"})
    assert mask_card_numbers(text) == text


def test_repeated_polls_are_one_line_in_the_report() -> None:
    """A step that polls pgw twenty times must not bury the exchanges that tell the story."""
    journal = HttpJournal()
    for status in (201, 200, 200, 200, 200):
        journal.record(
            Exchange(
                service="pgw",
                method="POST" if status == 201 else "GET",
                url="http://pgw/v1/payments" + ("" if status == 201 else "/p1"),
                request_headers={},
                request_body="",
                status=status,
            )
        )
    journal.record(
        Exchange(
            service="pgw", method="GET", url="http://pgw/v1/x", request_headers={}, request_body=""
        )
    )
    report = journal.report()
    assert report is not None
    earlier = report.split("\n\n")[0].splitlines()
    assert earlier == [
        "Earlier:",
        "  pgw: POST http://pgw/v1/payments -> 201",
        "  pgw: GET http://pgw/v1/payments/p1 -> 200  (4 times)",
    ]
