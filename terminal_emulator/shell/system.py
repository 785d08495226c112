"""``getprop`` and ``cmd`` (the service dispatcher: ``cmd package ...`` is ``pm``, ``cmd
activity ...`` is ``am``, ``cmd input ...`` is ``input``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from terminal_emulator.adb import ShellCommand, Writer
from terminal_emulator.android import Device
from terminal_emulator.shell.common import Stdin, println

#: What Android's ``cmd`` exits with when it cannot find the service.
EXIT_NO_SERVICE = 20


@dataclass
class Getprop:
    """``getprop`` (every property, ``[name]: [value]`` sorted), ``getprop NAME [DEFAULT]``."""

    device: Device

    async def __call__(self, argv: list[str], stdin: Stdin, stdout: Writer, stderr: Writer) -> int:
        properties = self.device.properties  # thread-safe
        words = argv[1:]
        if words and words[0].startswith("-"):
            await println(stderr, f"getprop: Unknown option '{words[0]}'")
            return 1
        if len(words) > 2:
            await println(stderr, 'getprop: Max 2 arguments (see "getprop --help")')
            return 1
        if not words:
            await stdout.write(properties.getprop_output().encode())
            return 0
        default = words[1] if len(words) > 1 else ""
        await println(stdout, properties.get(words[0], default))
        return 0


@dataclass
class Cmd:
    """``cmd SERVICE ARGS...``: the services are the commands registered here."""

    device: Device
    services: Mapping[str, ShellCommand]

    async def __call__(self, argv: list[str], stdin: Stdin, stdout: Writer, stderr: Writer) -> int:
        words = argv[1:]
        if not words:
            await println(
                stderr,
                "cmd: No service specified; use -l to list all running services. "
                "Use -w to start and wait for a service.",
            )
            return EXIT_NO_SERVICE
        if words[0] == "-l":
            names = sorted(self.services)
            await stdout.write(
                ("Currently running services:\n" + "".join(f"  {n}\n" for n in names)).encode()
            )
            return 0
        if words[0] == "-w":
            words = words[1:]
        service = self.services.get(words[0]) if words else None
        if service is None:
            await println(stderr, f"cmd: Can't find service: {words[0] if words else ''}")
            return EXIT_NO_SERVICE
        return await service(words, stdin, stdout, stderr)
