"""The mksh-like splitter and CommandShell's dispatch (without any ADB around them)."""

from __future__ import annotations

import asyncio
import shlex

import pytest

from terminal_emulator.adb import CommandShell, ShellSyntaxError, parse_command_list, split_command
from tests.terminal_emulator.adb.fakes import COMMANDS


class Collect:
    def __init__(self) -> None:
        self.data = bytearray()

    async def write(self, data: bytes) -> None:
        self.data += data


def run(line: str) -> tuple[int, str, str]:
    stdout, stderr = Collect(), Collect()
    status = asyncio.run(CommandShell(COMMANDS).run(line, None, stdout, stderr))
    return status, stdout.data.decode(), stderr.data.decode()


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("am start -n com.x/.Main", ["am", "start", "-n", "com.x/.Main"]),
        ("  echo   a\tb  ", ["echo", "a", "b"]),
        ("echo 'a b' \"c d\" e\\ f", ["echo", "a b", "c d", "e f"]),
        ("echo ''  \"\"", ["echo", "", ""]),
        ("echo 'it'\\''s'", ["echo", "it's"]),
        ('echo "a \\"b\\" \\\\ \\n \\$"', ["echo", 'a "b" \\ \\n $']),
        ("echo a\\\nb", ["echo", "ab"]),
        ("echo 日本 🙂", ["echo", "日本", "🙂"]),
        ("echo price$ $ a#b # comment", ["echo", "price$", "$", "a#b"]),
        ("echo 'a;b|c&d>e'", ["echo", "a;b|c&d>e"]),
        ("", []),
    ],
)
def test_split_command_quotes_like_mksh(line: str, words: list[str]) -> None:
    assert split_command(line) == words


def test_shlex_quote_round_trips() -> None:
    values = ["plain", "", "it's", '"$HOME"', "a\nb", "*?[]", "\\", "🙂 ü"]
    line = " ".join(shlex.quote(value) for value in values)
    assert split_command(line) == values


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("echo 'open", "no closing quote"),
        ('echo "open', "no closing quote"),
        ("ls | grep x", "'|' is not supported"),
        ("echo x > /sdcard/f", "'>' is not supported"),
        ("sleep 1 &", "'&' is not supported"),
        ("echo $HOME", "'$H' expansion is not supported"),
        ('echo "${x}"', "'${' expansion"),
        ("echo $(id)", "'$(' expansion"),
        ("echo $#", "'$#' expansion"),
        ("echo `id`", "command substitution"),
        ("(echo)", "'(' is not supported"),
        ("; echo", "';' unexpected"),
        ("echo &&", "unexpected end of input"),
    ],
)
def test_unsupported_or_invalid_syntax_is_refused(line: str, message: str) -> None:
    with pytest.raises(ShellSyntaxError, match=message.replace("$", r"\$").replace("(", r"\(")):
        parse_command_list(line)


def test_command_lists() -> None:
    commands = parse_command_list("a 1; b && c || d\n\ne")
    assert [(c.connector, c.argv()) for c in commands] == [
        (";", ["a", "1"]),
        (";", ["b"]),
        ("&&", ["c"]),
        ("||", ["d"]),
        (";", ["e"]),
    ]
    with pytest.raises(ShellSyntaxError):
        split_command("a; b")


def test_command_shell_runs_lists_with_shell_semantics() -> None:
    assert run("echo a; false; echo b") == (0, "a\nb\n", "")
    assert run("false && echo no || echo yes") == (0, "yes\n", "")
    assert run("true || echo no && echo yes") == (0, "yes\n", "")
    assert run("false; exit") == (1, "", "")
    assert run("echo a; exit 300; echo never") == (44, "a\n", "")
    assert run("/system/bin/echo x") == (0, "x\n", "")


def test_last_status_expands_where_mksh_expands_it() -> None:
    # adb-shell's shell() has no exit status: `cmd; echo $?` is how its users get one.
    assert run("false; echo $?") == (0, "1\n", "")
    assert run("nope; echo \"status=$?\" '$?' \\$?") == (
        0,
        "status=127 $? $?\n",
        "/system/bin/sh: nope: inaccessible or not found\n",
    )
    assert run("true; exit $?") == (0, "", "")
    assert split_command("echo x$?y", last_status=3) == ["echo", "x3y"]


def test_builtins_cover_what_adb_itself_sends() -> None:
    bare = CommandShell({})
    stdout, stderr = Collect(), Collect()
    # `adb logcat` runs: export ANDROID_LOG_TAGS="''"; exec logcat ...
    line = "export ANDROID_LOG_TAGS=\"''\" ; exec echo -n x; echo never"
    assert asyncio.run(bare.run(line, None, stdout, stderr)) == 0
    assert (stdout.data, stderr.data) == (b"x", b"")
    assert run("exec nope; echo never") == (
        127,
        "",
        "/system/bin/sh: nope: inaccessible or not found\n",
    )
    assert run(": && true && false || echo fell") == (0, "fell\n", "")


def test_command_shell_reports_like_mksh() -> None:
    assert run("nope x") == (127, "", "/system/bin/sh: nope: inaccessible or not found\n")
    assert run("./nope") == (127, "", "/system/bin/sh: ./nope: inaccessible or not found\n")
    assert run("echo 'x") == (1, "", "/system/bin/sh: syntax error: no closing quote\n")
    assert run("exit x") == (1, "", "/system/bin/sh: exit: x: bad number\n")
