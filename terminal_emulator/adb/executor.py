"""What the device's shell runs: the ``ShellExecutor`` interface and a small mksh-like parser.

The ADB services hand every command line (``adb shell <line>``) to a ``ShellExecutor``. The
emulator's real commands (``am``, ``pm``, ``getprop``, ``logcat``, ``input``...) live elsewhere
and implement this interface; ``CommandShell`` is a ready dispatcher for them: it parses the
line like Android's mksh would for the subset below and calls the command by name.

Supported shell syntax: words split on blanks; ``'single'`` and ``"double"`` quotes; backslash
escapes; ``;``, newlines, ``&&`` and ``||``; ``#`` comments; ``$?`` (so adb-shell users, whose
protocol has no exit status, can run ``cmd; echo $?``). Not supported, and refused with a
syntax error rather than silently misread: pipes, redirections, background ``&``, subshells,
command substitution, other ``$`` expansions (``$VAR``, ``${...}``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from terminal_emulator.adb.constants import SHELL_PATH

#: Exit status of a command the shell cannot find (as mksh).
EXIT_NOT_FOUND = 127
#: Exit status after a syntax error (mksh exits 1 when ``sh -c`` cannot parse its argument).
EXIT_SYNTAX_ERROR = 1


class Writer(Protocol):
    """Where a command's stdout or stderr goes; ``write`` waits while the host is behind."""

    async def write(self, data: bytes) -> None: ...


class ShellExecutor(Protocol):
    """Runs one shell command line and returns its exit status (0-255).

    ``stdin`` yields what the host types or pipes in, and ends when the host closes its input;
    it is None when the command has no input stream (e.g. a line typed into the interactive
    shell, whose input the shell itself reads). The executor is cancelled (CancelledError) if
    the host closes the stream first, like a process getting SIGHUP.
    """

    async def run(
        self,
        command: str,
        stdin: AsyncIterator[bytes] | None,
        stdout: Writer,
        stderr: Writer,
    ) -> int: ...


def not_found_message(name: str) -> bytes:
    """mksh's wording for an unknown command, e.g. ``/system/bin/sh: foo: inaccessible or not
    found``; host tooling matches on it."""
    return f"{SHELL_PATH}: {name}: inaccessible or not found\n".encode()


class ShellSyntaxError(ValueError):
    """The line is not valid shell, or uses syntax this shell does not implement."""


class _LastStatus:
    """``$?`` inside a word: replaced by the previous command's status when the command runs."""

    def __repr__(self) -> str:
        return "$?"


_LAST_STATUS = _LastStatus()
_Word = tuple[str | _LastStatus, ...]


@dataclass(frozen=True, slots=True)
class SimpleCommand:
    """One command of a list: its words, and the operator that joined it to the previous one
    (``;`` for the first, ``&&`` / ``||`` run it only if the previous status was 0 / not 0)."""

    words: tuple[_Word, ...]
    connector: str = ";"

    def argv(self, last_status: int = 0) -> list[str]:
        """The words, with ``$?`` expanded to ``last_status``."""
        status = str(last_status)
        return [
            "".join(status if part is _LAST_STATUS else str(part) for part in word)
            for word in self.words
        ]


_BLANKS = " \t"
_OPERATOR_CHARS = ";&|<>()"
_SUPPORTED_OPERATORS = (";", "&&", "||")
# In double quotes, a backslash only escapes these (POSIX 2.2.3); elsewhere it stays.
_DQUOTE_ESCAPABLE = '$`"\\\n'
# "$" followed by one of these starts an expansion in a real shell; alone it is literal.
_EXPANSION_STARTS = set("{(?#@*!$-_0123456789") | set(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
_NEWLINE = "\n"


def _check_dollar(line: str, index: int) -> None:
    following = line[index + 1 : index + 2]
    if following and following in _EXPANSION_STARTS:
        raise ShellSyntaxError(f"'${following}' expansion is not supported by this shell")


def _tokenize(line: str) -> list[_Word | str]:
    """Words (tuples of text and ``$?`` parts) and operators (str; a newline is "\\n")."""
    tokens: list[_Word | str] = []
    word: list[str | _LastStatus] = []
    in_word = False  # distinguishes the empty word '' from no word at all

    def end_word() -> None:
        nonlocal in_word
        if in_word:
            tokens.append(tuple(word))
            word.clear()
            in_word = False

    index, length = 0, len(line)
    while index < length:
        char = line[index]
        if char in _BLANKS:
            end_word()
            index += 1
        elif char == _NEWLINE:
            end_word()
            tokens.append(_NEWLINE)
            index += 1
        elif char == "#" and not in_word:
            newline = line.find(_NEWLINE, index)
            index = length if newline < 0 else newline
        elif char == "\\":
            if index + 1 < length:
                if line[index + 1] != _NEWLINE:  # backslash-newline joins lines
                    word.append(line[index + 1])
                    in_word = True
                index += 2
            else:
                word.append("\\")
                in_word = True
                index += 1
        elif char == "'":
            close = line.find("'", index + 1)
            if close < 0:
                raise ShellSyntaxError("no closing quote")
            word.append(line[index + 1 : close])
            in_word = True
            index = close + 1
        elif char == '"':
            index += 1
            in_word = True
            while True:
                if index >= length:
                    raise ShellSyntaxError("no closing quote")
                char = line[index]
                if char == '"':
                    index += 1
                    break
                if char == "\\" and index + 1 < length and line[index + 1] in _DQUOTE_ESCAPABLE:
                    if line[index + 1] != _NEWLINE:
                        word.append(line[index + 1])
                    index += 2
                    continue
                if char == "`":
                    raise ShellSyntaxError("command substitution is not supported by this shell")
                if char == "$" and line[index + 1 : index + 2] == "?":
                    word.append(_LAST_STATUS)
                    index += 2
                    continue
                if char == "$":
                    _check_dollar(line, index)
                word.append(char)
                index += 1
        elif char == "`":
            raise ShellSyntaxError("command substitution is not supported by this shell")
        elif char == "$" and line[index + 1 : index + 2] == "?":
            word.append(_LAST_STATUS)
            in_word = True
            index += 2
        elif char == "$":
            _check_dollar(line, index)
            word.append(char)
            in_word = True
            index += 1
        elif char in _OPERATOR_CHARS:
            end_word()
            operator = line[index : index + 2]
            if operator not in ("&&", "||", ";;", "<<", ">>", "<&", ">&", ">|", "&>", "|&"):
                operator = char
            if operator not in _SUPPORTED_OPERATORS:
                raise ShellSyntaxError(f"'{operator}' is not supported by this shell")
            tokens.append(operator)
            index += len(operator)
        else:
            word.append(char)
            in_word = True
            index += 1
    end_word()
    return tokens


def parse_command_list(line: str) -> list[SimpleCommand]:
    """The commands of ``line`` in order; raises ShellSyntaxError like mksh would refuse it."""
    commands: list[SimpleCommand] = []
    words: list[_Word] = []
    connector = ";"
    dangling: str | None = None  # an operator still waiting for its right-hand command
    for token in _tokenize(line):
        if isinstance(token, tuple):
            words.append(token)
            continue
        text = token
        if not words:
            # A blank line is nothing (and "a &&<newline> b" continues the list), but an
            # operator with no command before it ("&& x", "a;;", "; x") is an error, as in mksh.
            if text == _NEWLINE:
                continue
            raise ShellSyntaxError(f"'{text}' unexpected")
        commands.append(SimpleCommand(tuple(words), connector))
        words = []
        connector = ";" if text == _NEWLINE else text
        dangling = text
    if words:
        commands.append(SimpleCommand(tuple(words), connector))
    elif dangling in ("&&", "||"):
        raise ShellSyntaxError(f"unexpected end of input after '{dangling}'")
    return commands


def split_command(line: str, *, last_status: int = 0) -> list[str]:
    """The words of one simple command (``am start -n 'a b'`` -> [am, start, -n, "a b"]).

    Quotes and backslashes work as in mksh, ``$?`` becomes ``last_status``; a line with ``;``,
    ``&&`` or ``||`` (several commands) raises ShellSyntaxError: see ``parse_command_list``.
    """
    commands = parse_command_list(line)
    if len(commands) > 1:
        raise ShellSyntaxError("expected one command, found a command list")
    return commands[0].argv(last_status) if commands else []


class ShellCommand(Protocol):
    """A command ``CommandShell`` can run: its argv (argv[0] is its name) and streams."""

    async def __call__(
        self,
        argv: list[str],
        stdin: AsyncIterator[bytes] | None,
        stdout: Writer,
        stderr: Writer,
    ) -> int: ...


_BIN_DIRS = ("/system/bin/", "/system/xbin/", "/vendor/bin/")


class CommandShell:
    """A ShellExecutor that parses lines (see module doc) and runs commands by name.

    Built in, as in mksh: ``exit [N]``, ``exec CMD...`` (runs CMD and ends the line, as
    ``adb logcat`` sends ``export ANDROID_LOG_TAGS=...; exec logcat``), ``export`` (accepted
    and ignored: nothing here expands variables), ``true``, ``false``, ``:`` and ``echo``
    (registered commands of those names win). Unknown commands print mksh's "inaccessible or
    not found" and give 127; a line this shell cannot parse prints
    ``/system/bin/sh: syntax error: ...`` and gives 1. ``/system/bin/echo`` finds the command
    registered as ``echo``.
    """

    def __init__(self, commands: Mapping[str, ShellCommand]) -> None:
        self.commands = dict(commands)

    def _lookup(self, name: str) -> ShellCommand | None:
        for directory in _BIN_DIRS:
            if name.startswith(directory):
                name = name[len(directory) :]
                break
        if "/" in name:
            return None
        return self.commands.get(name) or _BUILTINS.get(name)

    async def run(
        self,
        command: str,
        stdin: AsyncIterator[bytes] | None,
        stdout: Writer,
        stderr: Writer,
    ) -> int:
        try:
            commands = parse_command_list(command)
        except ShellSyntaxError as exc:
            await stderr.write(f"{SHELL_PATH}: syntax error: {exc}\n".encode())
            return EXIT_SYNTAX_ERROR
        status = 0
        for simple in commands:
            # "a && b || c" groups left to right: each operator looks at the last status.
            if (simple.connector == "&&" and status != 0) or (
                simple.connector == "||" and status == 0
            ):
                continue
            argv = simple.argv(status)
            if argv[0] == "exit":
                return await _exit_status(argv, status, stderr)
            replaces_shell = argv[0] == "exec"
            if replaces_shell:
                argv = argv[1:]
                if not argv:
                    continue  # "exec" alone only redirects, which this shell does not do
            status = await self._run_one(argv, stdin, stdout, stderr)
            if replaces_shell:
                return status
        return status

    async def _run_one(
        self,
        argv: list[str],
        stdin: AsyncIterator[bytes] | None,
        stdout: Writer,
        stderr: Writer,
    ) -> int:
        handler = self._lookup(argv[0])
        if handler is None:
            await stderr.write(not_found_message(argv[0]))
            return EXIT_NOT_FOUND
        return (await handler(argv, stdin, stdout, stderr)) & 0xFF


async def _exit_status(argv: list[str], last_status: int, stderr: Writer) -> int:
    if len(argv) < 2:
        return last_status
    try:
        return int(argv[1]) & 0xFF
    except ValueError:
        await stderr.write(f"{SHELL_PATH}: exit: {argv[1]}: bad number\n".encode())
        return 1


async def _succeed(
    argv: list[str], stdin: AsyncIterator[bytes] | None, stdout: Writer, stderr: Writer
) -> int:
    return 0


async def _fail(
    argv: list[str], stdin: AsyncIterator[bytes] | None, stdout: Writer, stderr: Writer
) -> int:
    return 1


async def _echo(
    argv: list[str], stdin: AsyncIterator[bytes] | None, stdout: Writer, stderr: Writer
) -> int:
    words = argv[1:]
    newline = True
    if words and words[0] == "-n":
        words, newline = words[1:], False
    await stdout.write((" ".join(words) + ("\n" if newline else "")).encode())
    return 0


_BUILTINS: dict[str, ShellCommand] = {
    "true": _succeed,
    ":": _succeed,
    "export": _succeed,
    "false": _fail,
    "echo": _echo,
}
