"""The services a host can OPEN on this device: the shell in its forms, and ``exec:``.

* ``shell:<cmd>`` (protocol v1, what old hosts and adb-shell's ``shell()`` use): the command's
  stdout and stderr both go to the stream, there is no exit status; the stream's CLSE ends it.
* ``shell,v2[,TERM=...][,raw|,pty]:<cmd>`` (``shell_v2``, what ``adb shell`` uses when the
  device advertises it): both directions carry packets ``[id:1][length:4 LE][data]``; stdin 0,
  stdout 1, stderr 2, exit 3 (one byte, then the device closes), close-stdin 4, window-size 5.
* No command: an interactive shell, one line at a time. With a pty (the default without a
  command, ``adb shell -t``) it echoes, edits (backspace, ^U, ^C, ^D) and shows mksh's prompt
  ``device:/ $ `` (``1|device:/ $ `` after a failure); ``raw`` reads lines silently, like
  ``adb shell < script.sh``. ``exit [N]`` or end of input ends it.
* ``exec:<cmd>``: raw bytes out, like ``adb exec-out`` (stdout and stderr merged, no status).
* Anything else is refused (the host sees CLSE); ``sync:``, ``reboot:``, forwarding are not
  implemented.
"""

from __future__ import annotations

import asyncio
import codecs
import collections
import logging
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass

from terminal_emulator.adb.constants import SHELL_HEADER_SIZE, SHELL_PATH, ShellPacketId
from terminal_emulator.adb.executor import ShellExecutor, ShellSyntaxError, Writer, split_command
from terminal_emulator.adb.redaction import redact
from terminal_emulator.adb.session import AdbStream, DeviceIdentity, ServiceHandler

_LOGGER = logging.getLogger(__name__)

_SHELL_HEADER = struct.Struct("<BI")
#: A host's stdin packet is at most its own MAX_PAYLOAD; a bigger length means garbage.
_MAX_SHELL_PACKET = 1024 * 1024
#: Stdin packets queued for a command before the device stops acknowledging the host.
_STDIN_QUEUE_PACKETS = 16
#: Exit status of a shell whose command raised (a bug in an executor, logged with its trace).
EXIT_INTERNAL_ERROR = 1


@dataclass(frozen=True, slots=True)
class ShellRequest:
    """A parsed ``shell[,args]:command`` / ``exec:command`` service name."""

    command: str
    protocol_v2: bool
    pty: bool
    term: str | None = None


def parse_service(name: str) -> ShellRequest | None:
    """The shell request a service name asks for, or None if it is no shell service."""
    if name.startswith("exec:"):
        return ShellRequest(name[len("exec:") :], protocol_v2=False, pty=False)
    if not name.startswith("shell"):
        return None
    head, separator, command = name.partition(":")
    if not separator:
        return None
    args = head.split(",")
    if args[0] != "shell":
        return None
    protocol_v2, term = False, None
    # adbd's default: a pty for an interactive shell, raw pipes for a command.
    pty = not command
    for arg in args[1:]:
        if arg == "v2":
            protocol_v2 = True
        elif arg == "raw":
            pty = False
        elif arg == "pty":
            pty = True
        elif arg.startswith("TERM="):
            term = arg[len("TERM=") :]
        else:
            _LOGGER.debug("ignoring unknown shell argument %r", arg)
    return ShellRequest(command, protocol_v2=protocol_v2, pty=pty, term=term)


class _RawWriter:
    """Writes straight into the stream (v1 shell, exec)."""

    def __init__(self, stream: AdbStream) -> None:
        self._stream = stream

    async def write(self, data: bytes) -> None:
        if data:
            await self._stream.write(data)


class _PacketWriter:
    """Writes shell-protocol packets of one id, each small enough for one WRTE."""

    def __init__(self, stream: AdbStream, packet_id: ShellPacketId) -> None:
        self._stream = stream
        self._id = packet_id

    async def write(self, data: bytes) -> None:
        room = self._stream.max_payload - SHELL_HEADER_SIZE
        for start in range(0, len(data), room):
            chunk = data[start : start + room]
            await self._stream.write(_SHELL_HEADER.pack(self._id, len(chunk)) + chunk)


class _PtyWriter:
    """A terminal's output processing (``onlcr``): "\\n" leaves as "\\r\\n"."""

    def __init__(self, inner: Writer) -> None:
        self._inner = inner

    async def write(self, data: bytes) -> None:
        await self._inner.write(data.replace(b"\n", b"\r\n"))


async def _raw_stdin(stream: AdbStream) -> AsyncIterator[bytes]:
    while (data := await stream.read()) is not None:
        if data:
            yield data


class _ShellV2Input:
    """Splits the host's shell-protocol packets into stdin data, close-stdin and resizes."""

    def __init__(self, stream: AdbStream) -> None:
        self._stream = stream
        # Bounded: a command that does not read stdin makes the host wait, like a full pipe.
        self._stdin: asyncio.Queue[bytes | None] = asyncio.Queue(_STDIN_QUEUE_PACKETS)
        self._stdin_closed = False
        self.window_size: str | None = None

    async def pump(self) -> None:
        """Read packets until close-stdin or the stream's end, then mark stdin's end."""
        await self._read_packets()
        # Not in a finally: when the command is over the pump is cancelled, and nobody is
        # left to take the end marker from a full queue.
        await self._stdin.put(None)

    async def _read_packets(self) -> None:
        buffer = bytearray()
        while (data := await self._stream.read()) is not None:
            buffer += data
            while len(buffer) >= SHELL_HEADER_SIZE:
                packet_id, length = _SHELL_HEADER.unpack_from(buffer)
                if length > _MAX_SHELL_PACKET:
                    _LOGGER.warning("shell packet of %d bytes; ending stdin", length)
                    return
                if len(buffer) < SHELL_HEADER_SIZE + length:
                    break
                payload = bytes(buffer[SHELL_HEADER_SIZE : SHELL_HEADER_SIZE + length])
                del buffer[: SHELL_HEADER_SIZE + length]
                if packet_id == ShellPacketId.STDIN and payload:
                    await self._stdin.put(payload)
                elif packet_id == ShellPacketId.CLOSE_STDIN:
                    return
                elif packet_id == ShellPacketId.WINDOW_SIZE_CHANGE:
                    # "rowsxcols,xpixelsxypixels"; kept for commands that care.
                    self.window_size = payload.decode("ascii", errors="replace")

    async def stdin(self) -> AsyncIterator[bytes]:
        while not self._stdin_closed:
            data = await self._stdin.get()
            if data is None:
                self._stdin_closed = True
                return
            yield data


async def run_command(
    executor: ShellExecutor,
    command: str,
    stdin: AsyncIterator[bytes] | None,
    stdout: Writer,
    stderr: Writer,
) -> int:
    """``executor.run`` with its status clamped to a byte; a crash is logged and gives 1."""
    try:
        return (await executor.run(command, stdin, stdout, stderr)) & 0xFF
    except (asyncio.CancelledError, ConnectionError):
        raise
    except Exception:
        # Not an Android behaviour: a defect in an emulated command. The host sees a failed
        # command, the log has the trace.
        _LOGGER.exception("shell command %r failed", redact(command))
        await stderr.write(f"{SHELL_PATH}: internal error running the command\n".encode())
        return EXIT_INTERNAL_ERROR


class _Characters:
    """The host's input as characters, with room to push back typeahead."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks.__aiter__()
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._buffer: collections.deque[str] = collections.deque()
        self._ended = False

    async def next(self) -> str | None:
        """The next character, None at end of input."""
        while not self._buffer:
            if self._ended:
                return None
            try:
                chunk = await anext(self._chunks)
            except StopAsyncIteration:
                self._ended = True
                self._buffer.extend(self._decoder.decode(b"", final=True))
                continue
            self._buffer.extend(self._decoder.decode(chunk))
        return self._buffer.popleft()

    @property
    def buffered(self) -> bool:
        return bool(self._buffer)

    def take(self) -> str:
        return self._buffer.popleft()

    def push_back(self, chars: list[str]) -> None:
        self._buffer.extendleft(reversed(chars))


class InteractiveShell:
    """A line-at-a-time shell for ``adb shell`` without a command.

    With ``pty`` it behaves like mksh on a terminal: echo, line editing, prompt, and ^C stops
    the running command (``logcat`` runs until interrupted). Without, it reads lines silently,
    like ``sh`` reading a script from a pipe.
    """

    def __init__(
        self,
        executor: ShellExecutor,
        *,
        pty: bool,
        hostname: str,
        stdout: Writer,
        stderr: Writer,
    ) -> None:
        self._executor = executor
        self._pty = pty
        self._hostname = hostname
        self._stdout = stdout
        self._stderr = stderr
        self._pending: asyncio.Task[str | None] | None = None
        self.status = 0

    async def _prompt(self) -> None:
        if self._pty:
            # Android's mkshrc: PS1 shows the last status when it is not 0.
            failed = f"{self.status}|" if self.status else ""
            await self._stdout.write(f"{failed}{self._hostname}:/ $ ".encode())

    async def _next_char(self, chars: _Characters) -> str | None:
        if self._pending is not None:
            # A read left running by _execute: pushed-back typeahead comes first unless the
            # read already has its character (which then came earlier).
            if not self._pending.done() and chars.buffered:
                return chars.take()
            pending, self._pending = self._pending, None
            return await pending
        return await chars.next()

    async def _execute(self, line: str, chars: _Characters) -> int | None:
        """Run ``line``; the shell's exit status if the line was ``exit [N]``."""
        try:
            argv = split_command(line, last_status=self.status)
        except ShellSyntaxError:
            argv = []  # a list or bad syntax: the executor runs or reports it
        if argv and argv[0] == "exit":
            if len(argv) < 2:
                return self.status
            try:
                return int(argv[1]) & 0xFF
            except ValueError:
                await self._stderr.write(f"{SHELL_PATH}: exit: {argv[1]}: bad number\n".encode())
                self.status = 1
                return None
        if not line.strip():
            return None
        command = asyncio.create_task(
            run_command(self._executor, line, None, self._stdout, self._stderr)
        )
        if not self._pty:
            self.status = await command
            return None
        # On a terminal, keep reading while the command runs: ^C interrupts it (the terminal's
        # SIGINT), anything else is typeahead for the next prompt.
        typeahead: list[str] = []
        try:
            while not command.done():
                if self._pending is None:
                    self._pending = asyncio.create_task(chars.next())
                await asyncio.wait({command, self._pending}, return_when=asyncio.FIRST_COMPLETED)
                if not self._pending.done():
                    continue
                char = self._pending.result()
                self._pending = None
                if char is None:
                    await asyncio.wait({command})  # input ended; let the command finish
                elif char == "\x03":
                    typeahead.clear()  # an interrupt flushes the terminal's input queue
                    command.cancel()
                    await asyncio.wait({command})
                    await self._stdout.write(b"^C\n")
                    self.status = 130
                    return None
                else:
                    typeahead.append(char)
            self.status = command.result()
        finally:
            chars.push_back(typeahead)
            if not command.done():
                command.cancel()
        return None

    async def run(self, chunks: AsyncIterator[bytes]) -> int:
        chars = _Characters(chunks)
        try:
            return await self._run(chars)
        finally:
            if self._pending is not None:
                self._pending.cancel()

    async def _run(self, chars: _Characters) -> int:
        line: list[str] = []
        in_escape = False
        await self._prompt()
        while (char := await self._next_char(chars)) is not None:
            if in_escape:
                # Skip a terminal escape sequence (arrow keys...): ESC [ params final-byte.
                in_escape = char == "[" or not ("@" <= char <= "~") or char == "O"
                continue
            if char in "\r\n":
                if not self._pty and char == "\r":
                    continue  # a CRLF script: the CR is not part of the command
                if self._pty:
                    await self._stdout.write(b"\n")
                exit_status = await self._execute("".join(line), chars)
                line.clear()
                if exit_status is not None:
                    return exit_status
                await self._prompt()
            elif not self._pty:
                line.append(char)
            elif char in "\x7f\b":
                if line:
                    line.pop()
                    await self._stdout.write(b"\b \b")
            elif char == "\x03":  # ^C: drop the line
                line.clear()
                self.status = 130
                await self._stdout.write(b"^C\n")
                await self._prompt()
            elif char == "\x04":  # ^D: end of input on an empty line
                if not line:
                    await self._stdout.write(b"\n")
                    return self.status
            elif char == "\x15":  # ^U: erase the line
                await self._stdout.write(b"\b \b" * len(line))
                line.clear()
            elif char == "\x1b":
                in_escape = True
            elif char >= " " or char == "\t":
                line.append(char)
                await self._stdout.write(char.encode())
        if line and not self._pty:
            # A script whose last line has no newline still runs it, as sh does.
            exit_status = await self._execute("".join(line), chars)
            if exit_status is not None:
                return exit_status
        return self.status


class DeviceServices:
    """Resolves service names to handlers running on ``executor``."""

    def __init__(self, executor: ShellExecutor, identity: DeviceIdentity) -> None:
        self.executor = executor
        self.identity = identity

    def resolve(self, name: str) -> ServiceHandler | None:
        request = parse_service(name)
        if request is None:
            return None

        async def handler(stream: AdbStream) -> None:
            if request.protocol_v2:
                await self._serve_v2(stream, request)
            else:
                await self._serve_v1(stream, request)

        return handler

    def _interactive(
        self, request: ShellRequest, stdout: Writer, stderr: Writer
    ) -> InteractiveShell:
        return InteractiveShell(
            self.executor,
            pty=request.pty,
            hostname=self.identity.product_device,
            stdout=stdout,
            stderr=stderr,
        )

    async def _serve_v1(self, stream: AdbStream, request: ShellRequest) -> None:
        output: Writer = _RawWriter(stream)
        if request.pty:
            output = _PtyWriter(output)
        if not request.command:
            await self._interactive(request, output, output).run(_raw_stdin(stream))
            return
        await run_command(self.executor, request.command, _raw_stdin(stream), output, output)

    async def _serve_v2(self, stream: AdbStream, request: ShellRequest) -> None:
        stdout: Writer = _PacketWriter(stream, ShellPacketId.STDOUT)
        stderr: Writer
        if request.pty:
            # A terminal has one output: stderr arrives on stdout, with CRLF line ends.
            stdout = stderr = _PtyWriter(stdout)
        else:
            stderr = _PacketWriter(stream, ShellPacketId.STDERR)
        packets = _ShellV2Input(stream)
        pump = asyncio.create_task(packets.pump(), name=f"adb:{stream.service}:stdin")
        try:
            if request.command:
                status = await run_command(
                    self.executor, request.command, packets.stdin(), stdout, stderr
                )
            else:
                status = await self._interactive(request, stdout, stderr).run(packets.stdin())
        finally:
            pump.cancel()
        exit_packet = _SHELL_HEADER.pack(ShellPacketId.EXIT, 1) + bytes([status & 0xFF])
        await stream.write(exit_packet)
