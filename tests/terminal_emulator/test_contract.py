"""The Intent contract: names, conversions, validation, result transports, the journal."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest

from terminal_emulator.android import Bundle, ExtraType, Intent, KeyValueDatabase
from terminal_emulator.android.logcat import LogEntry, Priority, format_entry
from terminal_emulator.contract import (
    BROADCAST_FLAGS,
    BUSINESS_MAIN_ACTIVITY,
    CREDIT_CARD_RESULT_RECEIVER,
    CREDIT_CARD_TRANSACTION_ACTIVITY,
    ERROR_MESSAGES,
    ERROR_STATUS,
    MAX_AMOUNT,
    RESULT_CODE_BY_STATUS,
    RESULT_LOG_TAG,
    Action,
    BeginOutcome,
    ContractError,
    EndOfDayRequest,
    EntryMode,
    ErrorCode,
    JournalState,
    PaymentRequest,
    QueryRequest,
    ReceiptMode,
    RefundRequest,
    RequestJournal,
    ResultCode,
    SettlementScope,
    Status,
    TenderType,
    TransactionResult,
    VoidRequest,
    error_code_for_pgw_failure,
    error_code_for_pgw_problem,
    extras_reference_markdown,
    mask_pan,
    parse_am_broadcast_output,
    parse_request,
    parse_result_log_line,
    result_from_activity_result,
    result_from_broadcast_output,
)

NASTY = "ラーメン 🍜 \"quoted\" 'single' ; & | $HOME `id` \\ back, comma\nsecond line\ttab é"


def _approved(**overrides: Any) -> TransactionResult:
    values: dict[str, Any] = {
        "status": Status.APPROVED,
        "request_id": "r-1",
        "action": Action.PAYMENT,
        "payment_id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        "auth_code": "A1B2C3",
        "masked_pan": "**** **** **** 4242",
        "card_brand": "visa",
        "tender_type": TenderType.CARD,
        "entry_mode": EntryMode.CHIP,
        "amount": 1200,
        "tip_amount": 100,
        "currency": "JPY",
        "payment_status": "captured",
        "metadata": NASTY,
        "completed_at": "2026-01-15T10:23:45.123+09:00",
    }
    values.update(overrides)
    return TransactionResult(**values)


class TestNames:
    def test_packages_components_and_actions(self) -> None:
        assert BUSINESS_MAIN_ACTIVITY.flatten_short() == "jp.mpac.business/.MainActivity"
        assert CREDIT_CARD_TRANSACTION_ACTIVITY.flatten() == (
            "jp.mpac.creditcard/jp.mpac.creditcard.TransactionActivity"
        )
        assert CREDIT_CARD_RESULT_RECEIVER.flatten_short() == "jp.mpac.creditcard/.ResultReceiver"
        assert [a.value for a in Action] == [
            "jp.mpac.creditcard.action.PAYMENT",
            "jp.mpac.creditcard.action.REFUND",
            "jp.mpac.creditcard.action.VOID",
            "jp.mpac.creditcard.action.QUERY",
            "jp.mpac.creditcard.action.END_OF_DAY",
        ]
        assert Action.END_OF_DAY.short == "end_of_day"

    def test_result_codes_follow_android(self) -> None:
        assert ResultCode.OK == -1
        assert ResultCode.CANCELED == 0
        assert [int(c) for c in ResultCode][2:] == [1, 2, 3, 4, 5, 6]
        assert set(RESULT_CODE_BY_STATUS) == set(Status)
        assert len(set(RESULT_CODE_BY_STATUS.values())) == len(Status)

    def test_every_error_code_has_one_status_and_a_message(self) -> None:
        assert set(ERROR_STATUS) == set(ErrorCode)
        assert set(ERROR_MESSAGES) == set(ErrorCode)
        assert all(len(message) <= 200 for message in ERROR_MESSAGES.values())
        assert ErrorCode.DUPLICATE_IN_PROGRESS.status is Status.IN_PROGRESS
        assert ErrorCode.UNKNOWN_REQUEST.status is Status.NOT_FOUND

    def test_every_provider_decline_code_maps_to_a_declined_error(self) -> None:
        # docs/provider.md: "All decline codes"
        declines = [
            "generic_decline",
            "insufficient_funds",
            "lost_card",
            "stolen_card",
            "expired_card",
            "processing_error",
            "do_not_honor",
            "pin_required",
            "incorrect_pin",
            "invalid_number",
        ]
        codes = [error_code_for_pgw_failure(code) for code in declines]
        assert all(code.status is Status.DECLINED for code in codes)
        assert len(set(codes)) == len(codes)
        assert error_code_for_pgw_failure("pin_required") is ErrorCode.PIN_REQUIRED
        assert error_code_for_pgw_failure("something_new") is ErrorCode.DECLINED_GENERIC
        assert error_code_for_pgw_failure(None) is ErrorCode.DECLINED_GENERIC

    def test_pgw_problems_map_to_error_codes(self) -> None:
        assert error_code_for_pgw_problem("payment_not_found") is ErrorCode.PAYMENT_NOT_FOUND
        assert error_code_for_pgw_problem("token_expired") is ErrorCode.AUTHENTICATION_FAILED
        assert error_code_for_pgw_problem("assertion_replayed") is ErrorCode.AUTHENTICATION_FAILED
        assert error_code_for_pgw_problem("terminal_not_active") is ErrorCode.TERMINAL_NOT_ACTIVE
        assert error_code_for_pgw_problem("provider_timeout") is ErrorCode.GATEWAY_TIMEOUT
        assert error_code_for_pgw_problem("internal_error") is ErrorCode.GATEWAY_ERROR

    def test_mask_pan(self) -> None:
        assert mask_pan("4242") == "**** **** **** 4242"
        with pytest.raises(ValueError, match="four digits"):
            mask_pan("424")


class TestRequestConversions:
    @pytest.mark.parametrize(
        "request_",
        [
            PaymentRequest(request_id="r-1", amount=1200, currency="JPY"),
            PaymentRequest(
                request_id="0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
                amount=MAX_AMOUNT - 5,
                currency="USD",
                tip_amount=5,
                tender_types=(TenderType.CARD,),
                entry_modes=(EntryMode.CHIP, EntryMode.SWIPE),
                tab_id="tab:42",
                note=NASTY,
                metadata=NASTY,
                cashier_id="cashier.7",
                receipt_mode=ReceiptMode.NONE,
                skip_result_screen=True,
                result_screen_timeout_ms=3200,
                timeout_ms=5000,
                broadcast_wait_ms=0,
            ),
            PaymentRequest(
                request_id="qr-only", amount=1, currency="JPY", tender_types=(TenderType.QR,)
            ),
            RefundRequest(request_id="r-2", payment_id="pay_1"),
            RefundRequest(
                request_id="r-3", payment_id="pay_1", amount=500, currency="JPY", reason=NASTY
            ),
            VoidRequest(request_id="r-4", payment_id="pay_1", reason="顧客都合"),
            QueryRequest(request_id="r-1"),
            EndOfDayRequest(
                request_id="eod-2026-01-15", scope=SettlementScope.STORE, cashier_id="mgr"
            ),
        ],
    )
    def test_round_trip_through_extras_and_intents(self, request_: Any) -> None:
        assert type(request_).from_extras(request_.to_extras()) == request_
        for via in ("activity", "broadcast"):
            intent = request_.to_intent(via=via)
            assert intent.action == request_.ACTION.value
            assert parse_request(intent) == request_
            # and through the typed JSON the journal stores
            assert (
                type(request_).from_extras(
                    Bundle.from_json(json.loads(json.dumps(intent.extras.to_json())))
                )
                == request_
            )

    def test_intents_target_the_contract_components(self) -> None:
        request = PaymentRequest(request_id="r-1", amount=1200, currency="JPY")
        activity = request.to_intent()
        broadcast = request.to_intent(via="broadcast")
        assert activity.component == CREDIT_CARD_TRANSACTION_ACTIVITY
        assert activity.flags == 0
        assert broadcast.component == CREDIT_CARD_RESULT_RECEIVER
        assert broadcast.flags == BROADCAST_FLAGS == 0x10000020

    def test_extras_carry_android_types_and_leave_defaults_out(self) -> None:
        extras = PaymentRequest(
            request_id="r-1", amount=1200, currency="JPY", tender_types=(TenderType.CARD,)
        ).to_extras()
        types = {key: value.type for key, value in extras.items()}
        assert types == {
            "request_id": ExtraType.STRING,
            "api_version": ExtraType.INT,
            "amount": ExtraType.LONG,
            "currency": ExtraType.STRING,
            "tender_types": ExtraType.STRING_ARRAY,
        }
        assert [
            types[k].am_flag for k in ("request_id", "api_version", "amount", "tender_types")
        ] == [
            "--es",
            "--ei",
            "--el",
            "--esa",
        ]

    def test_defaults_are_filled_in(self) -> None:
        extras = (
            Bundle()
            .put_string("request_id", "r-1")
            .put_long("amount", 5)
            .put_string("currency", "JPY")
        )
        request = PaymentRequest.from_extras(extras)
        assert request.tender_types == (TenderType.CARD, TenderType.QR)
        assert request.entry_modes == (EntryMode.CONTACTLESS, EntryMode.CHIP, EntryMode.SWIPE)
        assert request.timeout_ms == 60_000
        assert request.broadcast_wait_ms == 8000
        assert request.receipt_mode is ReceiptMode.ASK
        assert request.api_version == 1

    def test_fingerprint_ignores_presentation_options_only(self) -> None:
        base = PaymentRequest(request_id="r-1", amount=1200, currency="JPY")
        shown = PaymentRequest(
            request_id="r-1",
            amount=1200,
            currency="JPY",
            skip_result_screen=True,
            receipt_mode=ReceiptMode.PRINT,
            broadcast_wait_ms=100,
            timeout_ms=10_000,
        )
        assert base.fingerprint() == shown.fingerprint()
        assert (
            base.fingerprint()
            != PaymentRequest(request_id="r-1", amount=1201, currency="JPY").fingerprint()
        )
        assert (
            base.fingerprint()
            != PaymentRequest(
                request_id="r-1", amount=1200, currency="JPY", tab_id="t"
            ).fingerprint()
        )
        refund = RefundRequest(request_id="r-1", payment_id="p", amount=1200, currency="JPY")
        assert refund.fingerprint() != base.fingerprint()


def _payment_extras(**strings: str | None) -> Bundle:
    """A valid payment's extras with some String extras changed (None: removed)."""
    extras = (
        Bundle()
        .put_string("request_id", "r-9")
        .put_long("amount", 1200)
        .put_string("currency", "JPY")
    )
    for key, value in strings.items():
        if value is None:
            extras.remove(key)
        else:
            extras.put_string(key, value)
    return extras


class TestRequestValidation:
    def _error(self, extras: Bundle) -> ContractError:
        with pytest.raises(ContractError) as caught:
            PaymentRequest.from_extras(extras)
        return caught.value

    def test_wrong_extra_type_names_the_right_am_flag(self) -> None:
        extras = _payment_extras()
        extras.put_int("amount", 1200)
        error = self._error(extras)
        assert error.code is ErrorCode.INVALID_REQUEST
        assert error.extra == "amount"
        assert "long extra (am --el amount" in error.message
        assert "got int (--ei)" in error.message
        # the error result still echoes the request id and the action
        result = error.to_result()
        assert (result.request_id, result.action, result.status) == (
            "r-9",
            Action.PAYMENT,
            Status.ERROR,
        )
        assert result.result_code == ResultCode.ERROR

    def test_missing_required_extra(self) -> None:
        error = self._error(_payment_extras(currency=None))
        assert error.extra == "currency"
        assert "currency is required (String extra, am --es currency" in error.message

    @pytest.mark.parametrize(
        ("key", "value", "problem"),
        [
            ("currency", "jpy", "must match"),
            ("currency", "JPYY", "must match"),
            ("request_id", "has space", "must match"),
            ("request_id", "x" * 65, "must match"),
            ("note", "", "must not be empty"),
            ("note", "bell\x07", "control characters"),
            ("note", "x" * 501, "at most 500 characters"),
            ("note", "lone \ud800 surrogate", "valid Unicode"),
            ("receipt_mode", "email", "must be one of ask, print, none"),
            ("tab_id", "tab/1", "must match"),
        ],
    )
    def test_bad_strings(self, key: str, value: str, problem: str) -> None:
        error = self._error(_payment_extras(**{key: value}))
        assert error.extra == key
        assert problem in error.message
        if key == "request_id":
            assert error.request_id is None  # an unusable id is not echoed
        else:
            assert error.request_id == "r-9"

    @pytest.mark.parametrize(
        ("key", "value", "problem"),
        [
            ("amount", 0, "at least 1"),
            ("amount", MAX_AMOUNT + 1, f"at most {MAX_AMOUNT}"),
            ("tip_amount", -1, "at least 0"),
            ("timeout_ms", 4999, "at least 5000"),
            ("broadcast_wait_ms", 9001, "at most 9000"),
            ("result_screen_timeout_ms", 500, "0 or at least 1000"),
        ],
    )
    def test_bad_numbers(self, key: str, value: int, problem: str) -> None:
        extras = _payment_extras()
        extras.put_long(key, value)
        error = self._error(extras)
        assert error.extra == key
        assert problem in error.message

    def test_amount_plus_tip_is_bounded(self) -> None:
        extras = _payment_extras()
        extras.put_long("amount", MAX_AMOUNT).put_long("tip_amount", 1)
        assert "amount + tip_amount" in self._error(extras).message

    @pytest.mark.parametrize(
        ("key", "values", "problem"),
        [
            ("tender_types", ["card", "card"], "twice"),
            ("tender_types", ["cash"], "must be one of card, qr"),
            ("entry_modes", ["qr"], "allow QR with tender_types"),
            ("entry_modes", ["manual"], "must be one of"),
        ],
    )
    def test_bad_arrays(self, key: str, values: list[str], problem: str) -> None:
        extras = _payment_extras()
        extras.put_string_array(key, values)
        error = self._error(extras)
        assert error.extra == key
        assert problem in error.message

    def test_entry_modes_need_card(self) -> None:
        with pytest.raises(ContractError, match="tender_types does not allow card"):
            PaymentRequest(
                request_id="r",
                amount=1,
                currency="JPY",
                tender_types=(TenderType.QR,),
                entry_modes=(EntryMode.CHIP,),
            )

    def test_unsupported_api_version_is_its_own_error(self) -> None:
        extras = _payment_extras()
        extras.put_int("api_version", 2)
        extras.remove("amount")  # the version is checked before anything else
        error = self._error(extras)
        assert error.code is ErrorCode.UNSUPPORTED_API_VERSION
        assert error.to_result().status is Status.ERROR
        assert error.request_id == "r-9"

    def test_unknown_action(self) -> None:
        intent = Intent("jp.mpac.creditcard.action.TELEPORT")
        intent.extras.put_string("request_id", "r-5")
        with pytest.raises(ContractError, match="unknown action") as caught:
            parse_request(intent)
        assert caught.value.request_id == "r-5"

    def test_refund_and_void_need_a_payment_id(self) -> None:
        extras = Bundle().put_string("request_id", "r")
        with pytest.raises(ContractError, match="payment_id is required"):
            RefundRequest.from_extras(extras)
        with pytest.raises(ContractError, match="payment_id is required"):
            VoidRequest.from_extras(extras)
        with pytest.raises(ContractError, match="must be one of terminal, store"):
            EndOfDayRequest.from_extras(
                Bundle().put_string("request_id", "r").put_string("scope", "all")
            )


class TestResults:
    def test_round_trips_with_unicode(self) -> None:
        result = _approved()
        assert TransactionResult.from_extras(result.to_extras(), result_code=-1) == result
        assert TransactionResult.from_json(json.loads(result.to_json_text())) == result
        assert result_from_activity_result(-1, result.to_intent()) == result

    def test_json_text_is_one_ascii_line(self) -> None:
        text = _approved().to_json_text()
        assert text.isascii()
        assert "\n" not in text
        document = json.loads(text)
        assert list(document)[:3] == ["v", "status", "result_code"]
        assert document["result_code"] == -1
        assert document["metadata"] == NASTY

    def test_end_of_day_result(self) -> None:
        totals = json.dumps({"JPY": {"payment_count": 2, "net": 2400}})
        result = TransactionResult(
            status=Status.APPROVED,
            request_id="eod-1",
            action=Action.END_OF_DAY,
            settlement_id="0190a1b2-0000-7000-8000-000000000001",
            payment_count=2,
            refund_count=0,
            totals=totals,
        )
        extras = result.to_extras()
        assert extras.get_typed("payment_count") is not None
        assert extras.get_int("payment_count") == 2
        assert TransactionResult.from_extras(extras) == result

    def test_status_and_error_code_must_agree(self) -> None:
        with pytest.raises(ContractError, match="approved result has no error_code"):
            _approved(error_code=ErrorCode.TIMEOUT)
        with pytest.raises(ContractError, match="declined result needs an error_code"):
            TransactionResult(status=Status.DECLINED)
        with pytest.raises(ContractError, match="belongs to status declined, not error"):
            TransactionResult(status=Status.ERROR, error_code=ErrorCode.INCORRECT_PIN)
        # in progress and processing may carry no code
        TransactionResult(status=Status.IN_PROGRESS)
        TransactionResult(status=Status.PROCESSING, error_code=ErrorCode.GATEWAY_TIMEOUT)

    @pytest.mark.parametrize(
        ("field_name", "value"),
        [
            ("masked_pan", "4242424242424242"),
            ("masked_pan", "**** 4242"),
            ("auth_code", "A1 B2"),
            ("currency", "yen"),
            ("completed_at", "yesterday"),
            ("completed_at", "2026-01-15T10:23:45"),
            ("card_brand", "VISA"),
            ("amount", -1),
        ],
    )
    def test_field_rules(self, field_name: str, value: Any) -> None:
        with pytest.raises(ContractError, match=field_name):
            _approved(**{field_name: value})

    def test_totals_must_be_a_json_object(self) -> None:
        with pytest.raises(ContractError, match="JSON object"):
            TransactionResult(status=Status.APPROVED, totals="[1, 2]")

    def test_failure_uses_the_code_status_and_message(self) -> None:
        result = TransactionResult.failure(ErrorCode.TIMEOUT, request_id="r")
        assert result.status is Status.TIMEOUT
        assert result.error_message == "No card was presented in time."
        assert result.result_code == ResultCode.TIMEOUT
        long = TransactionResult.failure(ErrorCode.GATEWAY_ERROR, "x" * 500)
        assert long.error_message == "x" * 200

    def test_result_code_must_match_status(self) -> None:
        with pytest.raises(ContractError, match="result code 0 does not match status approved"):
            TransactionResult.from_extras(_approved().to_extras(), result_code=0)
        document = _approved().to_json()
        document["result_code"] = 1
        with pytest.raises(ContractError, match="does not match"):
            TransactionResult.from_json(document)
        document = _approved().to_json()
        document["v"] = 2
        with pytest.raises(ContractError, match="unsupported result version"):
            TransactionResult.from_json(document)

    def test_unknown_json_fields_are_ignored(self) -> None:
        document = _approved().to_json()
        document["added_in_v1_1"] = "x"
        assert TransactionResult.from_json(document) == _approved()

    def test_lost_activity_result(self) -> None:
        assert result_from_activity_result(0, None) is None
        assert result_from_activity_result(0, Intent()) is None


class TestBroadcastOutput:
    def test_parses_what_am_prints(self) -> None:
        result = _approved(metadata='tricky", extras: Bundle[{x=y}] "quote')
        code, data, extras = result.broadcast_result()
        output = (
            "Broadcasting: Intent { act=jp.mpac.creditcard.action.QUERY flg=0x10000020 "
            "cmp=jp.mpac.creditcard/.ResultReceiver (has extras) }\r\n"
            f'Broadcast completed: result={code}, data="{data}", extras: {extras.to_android_string()}\r\n'
        )
        parsed = parse_am_broadcast_output(output)
        assert parsed is not None
        assert parsed.result_code == -1
        assert parsed.data == data
        assert parsed.extras == extras.to_android_string()
        assert result_from_broadcast_output(output) == result

    def test_real_devices_print_parcelled_extras(self) -> None:
        result = _approved()
        output = (
            f'Broadcast completed: result=-1, data="{result.to_json_text()}", '
            "extras: Bundle[mParcelledData.dataSize=612]"
        )
        assert result_from_broadcast_output(output) == result

    def test_plain_data_and_no_data(self) -> None:
        parsed = parse_am_broadcast_output('Broadcast completed: result=3, data="hello, world"')
        assert parsed is not None
        assert (parsed.result_code, parsed.data, parsed.extras) == (3, "hello, world", None)
        none = parse_am_broadcast_output("Broadcast completed: result=0")
        assert none is not None
        assert (none.result_code, none.data, none.extras) == (0, None, None)
        assert result_from_broadcast_output("Broadcast completed: result=0") is None
        assert parse_am_broadcast_output("Error: something") is None

    def test_data_that_is_not_the_contract(self) -> None:
        with pytest.raises(ContractError, match="not the contract's JSON"):
            result_from_broadcast_output('Broadcast completed: result=-1, data="ok"')

    def test_code_in_line_must_match(self) -> None:
        output = f'Broadcast completed: result=0, data="{_approved().to_json_text()}"'
        with pytest.raises(ContractError, match="does not match"):
            result_from_broadcast_output(output)


class TestLogLine:
    @pytest.mark.parametrize("fmt", ["threadtime", "brief", "tag", "time", "process", "raw"])
    def test_every_logcat_format_parses(self, fmt: str) -> None:
        result = _approved()
        entry = LogEntry(
            seq=1,
            time=dt.datetime(2026, 1, 15, 1, 2, 3, tzinfo=dt.UTC),
            pid=1234,
            tid=1240,
            priority=Priority.INFO,
            tag=RESULT_LOG_TAG,
            message=result.log_message(),
        )
        (line,) = format_entry(entry, fmt)
        assert parse_result_log_line(line) == result

    def test_other_lines(self) -> None:
        assert parse_result_log_line("01-15 10:00:00.000  1  1 I Other   : {}") is None
        assert (
            parse_result_log_line(f"01-15 10:00:00.000  1  1 I {RESULT_LOG_TAG}: not json") is None
        )
        assert parse_result_log_line("--------- beginning of main") is None


class FakeClock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 1, 15, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        self.now += dt.timedelta(seconds=1)
        return self.now


class TestJournal:
    @pytest.fixture
    def store(self, tmp_path: Path) -> KeyValueDatabase:
        return KeyValueDatabase(tmp_path / "journal.db")

    def test_new_then_replay(self, store: KeyValueDatabase) -> None:
        journal = RequestJournal(store, owner="p1", now=FakeClock())
        request = PaymentRequest(request_id="r-1", amount=1200, currency="JPY")
        begin = journal.begin(request)
        assert begin.outcome is BeginOutcome.NEW
        assert begin.answer is None
        assert journal.query("r-1").status is Status.IN_PROGRESS
        again = journal.begin(request)
        assert again.outcome is BeginOutcome.IN_PROGRESS
        assert again.answer is not None
        assert again.answer.error_code is ErrorCode.DUPLICATE_IN_PROGRESS

        journal.complete("r-1", _approved(request_id="whatever"))
        replay = journal.begin(request)
        assert replay.outcome is BeginOutcome.REPLAY
        assert replay.answer == _approved()
        assert journal.query("r-1") == _approved()
        entry = journal.get("r-1")
        assert entry is not None
        assert entry.state is JournalState.DONE
        assert entry.stored_request() == request

    def test_conflict_keeps_the_first(self, store: KeyValueDatabase) -> None:
        journal = RequestJournal(store, owner="p1")
        journal.begin(PaymentRequest(request_id="r-1", amount=1200, currency="JPY"))
        conflict = journal.begin(PaymentRequest(request_id="r-1", amount=1300, currency="JPY"))
        assert conflict.outcome is BeginOutcome.CONFLICT
        assert conflict.answer is not None
        assert conflict.answer.error_code is ErrorCode.REQUEST_ID_REUSED
        other_action = journal.begin(VoidRequest(request_id="r-1", payment_id="p"))
        assert other_action.outcome is BeginOutcome.CONFLICT
        entry = journal.get("r-1")
        assert entry is not None
        assert entry.stored_request() == PaymentRequest(
            request_id="r-1", amount=1200, currency="JPY"
        )

    def test_survives_the_process_and_resumes_abandoned_work(self, tmp_path: Path) -> None:
        request = PaymentRequest(request_id="r-1", amount=1200, currency="JPY")
        first = KeyValueDatabase(tmp_path / "j.db")
        RequestJournal(first, owner="dead-process").begin(request)
        first.close()

        store = KeyValueDatabase(tmp_path / "j.db")
        journal = RequestJournal(store, owner="new-process")
        assert journal.query("r-1").status is Status.IN_PROGRESS
        assert [e.request_id for e in journal.unfinished()] == ["r-1"]
        resumed = journal.begin(request)
        assert resumed.outcome is BeginOutcome.RESUME
        assert resumed.entry is not None
        assert resumed.entry.owner == "new-process"
        assert journal.unfinished() == []

    def test_processing_results_are_resumable(self, store: KeyValueDatabase) -> None:
        journal = RequestJournal(store, owner="p1")
        request = PaymentRequest(request_id="r-1", amount=1200, currency="JPY")
        journal.begin(request)
        processing = TransactionResult(
            status=Status.PROCESSING, error_code=ErrorCode.GATEWAY_TIMEOUT, request_id="r-1"
        )
        journal.complete("r-1", processing)
        assert journal.query("r-1") == processing
        assert [e.request_id for e in journal.unfinished()] == ["r-1"]
        assert journal.begin(request).outcome is BeginOutcome.RESUME

    def test_not_found_and_queries_are_not_journaled(self, store: KeyValueDatabase) -> None:
        journal = RequestJournal(store, owner="p1")
        answer = journal.query("nope")
        assert answer.status is Status.NOT_FOUND
        assert answer.error_code is ErrorCode.UNKNOWN_REQUEST
        with pytest.raises(TypeError):
            journal.begin(QueryRequest(request_id="nope"))
        with pytest.raises(KeyError):
            journal.complete("nope", _approved(request_id="nope"))

    def test_prune_forgets_old_final_entries(self, store: KeyValueDatabase) -> None:
        clock = FakeClock()
        journal = RequestJournal(store, owner="p1", now=clock)
        for request_id in ("old", "open"):
            journal.begin(PaymentRequest(request_id=request_id, amount=1, currency="JPY"))
        journal.complete("old", _approved(request_id="old"))
        cutoff = clock.now + dt.timedelta(seconds=1)
        journal.begin(PaymentRequest(request_id="new", amount=1, currency="JPY"))
        clock.now += dt.timedelta(hours=1)
        journal.complete("new", _approved(request_id="new"))
        assert journal.prune(cutoff) == 1
        assert [e.request_id for e in journal.entries()] == ["new", "open"]


class TestDocs:
    def test_intent_contract_doc_has_the_generated_tables(self) -> None:
        doc = (Path(__file__).parents[2] / "docs" / "intent-contract.md").read_text(
            encoding="utf-8"
        )
        generated = extras_reference_markdown()
        assert generated in doc, "regenerate the tables: python -m terminal_emulator.contract"

    def test_doc_lists_every_error_code(self) -> None:
        doc = (Path(__file__).parents[2] / "docs" / "intent-contract.md").read_text(
            encoding="utf-8"
        )
        for code in ErrorCode:
            assert re.search(rf"`{code.value}`", doc), code
