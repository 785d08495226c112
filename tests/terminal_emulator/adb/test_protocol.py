"""The wire protocol, message by message, with a raw host (rawhost.py) over TCP and over the
in-memory transport: handshake, checksums, flow control, shell v2 packets, CLSE handling."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from terminal_emulator.adb import AdbDeviceServer, AdbKeyStore, AdbPublicKey
from terminal_emulator.adb.transport import MemoryTransport, TransportClosed
from tests.terminal_emulator.adb.conftest import HostKey
from tests.terminal_emulator.adb.fakes import Tracker, fake_shell, pattern
from tests.terminal_emulator.adb.rawhost import (
    VERSION_MIN,
    VERSION_SKIP_CHECKSUM,
    RawHost,
    byte_sum,
    shell_packet,
    split_shell_packets,
)

Scenario = Callable[[AdbDeviceServer, RawHost], Awaitable[None]]
BANNER = (
    b"device::ro.product.name=mpac_smartpos;ro.product.model=MPAC_SmartPOS;"
    b"ro.product.device=mpac_smartpos;features=shell_v2,cmd"
)
STDOUT, STDERR, EXIT, CLOSE_STDIN, STDIN = 1, 2, 3, 4, 0


def play(
    scenario: Scenario,
    *,
    transport: str = "tcp",
    keystore: AdbKeyStore | None = None,
    tracker: Tracker | None = None,
    **options: Any,
) -> None:
    """Run ``scenario`` against a fresh device reached over ``transport`` ("tcp"/"memory")."""

    async def main() -> None:
        server = AdbDeviceServer(port=0, executor=fake_shell(tracker), keystore=keystore, **options)
        connection: asyncio.Task[None] | None = None
        if transport == "tcp":
            await server.start()
            host = await RawHost.tcp(server.port)
        else:
            device_end, host_end = MemoryTransport.pair()
            connection = asyncio.create_task(server.serve(device_end))
            host = RawHost(host_end)
        try:
            await asyncio.wait_for(scenario(server, host), 30)
        finally:
            await host.close()
            await server.stop()
            if connection is not None:
                await asyncio.wait_for(connection, 5)

    asyncio.run(main())


async def read_shell_v2(host: RawHost, host_id: int, device_id: int) -> list[tuple[int, bytes]]:
    data, _ = await host.read_until_close(host_id, device_id)
    return split_shell_packets(data)


@pytest.mark.parametrize("transport", ["tcp", "memory"])
def test_cnxn_negotiates_the_lower_version_and_maxdata(transport: str) -> None:
    async def scenario(server: AdbDeviceServer, host: RawHost) -> None:
        reply = await host.connect(version=VERSION_SKIP_CHECKSUM, maxdata=1024 * 1024)
        assert (reply.arg0, reply.arg1) == (VERSION_SKIP_CHECKSUM, 256 * 1024)
        assert reply.data == BANNER
        assert reply.data_check == 0  # no checksums from 0x01000001 on

        # A new CNXN restarts the connection; an old host gets the old rules.
        reply = await host.connect(version=VERSION_MIN, maxdata=8192)
        assert (reply.arg0, reply.arg1) == (VERSION_MIN, 8192)
        assert reply.data_check == byte_sum(reply.data) != 0

    play(scenario, transport=transport, max_payload=256 * 1024)


def test_a_wrong_checksum_breaks_the_connection_only_when_checksums_are_on() -> None:
    async def lenient(server: AdbDeviceServer, host: RawHost) -> None:
        await host.connect(version=VERSION_SKIP_CHECKSUM)
        await host.send(b"OPEN", 1, 0, b"shell:echo ok\0", data_check=0)
        assert (await host.recv()).command == b"OKAY"

    async def strict(server: AdbDeviceServer, host: RawHost) -> None:
        await host.connect(version=VERSION_MIN)
        await host.send(b"OPEN", 1, 0, b"shell:echo ok\0", data_check=12345)
        with pytest.raises(TransportClosed):
            await host.recv()  # adbd drops a connection that fails its checks

    play(lenient)
    play(strict)


def test_a_bad_magic_or_oversized_payload_breaks_the_connection() -> None:
    async def bad_magic(server: AdbDeviceServer, host: RawHost) -> None:
        await host.connect()
        await host.transport.write(b"OKAY" + bytes(20))
        with pytest.raises(TransportClosed):
            await host.recv()

    async def oversized(server: AdbDeviceServer, host: RawHost) -> None:
        await host.connect(maxdata=4096)
        await host.send(b"WRTE", 1, 1, bytes(5000))
        with pytest.raises(TransportClosed):
            await host.recv()

    play(bad_magic)
    play(oversized)


@pytest.mark.parametrize("service", ["sync:", "reboot:", "shellx:echo", "tcp:8080", "shell"])
def test_unknown_services_are_refused_with_clse(service: str) -> None:
    async def scenario(server: AdbDeviceServer, host: RawHost) -> None:
        await host.connect()
        await host.send(b"OPEN", 7, 0, service.encode() + b"\0")
        reply = await host.recv()
        assert (reply.command, reply.arg0, reply.arg1) == (b"CLSE", 0, 7)

    play(scenario)


@pytest.mark.parametrize("transport", ["tcp", "memory"])
def test_one_unacknowledged_wrte_per_stream_and_chunks_of_maxdata(transport: str) -> None:
    async def scenario(server: AdbDeviceServer, host: RawHost) -> None:
        await host.connect(maxdata=4096)
        host_id, device_id = await host.open("shell:big 20000")

        first = await host.recv()
        assert first.command == b"WRTE"
        assert len(first.data) == 4096
        assert await host.nothing_for(0.3)  # no second WRTE before our OKAY
        await host.send(b"OKAY", host_id, device_id)

        rest, sizes = await host.read_until_close(host_id, device_id)
        assert first.data + rest == pattern(20000)
        assert sizes == [4096, 4096, 4096, 3616]

    play(scenario, transport=transport)


def test_streams_of_one_connection_are_independent() -> None:
    async def scenario(server: AdbDeviceServer, host: RawHost) -> None:
        await host.connect()
        slow_host_id, slow_device_id = await host.open("shell,v2,raw:sleep 0.5; echo late")
        started = asyncio.get_running_loop().time()
        output, _ = await host.read_until_close(*await host.open("shell:echo now"))
        assert output == b"now\n"
        assert asyncio.get_running_loop().time() - started < 0.4

        packets = await read_shell_v2(host, slow_host_id, slow_device_id)
        assert packets == [(STDOUT, b"late\n"), (EXIT, b"\x00")]

    play(scenario)


def test_shell_v2_separates_stdout_stderr_and_reports_the_exit_code() -> None:
    async def scenario(server: AdbDeviceServer, host: RawHost) -> None:
        await host.connect()
        packets = await read_shell_v2(host, *await host.open("shell,v2,raw:warn out err 7"))
        assert packets == [(STDOUT, b"out\n"), (STDERR, b"err\n"), (EXIT, b"\x07")]

        host_id, device_id = await host.open("shell,v2,TERM=xterm-256color,raw:nope")
        packets = await read_shell_v2(host, host_id, device_id)
        assert packets == [
            (STDERR, b"/system/bin/sh: nope: inaccessible or not found\n"),
            (EXIT, b"\x7f"),
        ]

    play(scenario)


@pytest.mark.parametrize("transport", ["tcp", "memory"])
def test_shell_v2_stdin_across_writes_until_close_stdin(transport: str) -> None:
    async def scenario(server: AdbDeviceServer, host: RawHost) -> None:
        await host.connect()
        host_id, device_id = await host.open("shell,v2,raw:cat")
        # One stdin packet split over two WRTEs, then a resize and close-stdin in one WRTE.
        wire = shell_packet(STDIN, "héllo stdin\n".encode()) + shell_packet(5, b"24x80,0x0")
        wire += shell_packet(CLOSE_STDIN, b"")
        for part in (wire[:3], wire[3:9], wire[9:]):
            await host.send(b"WRTE", host_id, device_id, part)
            reply = await host.recv()
            assert (reply.command, reply.arg0, reply.arg1) == (b"OKAY", device_id, host_id)

        packets = await read_shell_v2(host, host_id, device_id)
        assert packets == [(STDOUT, "héllo stdin\n".encode()), (EXIT, b"\x00")]

    play(scenario, transport=transport)


def test_shell_v2_pty_merges_stderr_and_ends_lines_with_crlf() -> None:
    async def scenario(server: AdbDeviceServer, host: RawHost) -> None:
        await host.connect()
        packets = await read_shell_v2(host, *await host.open("shell,v2,pty:warn a b 0"))
        assert packets == [(STDOUT, b"a\r\n"), (STDOUT, b"b\r\n"), (EXIT, b"\x00")]

    play(scenario)


def test_v1_shell_and_exec_merge_output_without_exit_code() -> None:
    async def scenario(server: AdbDeviceServer, host: RawHost) -> None:
        await host.connect()
        output, _ = await host.read_until_close(*await host.open("shell:warn out err 3"))
        assert output == b"out\nerr\n"
        output, _ = await host.read_until_close(*await host.open("exec:echo raw"))
        assert output == b"raw\n"

    play(scenario)


def test_interactive_shell_with_a_pty_echoes_and_prompts() -> None:
    async def scenario(server: AdbDeviceServer, host: RawHost) -> None:
        await host.connect()
        host_id, device_id = await host.open("shell:")
        # Typed as a terminal sends it: CR for Enter, DEL to erase, an arrow key's escape code.
        await host.send(b"WRTE", host_id, device_id, b"echo hix\x7f\x1b[A\r")
        await host.send(b"WRTE", host_id, device_id, b"false\rexit\r")

        output = bytearray()
        while True:
            message = await host.recv()
            if message.command == b"CLSE":
                break
            if message.command == b"WRTE":
                output += message.data
                await host.send(b"OKAY", host_id, device_id)
        assert output.decode() == (
            "mpac_smartpos:/ $ echo hix\b \b\r\nhi\r\n"
            "mpac_smartpos:/ $ false\r\n"
            "1|mpac_smartpos:/ $ exit\r\n"
        )

    play(scenario)


def test_ctrl_c_interrupts_the_running_command_and_typeahead_waits() -> None:
    tracker = Tracker()

    async def scenario(server: AdbDeviceServer, host: RawHost) -> None:
        await host.connect()
        host_id, device_id = await host.open("shell,v2,pty:")

        async def type_in(keys: bytes) -> None:
            await host.send(b"WRTE", host_id, device_id, shell_packet(STDIN, keys))

        async def read_all() -> bytes:
            # Like adb: acknowledge the echo and output as it comes, while the user types.
            data = bytearray()
            while True:
                message = await host.recv()
                if message.command == b"CLSE":
                    await host.send(b"CLSE", host_id, device_id)
                    return bytes(data)
                if message.command == b"WRTE":
                    data += message.data
                    await host.send(b"OKAY", host_id, device_id)

        reader = asyncio.create_task(read_all())
        await type_in(b"hang\r")
        await asyncio.wait_for(tracker.started.wait(), 5)
        await type_in(b"echo lost\r")  # typeahead, flushed by the interrupt
        await type_in(b"\x03")  # ^C: like logcat, hang only ends when interrupted
        await asyncio.wait_for(tracker.cancelled.wait(), 5)
        await type_in(b"sleep 0.2\recho ahead\r")  # typeahead: runs after sleep
        await type_in(b"exit\r")

        data = await reader
        packets = split_shell_packets(bytes(data))
        output = b"".join(payload for kind, payload in packets if kind == STDOUT).decode()
        assert output == (
            "mpac_smartpos:/ $ hang\r\n^C\r\n"
            "130|mpac_smartpos:/ $ sleep 0.2\r\n"
            "mpac_smartpos:/ $ echo ahead\r\nahead\r\n"
            "mpac_smartpos:/ $ exit\r\n"
        )
        assert packets[-1] == (EXIT, b"\x00")

    play(scenario, tracker=tracker)


def test_interactive_raw_shell_runs_lines_and_exits_with_their_status() -> None:
    async def scenario(server: AdbDeviceServer, host: RawHost) -> None:
        await host.connect()
        host_id, device_id = await host.open("shell,v2,raw:")
        stdin = shell_packet(STDIN, b"echo a\r\nnope\nexit 5\n")
        await host.send(b"WRTE", host_id, device_id, stdin)
        assert (await host.recv()).command == b"OKAY"
        packets = await read_shell_v2(host, host_id, device_id)
        assert packets == [
            (STDOUT, b"a\n"),
            (STDERR, b"/system/bin/sh: nope: inaccessible or not found\n"),
            (EXIT, b"\x05"),
        ]

    play(scenario)


def test_a_failing_command_reports_an_internal_error() -> None:
    async def scenario(server: AdbDeviceServer, host: RawHost) -> None:
        await host.connect()
        packets = await read_shell_v2(host, *await host.open("shell,v2,raw:crash"))
        assert packets == [
            (STDERR, b"/system/bin/sh: internal error running the command\n"),
            (EXIT, b"\x01"),
        ]

    play(scenario)


@pytest.mark.parametrize("transport", ["tcp", "memory"])
def test_host_clse_stops_the_command_and_is_answered(transport: str) -> None:
    tracker = Tracker()

    async def scenario(server: AdbDeviceServer, host: RawHost) -> None:
        await host.connect()
        host_id, device_id = await host.open("shell,v2,raw:hang")
        await asyncio.wait_for(tracker.started.wait(), 5)

        await host.send(b"CLSE", host_id, device_id)

        reply = await host.recv()
        assert (reply.command, reply.arg0, reply.arg1) == (b"CLSE", device_id, host_id)
        await asyncio.wait_for(tracker.cancelled.wait(), 5)
        # Late messages for the closed stream are ignored; the connection still works.
        await host.send(b"WRTE", host_id, device_id, shell_packet(STDIN, b"x"))
        await host.send(b"CLSE", host_id, device_id)
        output, _ = await host.read_until_close(*await host.open("shell:echo still here"))
        assert output == b"still here\n"

    play(scenario, transport=transport, tracker=tracker)


@pytest.mark.parametrize("how", ["disconnect", "reconnect"])
def test_losing_the_connection_stops_its_commands(how: str) -> None:
    tracker = Tracker()

    async def scenario(server: AdbDeviceServer, host: RawHost) -> None:
        await host.connect()
        await host.open("shell:hang")
        await asyncio.wait_for(tracker.started.wait(), 5)

        if how == "disconnect":
            await host.close()
        else:
            await host.connect()  # a new CNXN: adbd treats it as a new connection
        await asyncio.wait_for(tracker.cancelled.wait(), 5)

    play(scenario, tracker=tracker)


def test_a_signature_from_an_unknown_key_gets_a_fresh_token(
    host_key: HostKey, stranger_key: HostKey
) -> None:
    async def scenario(server: AdbDeviceServer, host: RawHost) -> None:
        await host.send(b"CNXN", VERSION_SKIP_CHECKSUM, 4096, b"host::\0")
        token = await host.recv()
        assert (token.command, token.arg0, len(token.data)) == (b"AUTH", 1, 20)

        # Nothing but AUTH works before authentication.
        await host.send(b"OPEN", 1, 0, b"shell:echo no\0")
        assert await host.nothing_for(0.2)

        await host.send(b"AUTH", 2, 0, stranger_key.signer.Sign(token.data))
        retry = await host.recv()
        assert (retry.command, retry.arg0) == (b"AUTH", 1)
        assert retry.data != token.data  # never the same token twice

        # A signature of the old token by the right key does not count either.
        await host.send(b"AUTH", 2, 0, host_key.signer.Sign(token.data))
        retry = await host.recv()
        assert (retry.command, retry.arg0) == (b"AUTH", 1)

        await host.send(b"AUTH", 2, 0, host_key.signer.Sign(retry.data))
        online = await host.recv()
        assert (online.command, online.arg0, online.arg1) == (b"CNXN", VERSION_SKIP_CHECKSUM, 4096)
        assert online.data == BANNER

    play(scenario, keystore=AdbKeyStore([host_key.public]))


def test_an_offered_key_waits_until_allowed(stranger_key: HostKey) -> None:
    keystore = AdbKeyStore()
    offered: list[AdbPublicKey] = []

    async def scenario(server: AdbDeviceServer, host: RawHost) -> None:
        await host.send(b"CNXN", VERSION_SKIP_CHECKSUM, 4096, b"host::\0")
        await host.recv()
        public_line = stranger_key.path.with_name("adbkey.pub").read_bytes()
        await host.send(b"AUTH", 3, 0, public_line + b"\0")
        assert await host.nothing_for(0.3)  # never CNXN an unknown key
        assert offered == [stranger_key.public]
        assert server.pending_keys() == [stranger_key.public]

        await server.allow_key(stranger_key.public)  # the user taps "Allow"

        online = await host.recv()
        assert online.command == b"CNXN"
        assert keystore.keys == (stranger_key.public,)
        assert server.pending_keys() == []

    play(scenario, keystore=keystore, on_unknown_key=offered.append)
