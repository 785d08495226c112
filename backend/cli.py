"""``mpac``: the command line of the simulator.

Command groups live next to the code they drive; each module in ``COMMAND_GROUPS`` has a
``register(subparsers)`` that adds its subcommands, each with ``handler`` set to a function
taking the parsed arguments and returning the exit status.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

# Modules that contribute subcommands; add a module here to add a command group.
COMMAND_GROUPS: tuple[str, ...] = (
    "backend.runtime.commands",
    "backend.portal.keys.commands",
    "backend.observability.commands",
    "terminal_emulator.commands",
    "android_bridge.commands",
    "loadtest.bench",
    "loadtest.commands",
)

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mpac",
        description="MPAC SmartPOS platform simulator: portal, smarttab and pgw services.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_GROUPS:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        # Ctrl-C outside serving (during migrations, say); cleanup already ran on the way out.
        print("mpac: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
