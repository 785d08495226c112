"""``pm`` (and ``cmd package``): list packages, their paths, clear their data; Android 12's
``PackageManagerShellCommand`` wording.

* ``pm list packages [-f] [-d] [-e] [-s] [-3] [-i] [-l] [-u] [-U] [--show-versioncode]
  [--user N] [FILTER]`` -> ``package:[PATH=]NAME[ versionCode:N][ installer=null][ uid:N]``
* ``pm path PKG`` -> ``package:/data/app/...`` (unknown package: nothing, exit 1)
* ``pm clear PKG`` -> ``Success`` (unknown package: ``Failed`` on stderr, exit 1)
"""

from __future__ import annotations

from dataclasses import dataclass

from terminal_emulator.adb import Writer
from terminal_emulator.android import Device, PackageNotFoundError
from terminal_emulator.shell.common import (
    EXIT_SHELL_COMMAND_FAILED,
    Args,
    JavaException,
    Stdin,
    call_on_device,
    println,
    write_lines,
)

_PM_FRAME = "com.android.server.pm.PackageManagerShellCommand.onCommand(PackageManagerShellCommand.java:194)"


@dataclass
class Pm:
    device: Device

    async def __call__(self, argv: list[str], stdin: Stdin, stdout: Writer, stderr: Writer) -> int:
        return await self.run(argv[1:], stdout, stderr)

    async def run(self, words: list[str], stdout: Writer, stderr: Writer) -> int:
        args = Args(words, _PM_FRAME)
        command = args.next_arg()
        if command is None or command in ("help", "-h"):
            await stdout.write(PM_HELP.encode())
            return EXIT_SHELL_COMMAND_FAILED
        handler = {
            "list": self.list,
            "path": self.path,
            "clear": self.clear,
        }.get(command)
        if handler is None:
            await println(stdout, f"Unknown command: {command}")
            return EXIT_SHELL_COMMAND_FAILED
        try:
            return await handler(args, stdout, stderr)
        except JavaException as error:
            await stderr.write(error.text(command).encode())
            return EXIT_SHELL_COMMAND_FAILED

    async def list(self, args: Args, stdout: Writer, stderr: Writer) -> int:
        kind = args.next_arg()
        if kind is None:
            await println(stdout, "Error: didn't specify type of data to list")
            return EXIT_SHELL_COMMAND_FAILED
        if kind not in ("packages", "package"):
            await println(stdout, f"Error: unknown list type '{kind}'")
            return EXIT_SHELL_COMMAND_FAILED
        show_path = system_only = third_party = disabled_only = show_installer = False
        show_version = show_uid = False
        while (option := args.next_option()) is not None:
            if option == "-f":
                show_path = True
            elif option == "-s":
                system_only = True
            elif option == "-3":
                third_party = True
            elif option == "-d":
                disabled_only = True  # nothing is ever disabled here
            elif option == "-i":
                show_installer = True
            elif option == "-U":
                show_uid = True
            elif option == "--show-versioncode":
                show_version = True
            elif option in ("-e", "-l", "-u", "-a", "--apex-only"):
                pass  # every package is enabled; -u/-a/-l change nothing here; no APEX
            elif option in ("--user", "--uid"):
                args.next_arg_required()
            else:
                await println(stdout, f"Error: Unknown option: {option}")
                return EXIT_SHELL_COMMAND_FAILED
        name_filter = args.next_arg()
        device = self.device
        packages = await call_on_device(device, device.pm.packages)
        lines = []
        for package in packages:
            if name_filter and name_filter not in package.name:
                continue
            if (system_only and not package.manifest.system) or (
                third_party and package.manifest.system
            ):
                continue
            if disabled_only:
                continue  # nothing is ever disabled here
            line = "package:"
            if show_path:
                line += f"{package.code_path}="
            line += package.name
            if show_version:
                line += f" versionCode:{package.manifest.version_code}"
            if show_installer:
                line += "  installer=null"
            if show_uid:
                line += f" uid:{package.uid}"
            lines.append(line)
        await write_lines(stdout, lines)
        return 0

    async def path(self, args: Args, stdout: Writer, stderr: Writer) -> int:
        while (option := args.next_option()) is not None:
            if option == "--user":
                args.next_arg_required()
            else:
                await println(stderr, f"Error: Unknown option: {option}")
                return EXIT_SHELL_COMMAND_FAILED
        package = args.next_arg()
        if package is None:
            await println(stderr, "Error: no package specified")
            return 1
        device = self.device
        try:
            lines = await call_on_device(device, lambda: device.pm.path_lines(package))
        except PackageNotFoundError:
            return 1
        await write_lines(stdout, lines)
        return 0

    async def clear(self, args: Args, stdout: Writer, stderr: Writer) -> int:
        while (option := args.next_option()) is not None:
            if option == "--user":
                args.next_arg_required()
            elif option == "--cache-only":
                pass
            else:
                await println(stderr, f"Error: Unknown option: {option}")
                return 1
        package = args.next_arg()
        if package is None:
            await println(stderr, "Error: no package specified")
            return 1
        device = self.device
        try:
            await call_on_device(device, lambda: device.clear_app_data(package))
        except PackageNotFoundError:
            await println(stderr, "Failed")
            return 1
        await println(stdout, "Success")
        return 0


PM_HELP = """\
Package manager (package) commands:
  help
    Print this help text.
  path [--user USER_ID] PACKAGE
    Print the path to the .apk of the given PACKAGE.
  list packages [-f] [-d] [-e] [-s] [-3] [-i] [-l] [-u] [-U]
      [--show-versioncode] [--apex-only] [--uid UID] [--user USER_ID] [FILTER]
    Prints all packages; optionally only those whose name contains
    the text in FILTER.  Options are:
      -f: see their associated file
      -d: filter to only show disabled packages
      -e: filter to only show enabled packages
      -s: filter to only show system packages
      -3: filter to only show third party packages
      -i: see the installer for the packages
      -U: also show the package UID
      --show-versioncode: also show the version code
  clear [--user USER_ID] [--cache-only] PACKAGE
    Deletes data associated with a package.
"""
