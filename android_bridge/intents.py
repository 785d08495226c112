"""Contract requests turned into ``am`` command lines a device's shell reads back intact.

``adb shell`` hands the device's shell (mksh on Android, the emulator's mksh-like parser) one
string; every word that is not plainly safe is single-quoted here, so spaces, quotes, ``;``,
``$``, backticks, newlines and any Unicode arrive as they were sent. Extra types come from the
contract's field specs (``--es``/``--el``/``--ei``/``--ez``/``--esa``), so an amount always
travels as a long.

``am start`` is sent without ``-W``: ``-W`` only waits until the activity is *launched*, never
for its result (which comes through logcat, see :mod:`android_bridge.terminal`), and on a
real device it can hold the command for seconds while the screen animates.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from terminal_emulator.android.bundle import ExtraType, TypedValue, format_am_string_array
from terminal_emulator.contract import (
    BROADCAST_FLAGS,
    CREDIT_CARD_RESULT_RECEIVER,
    CREDIT_CARD_TRANSACTION_ACTIVITY,
    ContractRequest,
)

Via = Literal["broadcast", "activity"]

# Characters no POSIX shell (mksh included) gives a meaning to anywhere in a word. Left out
# on purpose: ``~`` (tilde expansion at a word's start), ``#`` (a comment at a word's start),
# ``*?[]`` (globs), ``!`` (history in interactive shells), ``{}`` (brace expansion in mksh),
# ``=`` (an assignment when it is the first word).
_SAFE_WORD = re.compile(r"[A-Za-z0-9_@%+:,./-]+")


def shell_quote(word: str) -> str:
    """One shell word that the device's shell reads back as exactly ``word``.

    Safe words stay bare (``am``, ``jp.mpac.creditcard/.ResultReceiver``, ``1200``); the
    empty word is ``''``; anything else is single-quoted, a quote inside written ``'\\''``
    (close the quote, an escaped quote, reopen): inside single quotes nothing is special, a
    newline included.
    """
    if not word:
        return "''"
    if _SAFE_WORD.fullmatch(word):
        return word
    return "'" + word.replace("'", "'\\''") + "'"


def command_line(argv: Sequence[str]) -> str:
    return " ".join(shell_quote(word) for word in argv)


def _am_value(key: str, typed: TypedValue) -> str:
    if typed.type is ExtraType.STRING:
        return str(typed.value)
    if typed.type in (ExtraType.INT, ExtraType.LONG):
        return str(int(typed.value))
    if typed.type is ExtraType.BOOLEAN:
        return "true" if typed.value else "false"
    if typed.type is ExtraType.STRING_ARRAY:
        return format_am_string_array(typed.value)
    # The contract uses none of the others; refuse rather than send something am misreads.
    raise ValueError(f"extra {key}: {typed.type.java_name} extras are not sent by the bridge")


def extra_argv(key: str, typed: TypedValue) -> list[str]:
    """One extra as ``am`` options: ``[--el, amount, 1200]``, ``[--esa, k, "a\\,b,c"]``."""
    return [typed.type.am_flag, key, _am_value(key, typed)]


def extras_argv(request: ContractRequest) -> list[str]:
    """``--es request_id … --el amount …``: the request's extras as ``am`` options, each with
    the flag of its Java type (fields at their default are left out, as ``to_extras`` does)."""
    words: list[str] = []
    for key, typed in request.to_extras().items():
        words += extra_argv(key, typed)
    return words


def am_argv(request: ContractRequest, *, via: Via) -> list[str]:
    """``am broadcast -n <receiver> -a <action> -f <flags> <extras…>`` or ``am start -n
    <activity> -a <action> <extras…>`` for ``request``, extras typed by the contract."""
    action = request.ACTION.value
    if via == "broadcast":
        head = [
            "am",
            "broadcast",
            "-n",
            CREDIT_CARD_RESULT_RECEIVER.flatten_short(),
            "-a",
            action,
            "-f",
            f"0x{BROADCAST_FLAGS:08x}",
        ]
    elif via == "activity":
        head = ["am", "start", "-n", CREDIT_CARD_TRANSACTION_ACTIVITY.flatten_short(), "-a", action]
    else:
        raise ValueError(f"via must be 'broadcast' or 'activity', not {via!r}")
    return head + extras_argv(request)


def am_command(request: ContractRequest, *, via: Via) -> str:
    """:func:`am_argv` as the one command line ``adb shell`` sends."""
    return command_line(am_argv(request, via=via))
