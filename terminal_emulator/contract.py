"""The Intent contract between the Business App and the Credit Card App.

One module, imported by the emulated apps and by the ADB bridge (``android_bridge``), so the
two sides cannot drift: package and component names, actions, typed extras with their
validation, result codes, statuses and error codes, the three ways a result reaches its
caller, and the request journal that makes every action idempotent by request id and lets
the query action tell the truth after the Credit Card App was killed. ``docs/intent-contract.md``
explains it for people; its extras tables are generated from this module
(:func:`extras_reference_markdown`) and a test keeps them equal.

Modelled on the public app-to-app payment APIs: Square's Point of Sale API for Android (typed
extras, an ``ERROR_CODE`` closed list, a request metadata string echoed back, auto-return
timeout of the result screen, "no data means the payment app died: find out what happened"),
Clover's payment intents (entry-method restrictions, an external id for idempotency) and the
SumUp / Rapyd-on-PAX-and-Sunmi integrations (tip, receipt options, skip the result screen,
foreground broadcast answers).

Card data never travels in an intent: results carry the brand and a masked number only.
"""

from __future__ import annotations

import builtins
import dataclasses
import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from enum import IntEnum, StrEnum
from typing import Any, ClassVar, Literal, Protocol, Self

from terminal_emulator.android.activity import RESULT_CANCELED, RESULT_FIRST_USER, RESULT_OK
from terminal_emulator.android.bundle import Bundle, ExtraType, TypedValue
from terminal_emulator.android.intent import (
    FLAG_INCLUDE_STOPPED_PACKAGES,
    FLAG_RECEIVER_FOREGROUND,
    ComponentName,
    Intent,
)

CONTRACT_VERSION = 1

BUSINESS_PACKAGE = "jp.mpac.business"
CREDIT_CARD_PACKAGE = "jp.mpac.creditcard"

# The Business App's launcher activity (cashier's home screen).
BUSINESS_MAIN_ACTIVITY = ComponentName.of(BUSINESS_PACKAGE, ".MainActivity")
# Takes every action started as an activity (startActivityForResult, ``am start``).
CREDIT_CARD_TRANSACTION_ACTIVITY = ComponentName.of(CREDIT_CARD_PACKAGE, ".TransactionActivity")
# Takes every action sent as an ordered broadcast (``am broadcast``) and answers in the
# broadcast's result code, data and extras.
CREDIT_CARD_RESULT_RECEIVER = ComponentName.of(CREDIT_CARD_PACKAGE, ".ResultReceiver")

# Logcat tag of the structured result line (priority I, message: one JSON object).
RESULT_LOG_TAG = "MPAC_RESULT"

# Flags a broadcast of the contract carries: the foreground queue (10 s receiver budget,
# dispatched at once) and delivery to a force-stopped Credit Card App, which Android
# otherwise skips until one of its activities is started again.
BROADCAST_FLAGS = FLAG_RECEIVER_FOREGROUND | FLAG_INCLUDE_STOPPED_PACKAGES

# pgw's limit (``backend/pgw/payments/schemas.py``); repeated so the bridge needs no backend.
MAX_AMOUNT = 10**12

ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_CURRENCY_PATTERN = re.compile(r"^[A-Z]{3}$")
_MASKED_PAN_PATTERN = re.compile(r"^\*{4} \*{4} \*{4} [0-9]{4}$")
_AUTH_CODE_PATTERN = re.compile(r"^[A-Za-z0-9]{1,12}$")
_WORD_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
# Control characters other than tab and newline (and lone surrogates, checked apart).
_FORBIDDEN_TEXT = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


# --------------------------------------------------------------------------------------------
# Vocabulary
# --------------------------------------------------------------------------------------------


class Action(StrEnum):
    PAYMENT = "jp.mpac.creditcard.action.PAYMENT"
    REFUND = "jp.mpac.creditcard.action.REFUND"
    VOID = "jp.mpac.creditcard.action.VOID"
    QUERY = "jp.mpac.creditcard.action.QUERY"
    END_OF_DAY = "jp.mpac.creditcard.action.END_OF_DAY"

    @property
    def short(self) -> str:
        """``payment``, ``refund``… (the last part of the action, lower case)."""
        return self.value.rsplit(".", 1)[1].lower()


class Status(StrEnum):
    APPROVED = "approved"  # the action succeeded (payment, refund, void, end-of-day)
    DECLINED = "declined"  # the issuer or wallet said no; nothing was charged
    CANCELLED = "cancelled"  # customer or cashier cancelled, or the app died before charging
    TIMEOUT = "timeout"  # no card (or QR payment) within the time allowed; nothing charged
    ERROR = "error"  # refused or failed before any money moved (see error_code)
    PROCESSING = "processing"  # the gateway has it but its outcome is not known yet
    IN_PROGRESS = "in_progress"  # the Credit Card App is still working on it
    NOT_FOUND = "not_found"  # query: no request with this id was ever received

    @property
    def is_final(self) -> bool:
        """Final statuses never change; processing and in_progress do (ask again)."""
        return self not in (Status.PROCESSING, Status.IN_PROGRESS)


class ResultCode(IntEnum):
    """Activity and broadcast result codes: Android's two, then ``RESULT_FIRST_USER + n``."""

    OK = RESULT_OK  # -1: approved
    CANCELED = RESULT_CANCELED  # 0: cancelled (and, without data, a lost result: query)
    DECLINED = RESULT_FIRST_USER  # 1
    TIMEOUT = RESULT_FIRST_USER + 1  # 2
    ERROR = RESULT_FIRST_USER + 2  # 3
    PROCESSING = RESULT_FIRST_USER + 3  # 4
    IN_PROGRESS = RESULT_FIRST_USER + 4  # 5
    NOT_FOUND = RESULT_FIRST_USER + 5  # 6


RESULT_CODE_BY_STATUS: dict[Status, ResultCode] = {
    Status.APPROVED: ResultCode.OK,
    Status.CANCELLED: ResultCode.CANCELED,
    Status.DECLINED: ResultCode.DECLINED,
    Status.TIMEOUT: ResultCode.TIMEOUT,
    Status.ERROR: ResultCode.ERROR,
    Status.PROCESSING: ResultCode.PROCESSING,
    Status.IN_PROGRESS: ResultCode.IN_PROGRESS,
    Status.NOT_FOUND: ResultCode.NOT_FOUND,
}


class ErrorCode(StrEnum):
    # declined: the card network's answer (pgw failure codes, docs/provider.md)
    DECLINED_GENERIC = "DECLINED_GENERIC"
    DECLINED_INSUFFICIENT_FUNDS = "DECLINED_INSUFFICIENT_FUNDS"
    DECLINED_LOST_CARD = "DECLINED_LOST_CARD"
    DECLINED_STOLEN_CARD = "DECLINED_STOLEN_CARD"
    DECLINED_EXPIRED_CARD = "DECLINED_EXPIRED_CARD"
    DECLINED_PROCESSING_ERROR = "DECLINED_PROCESSING_ERROR"
    DECLINED_DO_NOT_HONOR = "DECLINED_DO_NOT_HONOR"
    DECLINED_INVALID_NUMBER = "DECLINED_INVALID_NUMBER"
    DECLINED_WALLET = "DECLINED_WALLET"
    PIN_REQUIRED = "PIN_REQUIRED"
    INCORRECT_PIN = "INCORRECT_PIN"
    # cancelled
    CUSTOMER_CANCELLED = "CUSTOMER_CANCELLED"
    CASHIER_CANCELLED = "CASHIER_CANCELLED"
    INTERRUPTED = "INTERRUPTED"
    # timeout
    TIMEOUT = "TIMEOUT"
    QR_EXPIRED = "QR_EXPIRED"
    # processing
    GATEWAY_TIMEOUT = "GATEWAY_TIMEOUT"
    # in_progress
    DUPLICATE_IN_PROGRESS = "DUPLICATE_IN_PROGRESS"
    # not_found
    UNKNOWN_REQUEST = "UNKNOWN_REQUEST"
    # error
    NETWORK_ERROR = "NETWORK_ERROR"
    PROVIDER_UNAVAILABLE = "PROVIDER_UNAVAILABLE"
    GATEWAY_ERROR = "GATEWAY_ERROR"
    TERMINAL_NOT_ENROLLED = "TERMINAL_NOT_ENROLLED"
    TERMINAL_NOT_ACTIVE = "TERMINAL_NOT_ACTIVE"
    AUTHENTICATION_FAILED = "AUTHENTICATION_FAILED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    PAYMENT_NOT_FOUND = "PAYMENT_NOT_FOUND"
    REFUND_EXCEEDS_CAPTURED = "REFUND_EXCEEDS_CAPTURED"
    ILLEGAL_STATE = "ILLEGAL_STATE"
    INVALID_REQUEST = "INVALID_REQUEST"
    UNSUPPORTED_API_VERSION = "UNSUPPORTED_API_VERSION"
    REQUEST_ID_REUSED = "REQUEST_ID_REUSED"
    TERMINAL_BUSY = "TERMINAL_BUSY"
    INTERNAL_ERROR = "INTERNAL_ERROR"

    @property
    def status(self) -> Status:
        return ERROR_STATUS[self]

    @property
    def default_message(self) -> str:
        return ERROR_MESSAGES[self]


_DECLINED = (
    ErrorCode.DECLINED_GENERIC,
    ErrorCode.DECLINED_INSUFFICIENT_FUNDS,
    ErrorCode.DECLINED_LOST_CARD,
    ErrorCode.DECLINED_STOLEN_CARD,
    ErrorCode.DECLINED_EXPIRED_CARD,
    ErrorCode.DECLINED_PROCESSING_ERROR,
    ErrorCode.DECLINED_DO_NOT_HONOR,
    ErrorCode.DECLINED_INVALID_NUMBER,
    ErrorCode.DECLINED_WALLET,
    ErrorCode.PIN_REQUIRED,
    ErrorCode.INCORRECT_PIN,
)

# Every error code belongs to exactly one status: a result pairs them this way or is invalid.
ERROR_STATUS: dict[ErrorCode, Status] = {
    **dict.fromkeys(_DECLINED, Status.DECLINED),
    ErrorCode.CUSTOMER_CANCELLED: Status.CANCELLED,
    ErrorCode.CASHIER_CANCELLED: Status.CANCELLED,
    ErrorCode.INTERRUPTED: Status.CANCELLED,
    ErrorCode.TIMEOUT: Status.TIMEOUT,
    ErrorCode.QR_EXPIRED: Status.TIMEOUT,
    ErrorCode.GATEWAY_TIMEOUT: Status.PROCESSING,
    ErrorCode.DUPLICATE_IN_PROGRESS: Status.IN_PROGRESS,
    ErrorCode.UNKNOWN_REQUEST: Status.NOT_FOUND,
    **dict.fromkeys(
        (
            ErrorCode.NETWORK_ERROR,
            ErrorCode.PROVIDER_UNAVAILABLE,
            ErrorCode.GATEWAY_ERROR,
            ErrorCode.TERMINAL_NOT_ENROLLED,
            ErrorCode.TERMINAL_NOT_ACTIVE,
            ErrorCode.AUTHENTICATION_FAILED,
            ErrorCode.PERMISSION_DENIED,
            ErrorCode.PAYMENT_NOT_FOUND,
            ErrorCode.REFUND_EXCEEDS_CAPTURED,
            ErrorCode.ILLEGAL_STATE,
            ErrorCode.INVALID_REQUEST,
            ErrorCode.UNSUPPORTED_API_VERSION,
            ErrorCode.REQUEST_ID_REUSED,
            ErrorCode.TERMINAL_BUSY,
            ErrorCode.INTERNAL_ERROR,
        ),
        Status.ERROR,
    ),
}

ERROR_MESSAGES: dict[ErrorCode, str] = {
    ErrorCode.DECLINED_GENERIC: "The card was declined.",
    ErrorCode.DECLINED_INSUFFICIENT_FUNDS: "The card was declined: insufficient funds.",
    ErrorCode.DECLINED_LOST_CARD: "The card was declined: reported lost.",
    ErrorCode.DECLINED_STOLEN_CARD: "The card was declined: reported stolen.",
    ErrorCode.DECLINED_EXPIRED_CARD: "The card was declined: expired.",
    ErrorCode.DECLINED_PROCESSING_ERROR: "The card was declined: issuer processing error.",
    ErrorCode.DECLINED_DO_NOT_HONOR: "The card was declined: do not honor.",
    ErrorCode.DECLINED_INVALID_NUMBER: "The card was declined: invalid card number.",
    ErrorCode.DECLINED_WALLET: "The wallet declined the payment.",
    ErrorCode.PIN_REQUIRED: "The card requires a PIN.",
    ErrorCode.INCORRECT_PIN: "Incorrect PIN.",
    ErrorCode.CUSTOMER_CANCELLED: "The customer cancelled.",
    ErrorCode.CASHIER_CANCELLED: "The cashier cancelled.",
    ErrorCode.INTERRUPTED: "The Credit Card App stopped before the request reached the gateway; nothing was charged.",
    ErrorCode.TIMEOUT: "No card was presented in time.",
    ErrorCode.QR_EXPIRED: "The QR code expired unpaid.",
    ErrorCode.GATEWAY_TIMEOUT: "The gateway has not answered yet; query again.",
    ErrorCode.DUPLICATE_IN_PROGRESS: "A request with this id is still in progress.",
    ErrorCode.UNKNOWN_REQUEST: "No request with this id was received.",
    ErrorCode.NETWORK_ERROR: "The payment gateway is unreachable; nothing was charged.",
    ErrorCode.PROVIDER_UNAVAILABLE: "The card network is unavailable; nothing was charged.",
    ErrorCode.GATEWAY_ERROR: "The payment gateway failed; nothing was charged.",
    ErrorCode.TERMINAL_NOT_ENROLLED: "This terminal is not enrolled.",
    ErrorCode.TERMINAL_NOT_ACTIVE: "This terminal, its store or its merchant may not take payments.",
    ErrorCode.AUTHENTICATION_FAILED: "The gateway refused the terminal's credentials.",
    ErrorCode.PERMISSION_DENIED: "This terminal may not perform this action.",
    ErrorCode.PAYMENT_NOT_FOUND: "No such payment.",
    ErrorCode.REFUND_EXCEEDS_CAPTURED: "The refund exceeds what is left to refund.",
    ErrorCode.ILLEGAL_STATE: "The payment's state does not allow this action.",
    ErrorCode.INVALID_REQUEST: "The request is invalid.",
    ErrorCode.UNSUPPORTED_API_VERSION: f"Unsupported api_version (this app speaks {CONTRACT_VERSION}).",
    ErrorCode.REQUEST_ID_REUSED: "This request id was used for a different request.",
    ErrorCode.TERMINAL_BUSY: "Another request is in progress on this terminal.",
    ErrorCode.INTERNAL_ERROR: "The Credit Card App failed unexpectedly.",
}

# pgw decline / failure codes (``payment.failure_code``) → error codes.
PGW_FAILURE_CODES: dict[str, ErrorCode] = {
    "generic_decline": ErrorCode.DECLINED_GENERIC,
    "declined": ErrorCode.DECLINED_GENERIC,
    "insufficient_funds": ErrorCode.DECLINED_INSUFFICIENT_FUNDS,
    "lost_card": ErrorCode.DECLINED_LOST_CARD,
    "stolen_card": ErrorCode.DECLINED_STOLEN_CARD,
    "expired_card": ErrorCode.DECLINED_EXPIRED_CARD,
    "processing_error": ErrorCode.DECLINED_PROCESSING_ERROR,
    "do_not_honor": ErrorCode.DECLINED_DO_NOT_HONOR,
    "invalid_number": ErrorCode.DECLINED_INVALID_NUMBER,
    "pin_required": ErrorCode.PIN_REQUIRED,
    "incorrect_pin": ErrorCode.INCORRECT_PIN,
    "wallet_declined": ErrorCode.DECLINED_WALLET,
    "qr_expired": ErrorCode.QR_EXPIRED,
    "provider_unavailable": ErrorCode.PROVIDER_UNAVAILABLE,
    "provider_no_record": ErrorCode.PROVIDER_UNAVAILABLE,
}

# pgw problem+json ``code`` (docs/errors.md) → error codes; ``token_*`` and ``assertion_*``
# are AUTHENTICATION_FAILED, anything else GATEWAY_ERROR.
PGW_PROBLEM_CODES: dict[str, ErrorCode] = {
    "payment_not_found": ErrorCode.PAYMENT_NOT_FOUND,
    "illegal_transition": ErrorCode.ILLEGAL_STATE,
    "refund_exceeds_captured": ErrorCode.REFUND_EXCEEDS_CAPTURED,
    "idempotency_key_reused": ErrorCode.REQUEST_ID_REUSED,
    "idempotency_request_in_progress": ErrorCode.DUPLICATE_IN_PROGRESS,
    "validation_failed": ErrorCode.INVALID_REQUEST,
    "malformed_json": ErrorCode.INVALID_REQUEST,
    "card_required": ErrorCode.INVALID_REQUEST,
    "card_not_allowed": ErrorCode.INVALID_REQUEST,
    "capture_exceeds_authorized": ErrorCode.INVALID_REQUEST,
    "unknown_merchant": ErrorCode.TERMINAL_NOT_ACTIVE,
    "unknown_store": ErrorCode.TERMINAL_NOT_ACTIVE,
    "unknown_terminal": ErrorCode.TERMINAL_NOT_ACTIVE,
    "merchant_not_active": ErrorCode.TERMINAL_NOT_ACTIVE,
    "store_not_active": ErrorCode.TERMINAL_NOT_ACTIVE,
    "terminal_not_active": ErrorCode.TERMINAL_NOT_ACTIVE,
    "missing_token": ErrorCode.AUTHENTICATION_FAILED,
    "permission_denied": ErrorCode.PERMISSION_DENIED,
    "terminal_mismatch": ErrorCode.PERMISSION_DENIED,
    "provider_unavailable": ErrorCode.PROVIDER_UNAVAILABLE,
    "provider_timeout": ErrorCode.GATEWAY_TIMEOUT,
}


def error_code_for_pgw_failure(failure_code: str | None) -> ErrorCode:
    """The error code of a declined or failed pgw payment (unknown codes: DECLINED_GENERIC)."""
    return PGW_FAILURE_CODES.get(failure_code or "", ErrorCode.DECLINED_GENERIC)


def error_code_for_pgw_problem(problem_code: str) -> ErrorCode:
    """The error code of a pgw problem+json answer."""
    if problem_code in PGW_PROBLEM_CODES:
        return PGW_PROBLEM_CODES[problem_code]
    if problem_code.startswith(("token_", "assertion_")):
        return ErrorCode.AUTHENTICATION_FAILED
    return ErrorCode.GATEWAY_ERROR


class TenderType(StrEnum):
    CARD = "card"
    QR = "qr"


class EntryMode(StrEnum):
    CONTACTLESS = "contactless"
    CHIP = "chip"
    SWIPE = "swipe"
    QR = "qr"  # results only: how a QR wallet payment was "entered"


CARD_ENTRY_MODES = (EntryMode.CONTACTLESS, EntryMode.CHIP, EntryMode.SWIPE)


class ReceiptMode(StrEnum):
    ASK = "ask"  # the result screen offers to print
    PRINT = "print"  # print the customer copy without asking
    NONE = "none"  # no receipt


class SettlementScope(StrEnum):
    TERMINAL = "terminal"
    STORE = "store"


def mask_pan(last4: str) -> str:
    """The masked card number results carry: ``**** **** **** 4242``."""
    if not re.fullmatch(r"[0-9]{4}", last4):
        raise ValueError("last4 must be four digits")
    return f"**** **** **** {last4}"


# --------------------------------------------------------------------------------------------
# Extras: one spec per field, driving conversion, validation and the docs
# --------------------------------------------------------------------------------------------


class Extra:
    """Extra keys (short snake_case names, readable on an ``am`` command line)."""

    REQUEST_ID = "request_id"
    API_VERSION = "api_version"
    AMOUNT = "amount"
    CURRENCY = "currency"
    TIP_AMOUNT = "tip_amount"
    TENDER_TYPES = "tender_types"
    ENTRY_MODES = "entry_modes"
    TAB_ID = "tab_id"
    NOTE = "note"
    METADATA = "metadata"
    CASHIER_ID = "cashier_id"
    RECEIPT_MODE = "receipt_mode"
    SKIP_RESULT_SCREEN = "skip_result_screen"
    RESULT_SCREEN_TIMEOUT_MS = "result_screen_timeout_ms"
    TIMEOUT_MS = "timeout_ms"
    BROADCAST_WAIT_MS = "broadcast_wait_ms"
    PAYMENT_ID = "payment_id"
    REASON = "reason"
    SCOPE = "scope"
    # results
    ACTION = "action"
    STATUS = "status"
    ERROR_CODE = "error_code"
    ERROR_MESSAGE = "error_message"
    REFUND_ID = "refund_id"
    AUTH_CODE = "auth_code"
    MASKED_PAN = "masked_pan"
    CARD_BRAND = "card_brand"
    TENDER_TYPE = "tender_type"
    ENTRY_MODE = "entry_mode"
    PAYMENT_STATUS = "payment_status"
    COMPLETED_AT = "completed_at"
    SETTLEMENT_ID = "settlement_id"
    PAYMENT_COUNT = "payment_count"
    REFUND_COUNT = "refund_count"
    TOTALS = "totals"


@dataclass(frozen=True)
class ExtraSpec:
    key: str
    type: ExtraType
    doc: str
    required: bool = False
    always: bool = False  # written even when equal to its default
    enum: builtins.type[StrEnum] | None = None
    minimum: int | None = None
    maximum: int | None = None
    pattern: re.Pattern[str] | None = None
    max_length: int | None = None
    text: bool = False  # free text: any Unicode but control characters (tab, newline allowed)
    check: Callable[[Any], str | None] | None = None  # extra rule: a message when invalid


def _meta(key: str, extra_type: ExtraType, doc: str, **options: Any) -> dict[str, ExtraSpec]:
    """Field metadata naming the extra a dataclass field travels as."""
    return {"spec": ExtraSpec(key, extra_type, doc, **options)}


def _specs(cls: type) -> list[tuple[str, ExtraSpec, Any]]:
    """(attribute, spec, default) of a contract dataclass, in declaration order; a field
    without default is a required extra."""
    result = []
    for item in fields(cls):
        spec = item.metadata.get("spec")
        if spec is not None:
            required = item.default is dataclasses.MISSING
            default = None if required else item.default
            result.append((item.name, dataclasses.replace(spec, required=required), default))
    return result


def _is_valid_time(value: str) -> str | None:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return "must be an ISO 8601 date-time"
    return None if parsed.tzinfo is not None else "must carry a timezone"


def _is_json_object(value: str) -> str | None:
    try:
        parsed = json.loads(value)
    except ValueError:
        return "must be a JSON object"
    return None if isinstance(parsed, dict) else "must be a JSON object"


class ContractError(ValueError):
    """A request or result that breaks the contract; becomes an error result when answered."""

    def __init__(
        self,
        message: str,
        *,
        code: ErrorCode = ErrorCode.INVALID_REQUEST,
        extra: str | None = None,
        request_id: str | None = None,
        action: Action | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.extra = extra
        self.request_id = request_id
        self.action = action

    def to_result(self) -> TransactionResult:
        return TransactionResult.failure(
            self.code, self.message, request_id=self.request_id, action=self.action
        )


def _validate_value(spec: ExtraSpec, value: Any) -> None:
    def fail(problem: str) -> ContractError:
        return ContractError(f"{spec.key} {problem}", extra=spec.key)

    items = value if isinstance(value, tuple) else (value,)
    if spec.type in (ExtraType.INT, ExtraType.LONG):
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail(f"must be an integer ({spec.type.java_name})")
        if spec.minimum is not None and value < spec.minimum:
            raise fail(f"must be at least {spec.minimum}")
        if spec.maximum is not None and value > spec.maximum:
            raise fail(f"must be at most {spec.maximum}")
    elif spec.type is ExtraType.BOOLEAN:
        if not isinstance(value, bool):
            raise fail("must be a boolean")
    else:
        if spec.type is ExtraType.STRING_ARRAY:
            if not isinstance(value, tuple) or not value:
                raise fail("must list at least one value")
            if len(set(value)) != len(value):
                raise fail("lists a value twice")
        for item in items:
            if not isinstance(item, str):
                raise fail("must be a string")
            if spec.enum is not None and item not in {member.value for member in spec.enum}:
                choices = ", ".join(member.value for member in spec.enum)
                raise fail(f"must be one of {choices}")
            if not item:
                raise fail("must not be empty (leave it out instead)")
            if spec.max_length is not None and len(item) > spec.max_length:
                raise fail(f"must be at most {spec.max_length} characters")
            if spec.pattern is not None and not spec.pattern.match(item):
                raise fail(f"must match {spec.pattern.pattern}")
            if spec.text:
                if _FORBIDDEN_TEXT.search(item):
                    raise fail("must not contain control characters")
                try:
                    item.encode("utf-8")
                except UnicodeEncodeError:
                    raise fail("must be valid Unicode text") from None
    if spec.check is not None:
        problem = spec.check(value)
        if problem is not None:
            raise fail(problem)


def _to_extra_value(value: Any) -> Any:
    if isinstance(value, tuple):
        return tuple(str(item) for item in value)
    if isinstance(value, StrEnum):
        return value.value
    return value


def _from_extra_value(spec: ExtraSpec, value: Any) -> Any:
    if spec.enum is None:
        return value
    enum = spec.enum
    try:
        if isinstance(value, tuple):
            return tuple(enum(item) for item in value)
        return enum(value)
    except ValueError:
        choices = ", ".join(member.value for member in enum)
        raise ContractError(f"{spec.key} must be one of {choices}", extra=spec.key) from None


def _read_extras(cls: type, extras: Bundle) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, spec, _default in _specs(cls):
        typed = extras.get_typed(spec.key)
        if typed is None or typed.type is ExtraType.NULL:
            if spec.required:
                raise ContractError(
                    f"{spec.key} is required ({spec.type.java_name} extra, "
                    f"am {spec.type.am_flag} {spec.key} …)",
                    extra=spec.key,
                )
            continue
        if typed.type is not spec.type:
            raise ContractError(
                f"{spec.key} must be a {spec.type.java_name} extra "
                f"(am {spec.type.am_flag} {spec.key} …), got {typed.type.java_name} "
                f"({typed.type.am_flag})",
                extra=spec.key,
            )
        values[name] = _from_extra_value(spec, typed.value)
    return values


def _write_extras(obj: Any) -> Bundle:
    extras = Bundle()
    for name, spec, default in _specs(type(obj)):
        value = getattr(obj, name)
        if value is None or (value == default and not spec.always and not spec.required):
            continue
        extras.put(spec.key, TypedValue(spec.type, _to_extra_value(value)))
    return extras


def _validate_fields(obj: Any) -> None:
    for name, spec, _default in _specs(type(obj)):
        value = getattr(obj, name)
        if value is None:
            if spec.required:
                raise ContractError(f"{spec.key} is required", extra=spec.key)
            continue
        _validate_value(spec, _to_extra_value(value))


# --------------------------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------------------------

_ID_DOC = "1-64 of A-Z a-z 0-9 . _ : -"


@dataclass(frozen=True, kw_only=True)
class ContractRequest:
    """Fields common to every action."""

    ACTION: ClassVar[Action]
    # Options that change how a result is shown or delivered, not what is asked: a retry
    # may change them and still be "the same request".
    PRESENTATION_EXTRAS: ClassVar[frozenset[str]] = frozenset(
        {
            Extra.API_VERSION,
            Extra.RECEIPT_MODE,
            Extra.SKIP_RESULT_SCREEN,
            Extra.RESULT_SCREEN_TIMEOUT_MS,
            Extra.TIMEOUT_MS,
            Extra.BROADCAST_WAIT_MS,
        }
    )

    request_id: str = field(
        metadata=_meta(
            Extra.REQUEST_ID,
            ExtraType.STRING,
            f"Idempotency key chosen by the caller ({_ID_DOC}); asking again with the same id "
            "returns the first result instead of acting twice.",
            pattern=ID_PATTERN,
        )
    )
    api_version: int = field(
        default=CONTRACT_VERSION,
        metadata=_meta(
            Extra.API_VERSION,
            ExtraType.INT,
            f"Contract version the caller speaks; {CONTRACT_VERSION} today.",
            always=True,
        ),
    )

    def __post_init__(self) -> None:
        if self.api_version != CONTRACT_VERSION:
            raise ContractError(
                f"api_version {self.api_version} is not supported (this app speaks {CONTRACT_VERSION})",
                code=ErrorCode.UNSUPPORTED_API_VERSION,
                extra=Extra.API_VERSION,
            )
        _validate_fields(self)
        self._check()

    def _check(self) -> None:
        """Rules across fields (subclasses)."""

    def to_extras(self) -> Bundle:
        """Typed extras; fields at their default are left out (the receiver fills them in)."""
        return _write_extras(self)

    @classmethod
    def from_extras(cls, extras: Bundle) -> Self:
        """Read and validate; raises :class:`ContractError` carrying the request id (when it
        is usable) so the error result can echo it."""
        request_id = extras.get_string(Extra.REQUEST_ID)
        usable_id = request_id if request_id and ID_PATTERN.match(request_id) else None
        try:
            version = extras.get_typed(Extra.API_VERSION)
            if (
                version is not None
                and version.type is ExtraType.INT
                and version.value != CONTRACT_VERSION
            ):
                raise ContractError(
                    f"api_version {version.value} is not supported (this app speaks {CONTRACT_VERSION})",
                    code=ErrorCode.UNSUPPORTED_API_VERSION,
                    extra=Extra.API_VERSION,
                )
            return cls(**_read_extras(cls, extras))
        except ContractError as error:
            error.request_id = error.request_id or usable_id
            error.action = error.action or cls.ACTION
            raise

    def to_intent(self, *, via: Literal["activity", "broadcast"] = "activity") -> Intent:
        """The explicit intent for this request: to the transaction activity (for
        ``startActivityForResult`` / ``am start``) or to the result receiver (for an ordered
        broadcast / ``am broadcast``, with :data:`BROADCAST_FLAGS`)."""
        if via == "activity":
            return Intent(
                self.ACTION, component=CREDIT_CARD_TRANSACTION_ACTIVITY, extras=self.to_extras()
            )
        return Intent(
            self.ACTION,
            component=CREDIT_CARD_RESULT_RECEIVER,
            flags=BROADCAST_FLAGS,
            extras=self.to_extras(),
        )

    def fingerprint(self) -> str:
        """What makes two requests "the same" for idempotency: the action and every extra
        except the presentation options (SHA-256 of canonical JSON)."""
        extras = self.to_extras()
        canonical = {
            key: value.to_json()
            for key, value in extras.items()
            if key not in self.PRESENTATION_EXTRAS
        }
        text = json.dumps([self.ACTION.value, canonical], sort_keys=True, ensure_ascii=True)
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, kw_only=True)
class _OperationRequest(ContractRequest):
    """Options of the actions that move money or close the day."""

    cashier_id: str | None = field(
        default=None,
        metadata=_meta(
            Extra.CASHIER_ID,
            ExtraType.STRING,
            f"Who operates the Business App ({_ID_DOC}); recorded on the payment.",
            pattern=ID_PATTERN,
        ),
    )
    metadata: str | None = field(
        default=None,
        metadata=_meta(
            Extra.METADATA,
            ExtraType.STRING,
            "Caller's own state, returned unchanged in the result (≤ 1024 characters).",
            max_length=1024,
            text=True,
        ),
    )
    receipt_mode: ReceiptMode = field(
        default=ReceiptMode.ASK,
        metadata=_meta(
            Extra.RECEIPT_MODE,
            ExtraType.STRING,
            "Customer receipt: ask (default), print, none.",
            enum=ReceiptMode,
        ),
    )
    skip_result_screen: bool = field(
        default=False,
        metadata=_meta(
            Extra.SKIP_RESULT_SCREEN,
            ExtraType.BOOLEAN,
            "Return to the caller at once instead of showing the result screen.",
        ),
    )
    result_screen_timeout_ms: int = field(
        default=0,
        metadata=_meta(
            Extra.RESULT_SCREEN_TIMEOUT_MS,
            ExtraType.LONG,
            "Leave the result screen by itself after this long; 0 (default) waits for a tap, "
            "else 1000-60000.",
            minimum=0,
            maximum=60_000,
            check=lambda v: None if v == 0 or v >= 1000 else "must be 0 or at least 1000",
        ),
    )
    broadcast_wait_ms: int = field(
        default=8000,
        metadata=_meta(
            Extra.BROADCAST_WAIT_MS,
            ExtraType.LONG,
            "Sent as a broadcast: how long the receiver holds the broadcast for the final result "
            "before answering in_progress (then poll QUERY); 0-9000 (under the 10 s foreground "
            "receiver limit), default 8000.",
            minimum=0,
            maximum=9000,
        ),
    )


@dataclass(frozen=True, kw_only=True)
class PaymentRequest(_OperationRequest):
    ACTION: ClassVar[Action] = Action.PAYMENT

    amount: int = field(
        metadata=_meta(
            Extra.AMOUNT,
            ExtraType.LONG,
            f"Amount to charge in minor units of currency (JPY: yen), 1-{MAX_AMOUNT}, tip excluded.",
            minimum=1,
            maximum=MAX_AMOUNT,
        )
    )
    currency: str = field(
        metadata=_meta(
            Extra.CURRENCY,
            ExtraType.STRING,
            "ISO 4217 code, upper case (JPY).",
            pattern=_CURRENCY_PATTERN,
        )
    )
    tip_amount: int = field(
        default=0,
        metadata=_meta(
            Extra.TIP_AMOUNT,
            ExtraType.LONG,
            "Tip in minor units, authorized with the amount; default 0.",
            minimum=0,
            maximum=MAX_AMOUNT,
        ),
    )
    tender_types: tuple[TenderType, ...] = field(
        default=(TenderType.CARD, TenderType.QR),
        metadata=_meta(
            Extra.TENDER_TYPES,
            ExtraType.STRING_ARRAY,
            "Ways the customer may pay: card, qr (default both).",
            enum=TenderType,
        ),
    )
    entry_modes: tuple[EntryMode, ...] = field(
        default=CARD_ENTRY_MODES,
        metadata=_meta(
            Extra.ENTRY_MODES,
            ExtraType.STRING_ARRAY,
            "Card entry modes allowed: contactless, chip, swipe (default all); needs card.",
            enum=EntryMode,
        ),
    )
    tab_id: str | None = field(
        default=None,
        metadata=_meta(
            Extra.TAB_ID,
            ExtraType.STRING,
            f"The smarttab tab this payment settles ({_ID_DOC}).",
            pattern=ID_PATTERN,
        ),
    )
    note: str | None = field(
        default=None,
        metadata=_meta(
            Extra.NOTE,
            ExtraType.STRING,
            "Description shown to the customer and stored on the payment (≤ 500 characters).",
            max_length=500,
            text=True,
        ),
    )
    timeout_ms: int = field(
        default=60_000,
        metadata=_meta(
            Extra.TIMEOUT_MS,
            ExtraType.LONG,
            "How long to wait for the card (or QR payment), 5000-300000, default 60000.",
            minimum=5_000,
            maximum=300_000,
        ),
    )

    def _check(self) -> None:
        if self.amount + self.tip_amount > MAX_AMOUNT:
            raise ContractError(
                f"amount + tip_amount must be at most {MAX_AMOUNT}", extra=Extra.TIP_AMOUNT
            )
        if EntryMode.QR in self.entry_modes:
            raise ContractError(
                "entry_modes takes card modes (contactless, chip, swipe); "
                "allow QR with tender_types",
                extra=Extra.ENTRY_MODES,
            )
        if TenderType.CARD not in self.tender_types and self.entry_modes != CARD_ENTRY_MODES:
            raise ContractError(
                "entry_modes applies to cards, but tender_types does not allow card",
                extra=Extra.ENTRY_MODES,
            )


@dataclass(frozen=True, kw_only=True)
class RefundRequest(_OperationRequest):
    ACTION: ClassVar[Action] = Action.REFUND

    payment_id: str = field(
        metadata=_meta(
            Extra.PAYMENT_ID,
            ExtraType.STRING,
            "The payment to refund (the payment_id of its result).",
            pattern=ID_PATTERN,
        )
    )
    amount: int | None = field(
        default=None,
        metadata=_meta(
            Extra.AMOUNT,
            ExtraType.LONG,
            "Amount to refund in minor units; left out: all that is left to refund.",
            minimum=1,
            maximum=MAX_AMOUNT,
        ),
    )
    currency: str | None = field(
        default=None,
        metadata=_meta(
            Extra.CURRENCY,
            ExtraType.STRING,
            "If given, must be the payment's currency (a safety check).",
            pattern=_CURRENCY_PATTERN,
        ),
    )
    reason: str | None = field(
        default=None,
        metadata=_meta(
            Extra.REASON,
            ExtraType.STRING,
            "Why (≤ 200 characters), stored on the refund.",
            max_length=200,
            text=True,
        ),
    )


@dataclass(frozen=True, kw_only=True)
class VoidRequest(_OperationRequest):
    ACTION: ClassVar[Action] = Action.VOID

    payment_id: str = field(
        metadata=_meta(
            Extra.PAYMENT_ID,
            ExtraType.STRING,
            "The payment to void: authorized and not captured, or a QR payment still waiting.",
            pattern=ID_PATTERN,
        )
    )
    reason: str | None = field(
        default=None,
        metadata=_meta(
            Extra.REASON, ExtraType.STRING, "Why (≤ 200 characters).", max_length=200, text=True
        ),
    )


@dataclass(frozen=True, kw_only=True)
class QueryRequest(ContractRequest):
    """``request_id`` names the request to look up; a query changes nothing and is not
    itself journaled."""

    ACTION: ClassVar[Action] = Action.QUERY


@dataclass(frozen=True, kw_only=True)
class EndOfDayRequest(_OperationRequest):
    ACTION: ClassVar[Action] = Action.END_OF_DAY

    scope: SettlementScope = field(
        default=SettlementScope.TERMINAL,
        metadata=_meta(
            Extra.SCOPE,
            ExtraType.STRING,
            "Close this terminal (default) or its whole store (pgw settlement close).",
            enum=SettlementScope,
        ),
    )


REQUEST_TYPES: dict[Action, type[ContractRequest]] = {
    Action.PAYMENT: PaymentRequest,
    Action.REFUND: RefundRequest,
    Action.VOID: VoidRequest,
    Action.QUERY: QueryRequest,
    Action.END_OF_DAY: EndOfDayRequest,
}


def parse_request(intent: Intent) -> ContractRequest:
    """The request an intent carries, validated; raises :class:`ContractError`."""
    try:
        action = Action(intent.action or "")
    except ValueError:
        request_id = intent.extras.get_string(Extra.REQUEST_ID)
        raise ContractError(
            f"unknown action {intent.action!r}",
            request_id=request_id if request_id and ID_PATTERN.match(request_id) else None,
        ) from None
    return REQUEST_TYPES[action].from_extras(intent.extras)


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TransactionResult:
    """The answer to any action. Which fields are set depends on the action and status."""

    status: Status = field(
        metadata=_meta(
            Extra.STATUS,
            ExtraType.STRING,
            "approved, declined, cancelled, timeout, error, processing, in_progress, not_found.",
            enum=Status,
        )
    )
    request_id: str | None = field(
        default=None,
        metadata=_meta(
            Extra.REQUEST_ID,
            ExtraType.STRING,
            "The request's id (missing only when the request had no usable one).",
            pattern=ID_PATTERN,
        ),
    )
    action: Action | None = field(
        default=None,
        metadata=_meta(
            Extra.ACTION,
            ExtraType.STRING,
            "The action answered (for a query: the action of the request found).",
            enum=Action,
        ),
    )
    error_code: ErrorCode | None = field(
        default=None,
        metadata=_meta(
            Extra.ERROR_CODE,
            ExtraType.STRING,
            "Why it did not succeed (closed list); set for every status but approved.",
            enum=ErrorCode,
        ),
    )
    error_message: str | None = field(
        default=None,
        metadata=_meta(
            Extra.ERROR_MESSAGE,
            ExtraType.STRING,
            "For people (≤ 200 characters); may change, branch on error_code.",
            max_length=200,
            text=True,
        ),
    )
    payment_id: str | None = field(
        default=None,
        metadata=_meta(
            Extra.PAYMENT_ID,
            ExtraType.STRING,
            "pgw payment id (payment, and the payment refunded or voided).",
            pattern=ID_PATTERN,
        ),
    )
    refund_id: str | None = field(
        default=None,
        metadata=_meta(Extra.REFUND_ID, ExtraType.STRING, "pgw refund id.", pattern=ID_PATTERN),
    )
    auth_code: str | None = field(
        default=None,
        metadata=_meta(
            Extra.AUTH_CODE,
            ExtraType.STRING,
            "Issuer authorization code (approved card payments).",
            pattern=_AUTH_CODE_PATTERN,
        ),
    )
    masked_pan: str | None = field(
        default=None,
        metadata=_meta(
            Extra.MASKED_PAN,
            ExtraType.STRING,
            "Masked card number, **** **** **** 4242.",
            pattern=_MASKED_PAN_PATTERN,
        ),
    )
    card_brand: str | None = field(
        default=None,
        metadata=_meta(
            Extra.CARD_BRAND,
            ExtraType.STRING,
            "visa, mastercard, jcb, amex, … (pgw's brand names).",
            pattern=_WORD_PATTERN,
        ),
    )
    tender_type: TenderType | None = field(
        default=None,
        metadata=_meta(Extra.TENDER_TYPE, ExtraType.STRING, "card or qr.", enum=TenderType),
    )
    entry_mode: EntryMode | None = field(
        default=None,
        metadata=_meta(
            Extra.ENTRY_MODE, ExtraType.STRING, "contactless, chip, swipe or qr.", enum=EntryMode
        ),
    )
    amount: int | None = field(
        default=None,
        metadata=_meta(
            Extra.AMOUNT,
            ExtraType.LONG,
            "Amount charged or refunded, minor units (tip excluded).",
            minimum=0,
            maximum=MAX_AMOUNT,
        ),
    )
    tip_amount: int | None = field(
        default=None,
        metadata=_meta(
            Extra.TIP_AMOUNT,
            ExtraType.LONG,
            "Tip charged, minor units.",
            minimum=0,
            maximum=MAX_AMOUNT,
        ),
    )
    currency: str | None = field(
        default=None,
        metadata=_meta(Extra.CURRENCY, ExtraType.STRING, "ISO 4217.", pattern=_CURRENCY_PATTERN),
    )
    payment_status: str | None = field(
        default=None,
        metadata=_meta(
            Extra.PAYMENT_STATUS,
            ExtraType.STRING,
            "pgw's status of the payment afterwards (captured, refunded, voided, …).",
            pattern=_WORD_PATTERN,
        ),
    )
    tab_id: str | None = field(
        default=None,
        metadata=_meta(
            Extra.TAB_ID, ExtraType.STRING, "Echo of the request's tab_id.", pattern=ID_PATTERN
        ),
    )
    metadata: str | None = field(
        default=None,
        metadata=_meta(
            Extra.METADATA,
            ExtraType.STRING,
            "Echo of the request's metadata.",
            max_length=1024,
            text=True,
        ),
    )
    completed_at: str | None = field(
        default=None,
        metadata=_meta(
            Extra.COMPLETED_AT,
            ExtraType.STRING,
            "When the outcome was known, ISO 8601 with offset.",
            max_length=40,
            check=_is_valid_time,
        ),
    )
    settlement_id: str | None = field(
        default=None,
        metadata=_meta(
            Extra.SETTLEMENT_ID,
            ExtraType.STRING,
            "End of day: the pgw settlement batch id.",
            pattern=ID_PATTERN,
        ),
    )
    payment_count: int | None = field(
        default=None,
        metadata=_meta(
            Extra.PAYMENT_COUNT, ExtraType.INT, "End of day: payments in the batch.", minimum=0
        ),
    )
    refund_count: int | None = field(
        default=None,
        metadata=_meta(
            Extra.REFUND_COUNT, ExtraType.INT, "End of day: refunds in the batch.", minimum=0
        ),
    )
    totals: str | None = field(
        default=None,
        metadata=_meta(
            Extra.TOTALS,
            ExtraType.STRING,
            "End of day: the batch totals per currency, JSON as pgw returns them.",
            max_length=3000,
            check=_is_json_object,
        ),
    )

    def __post_init__(self) -> None:
        _validate_fields(self)
        if self.status is Status.APPROVED and self.error_code is not None:
            raise ContractError("an approved result has no error_code", extra=Extra.ERROR_CODE)
        if self.error_code is None and self.status not in (
            Status.APPROVED,
            Status.PROCESSING,
            Status.IN_PROGRESS,
        ):
            raise ContractError(
                f"a {self.status.value} result needs an error_code", extra=Extra.ERROR_CODE
            )
        if self.error_code is not None and ERROR_STATUS[self.error_code] is not self.status:
            raise ContractError(
                f"error_code {self.error_code.value} belongs to status "
                f"{ERROR_STATUS[self.error_code].value}, not {self.status.value}",
                extra=Extra.ERROR_CODE,
            )

    @classmethod
    def failure(
        cls,
        code: ErrorCode,
        message: str | None = None,
        *,
        request_id: str | None = None,
        action: Action | None = None,
        **other: Any,
    ) -> TransactionResult:
        """A result for ``code`` with its status (messages longer than 200 are cut)."""
        text = (message or code.default_message)[:200]
        return cls(
            status=code.status,
            error_code=code,
            error_message=text,
            request_id=request_id,
            action=action,
            **other,
        )

    @property
    def result_code(self) -> ResultCode:
        return RESULT_CODE_BY_STATUS[self.status]

    @property
    def is_final(self) -> bool:
        return self.status.is_final

    def replace(self, **changes: Any) -> TransactionResult:
        return dataclasses.replace(self, **changes)

    # -- (a) activity results -----------------------------------------------------------------

    def to_extras(self) -> Bundle:
        return _write_extras(self)

    @classmethod
    def from_extras(cls, extras: Bundle, *, result_code: int | None = None) -> TransactionResult:
        """Read a result; with ``result_code``, also check that it matches the status."""
        result = cls(**_read_extras(cls, extras))
        _check_result_code(result, result_code)
        return result

    def to_intent(self) -> Intent:
        """The data intent of ``setResult(result_code, data)``."""
        return Intent(extras=self.to_extras())

    # -- (b) broadcast results and (c) logcat lines --------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """Compact form: ``v`` (contract version), ``result_code`` and the set fields."""
        document: dict[str, Any] = {"v": CONTRACT_VERSION}
        for name, spec, _default in _specs(type(self)):
            value = getattr(self, name)
            if value is not None:
                document[spec.key] = _to_extra_value(value)
            if spec.key == Extra.STATUS:
                document["result_code"] = int(self.result_code)
        return document

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> TransactionResult:
        if document.get("v") != CONTRACT_VERSION:
            raise ContractError(f"unsupported result version {document.get('v')!r}")
        values: dict[str, Any] = {}
        for name, spec, _default in _specs(cls):
            if spec.key not in document or document[spec.key] is None:
                continue
            raw = document[spec.key]
            if spec.type is ExtraType.STRING_ARRAY and isinstance(raw, list):
                raw = tuple(raw)
            values[name] = _from_extra_value(spec, raw)
        try:
            result = cls(**values)
        except TypeError as error:
            raise ContractError(f"malformed result: {error}") from None
        code = document.get("result_code")
        _check_result_code(result, code if isinstance(code, int) else None)
        return result

    def to_json_text(self) -> str:
        """One line of ASCII JSON (non-ASCII escaped: safe in logcat, ``am`` output, shells)."""
        return json.dumps(self.to_json(), ensure_ascii=True, separators=(",", ":"))

    def broadcast_result(self) -> tuple[int, str, Bundle]:
        """What the result receiver passes to ``setResult(code, data, extras)``: the data is
        the JSON text, because a real device prints result extras as
        ``Bundle[mParcelledData.dataSize=…]`` and only the data survives ``am``'s output."""
        return int(self.result_code), self.to_json_text(), self.to_extras()

    def log_message(self) -> str:
        """The message of the ``MPAC_RESULT`` logcat line (priority I)."""
        return self.to_json_text()


def _check_result_code(result: TransactionResult, result_code: int | None) -> None:
    if result_code is not None and result_code != result.result_code:
        raise ContractError(
            f"result code {result_code} does not match status {result.status.value} "
            f"({int(result.result_code)})"
        )


def result_from_activity_result(result_code: int, data: Intent | None) -> TransactionResult | None:
    """The result of ``onActivityResult``; None when the result was lost (no data: the Credit
    Card App died or was closed before answering) — ask with QUERY and the same request id."""
    if data is None or Extra.STATUS not in data.extras:
        return None
    return TransactionResult.from_extras(data.extras, result_code=result_code)


@dataclass(frozen=True)
class AmBroadcastOutput:
    """The ``Broadcast completed`` line of ``am broadcast``, parsed."""

    result_code: int
    data: str | None
    extras: str | None  # the printed Bundle, as text


_COMPLETED = re.compile(r"Broadcast completed: result=(-?\d+)")


def parse_am_broadcast_output(output: str) -> AmBroadcastOutput | None:
    """Find and parse ``Broadcast completed: result=N[, data="…"][, extras: Bundle[…]]``.

    Android prints the data raw between quotes; a JSON data (the contract's) is read with a
    JSON decoder, so quotes or ``", extras: "`` inside it cannot confuse the parser.
    """
    match = _COMPLETED.search(output)
    if match is None:
        return None
    code = int(match.group(1))
    line_end = output.find("\n", match.end())
    line = output[match.end() : line_end if line_end >= 0 else len(output)].rstrip("\r")
    data: str | None = None
    rest = line
    if rest.startswith(', data="'):
        body = rest[len(', data="') :]
        if body.startswith("{"):
            try:
                _, end = json.JSONDecoder().raw_decode(body)
            except ValueError:
                end = -1
            if end > 0 and body[end : end + 1] == '"':
                data, rest = body[:end], body[end + 1 :]
            else:
                data, rest = _split_plain_data(body)
        else:
            data, rest = _split_plain_data(body)
    extras: str | None = None
    if rest.startswith(", extras: "):
        extras = rest[len(", extras: ") :]
    return AmBroadcastOutput(code, data, extras)


def _split_plain_data(body: str) -> tuple[str, str]:
    marker = body.rfind('", extras: ')
    if marker >= 0:
        return body[:marker], body[marker + 1 :]
    return (body[:-1], "") if body.endswith('"') else (body, "")


def result_from_broadcast_output(output: str) -> TransactionResult | None:
    """The contract result in ``am broadcast`` output; None when nobody answered (``result=0``
    without data: the Credit Card App is missing, stopped, or the broadcast was not ordered)."""
    parsed = parse_am_broadcast_output(output)
    if parsed is None or parsed.data is None:
        return None
    try:
        document = json.loads(parsed.data)
    except ValueError:
        raise ContractError("broadcast data is not the contract's JSON") from None
    if not isinstance(document, dict):
        raise ContractError("broadcast data is not the contract's JSON")
    result = TransactionResult.from_json(document)
    _check_result_code(result, parsed.result_code)
    return result


def parse_result_log_line(line: str) -> TransactionResult | None:
    """The result in one logcat line of tag ``MPAC_RESULT`` (any ``-v`` format, ``raw``
    included); None for other lines."""
    start = line.find('{"v":')
    if start < 0:
        return None
    if line[:start].strip() and RESULT_LOG_TAG not in line:
        return None  # another tag's line that happens to hold JSON
    try:
        document, _ = json.JSONDecoder().raw_decode(line, start)
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    return TransactionResult.from_json(document)


# --------------------------------------------------------------------------------------------
# The request journal: idempotency and the query action
# --------------------------------------------------------------------------------------------


class KeyValueStore(Protocol):
    """Persistent text key-value storage (the runtime's ``KeyValueDatabase`` is one)."""

    def get(self, key: str) -> str | None: ...

    def put(self, key: str, value: str) -> None: ...

    def delete(self, key: str) -> None: ...

    def items(self, prefix: str = "") -> list[tuple[str, str]]: ...


class JournalState(StrEnum):
    IN_PROGRESS = "in_progress"
    DONE = "done"


@dataclass(frozen=True)
class JournalEntry:
    request_id: str
    action: Action
    fingerprint: str
    owner: str
    state: JournalState
    request: dict[str, Any]  # typed extras JSON, so a resumed request can be re-run
    started_at: str
    updated_at: str
    result: TransactionResult | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "action": self.action.value,
            "fingerprint": self.fingerprint,
            "owner": self.owner,
            "state": self.state.value,
            "request": self.request,
            "started_at": self.started_at,
            "updated_at": self.updated_at,
            "result": self.result.to_json() if self.result is not None else None,
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> JournalEntry:
        result = document.get("result")
        return cls(
            request_id=document["request_id"],
            action=Action(document["action"]),
            fingerprint=document["fingerprint"],
            owner=document["owner"],
            state=JournalState(document["state"]),
            request=dict(document["request"]),
            started_at=document["started_at"],
            updated_at=document["updated_at"],
            result=TransactionResult.from_json(result) if result is not None else None,
        )

    def stored_request(self) -> ContractRequest:
        return REQUEST_TYPES[self.action].from_extras(Bundle.from_json(self.request))


class BeginOutcome(StrEnum):
    NEW = "new"  # first time: do the work, then complete()
    REPLAY = "replay"  # done before: answer the stored result, do nothing
    IN_PROGRESS = "in_progress"  # this process is working on it: answer DUPLICATE_IN_PROGRESS
    RESUME = "resume"  # started by a dead process, or left processing: find out (ask pgw
    # with the same idempotency key, which never charges twice), then complete()
    CONFLICT = "conflict"  # same id, different request: answer REQUEST_ID_REUSED


@dataclass(frozen=True)
class Begin:
    outcome: BeginOutcome
    entry: JournalEntry | None
    answer: TransactionResult | None  # what to answer at once (REPLAY, IN_PROGRESS, CONFLICT)


class RequestJournal:
    """Write-ahead record of every request by id, in the Credit Card App's storage.

    ``begin`` is written before any work (so a kill leaves an ``in_progress`` entry behind),
    ``complete`` when the outcome is known; both are single writes, committed at once. The
    ``owner`` identifies the process instance doing the work: an ``in_progress`` entry of
    another owner was abandoned by a process that died.
    """

    KEY_PREFIX = "request:"

    def __init__(
        self,
        store: KeyValueStore,
        *,
        owner: str,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._store = store
        self.owner = owner
        self._now = now

    def _key(self, request_id: str) -> str:
        return self.KEY_PREFIX + request_id

    def _stamp(self) -> str:
        return self._now().isoformat(timespec="milliseconds")

    def _save(self, entry: JournalEntry) -> JournalEntry:
        self._store.put(self._key(entry.request_id), json.dumps(entry.to_json(), ensure_ascii=True))
        return entry

    def get(self, request_id: str) -> JournalEntry | None:
        text = self._store.get(self._key(request_id))
        return JournalEntry.from_json(json.loads(text)) if text is not None else None

    def begin(self, request: ContractRequest) -> Begin:
        if isinstance(request, QueryRequest):
            raise TypeError("queries are answered with query(), not journaled")
        fingerprint = request.fingerprint()
        entry = self.get(request.request_id)
        if entry is None:
            stamp = self._stamp()
            entry = self._save(
                JournalEntry(
                    request_id=request.request_id,
                    action=request.ACTION,
                    fingerprint=fingerprint,
                    owner=self.owner,
                    state=JournalState.IN_PROGRESS,
                    request=request.to_extras().to_json(),
                    started_at=stamp,
                    updated_at=stamp,
                )
            )
            return Begin(BeginOutcome.NEW, entry, None)
        if entry.fingerprint != fingerprint or entry.action is not request.ACTION:
            return Begin(
                BeginOutcome.CONFLICT,
                entry,
                TransactionResult.failure(
                    ErrorCode.REQUEST_ID_REUSED,
                    request_id=request.request_id,
                    action=request.ACTION,
                ),
            )
        if entry.state is JournalState.DONE and entry.result is not None and entry.result.is_final:
            return Begin(BeginOutcome.REPLAY, entry, entry.result)
        if entry.state is JournalState.IN_PROGRESS and entry.owner == self.owner:
            return Begin(
                BeginOutcome.IN_PROGRESS,
                entry,
                TransactionResult.failure(
                    ErrorCode.DUPLICATE_IN_PROGRESS,
                    request_id=request.request_id,
                    action=request.ACTION,
                ),
            )
        resumed = self._save(
            dataclasses.replace(
                entry,
                owner=self.owner,
                state=JournalState.IN_PROGRESS,
                updated_at=self._stamp(),
            )
        )
        return Begin(BeginOutcome.RESUME, resumed, None)

    def complete(self, request_id: str, result: TransactionResult) -> JournalEntry:
        """Record the outcome (a ``processing`` outcome stays resumable)."""
        entry = self.get(request_id)
        if entry is None:
            raise KeyError(f"no journal entry for request {request_id!r}")
        if result.request_id != request_id:
            result = result.replace(request_id=request_id)
        return self._save(
            dataclasses.replace(
                entry, state=JournalState.DONE, result=result, updated_at=self._stamp()
            )
        )

    def query(self, request_id: str) -> TransactionResult:
        """The QUERY answer: the stored result, in_progress, or not_found."""
        entry = self.get(request_id)
        if entry is None:
            return TransactionResult.failure(
                ErrorCode.UNKNOWN_REQUEST, request_id=request_id, action=Action.QUERY
            )
        if entry.state is JournalState.DONE and entry.result is not None:
            return entry.result
        return TransactionResult(
            status=Status.IN_PROGRESS, request_id=request_id, action=entry.action
        )

    def entries(self) -> list[JournalEntry]:
        return [
            JournalEntry.from_json(json.loads(text))
            for _key, text in self._store.items(self.KEY_PREFIX)
        ]

    def unfinished(self) -> list[JournalEntry]:
        """Entries whose outcome is not final: abandoned by a dead process (``in_progress``
        of another owner) or left ``processing`` — what a restarted app reconciles."""
        return [
            entry
            for entry in self.entries()
            if (entry.state is JournalState.IN_PROGRESS and entry.owner != self.owner)
            or (entry.result is not None and not entry.result.is_final)
        ]

    def prune(self, older_than: dt.datetime) -> int:
        """Forget final entries last updated before ``older_than``; returns how many."""
        removed = 0
        for entry in self.entries():
            final = (
                entry.state is JournalState.DONE
                and entry.result is not None
                and entry.result.is_final
            )
            if final and dt.datetime.fromisoformat(entry.updated_at) < older_than:
                self._store.delete(self._key(entry.request_id))
                removed += 1
        return removed


# --------------------------------------------------------------------------------------------
# Documentation
# --------------------------------------------------------------------------------------------


def _spec_rows(cls: type) -> list[str]:
    # The action's own extras first, then the options every operation shares.
    common = {item.name for item in fields(_OperationRequest)} - {"request_id"}
    specs = sorted(_specs(cls), key=lambda item: item[0] in common)
    rows = []
    for _name, spec, default in specs:
        if spec.required:
            presence = "required"
        elif default is None:
            presence = "optional"
        else:
            shown = (
                ",".join(_to_extra_value(default))
                if isinstance(default, tuple)
                else _to_extra_value(default)
            )
            if isinstance(shown, bool):
                shown = "true" if shown else "false"
            presence = f"default `{shown}`"
        doc = spec.doc.replace("|", "\\|")
        rows.append(
            f"| `{spec.key}` | {spec.type.java_name} | `{spec.type.am_flag}` | {presence} | {doc} |"
        )
    return rows


def extras_reference_markdown() -> str:
    """The extras tables of ``docs/intent-contract.md`` (a test keeps the doc equal to it)."""
    header = ["| extra | type | am flag | presence | meaning |", "|---|---|---|---|---|"]
    parts = []
    for action, cls in REQUEST_TYPES.items():
        parts.append(f"#### `{action.value}` ({cls.__name__})\n")
        parts.append("\n".join(header + _spec_rows(cls)) + "\n")
    parts.append("#### Result extras (TransactionResult)\n")
    parts.append("\n".join(header + _spec_rows(TransactionResult)) + "\n")
    return "\n".join(parts)


if __name__ == "__main__":  # pragma: no cover - prints the tables for docs/intent-contract.md
    print(extras_reference_markdown())
