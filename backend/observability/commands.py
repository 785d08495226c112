"""``mpac otlp-sink``: see traces without a collector (docs/observability.md)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from backend.observability.otlp_sink import DESCRIPTION, HELP, add_arguments, cmd_otlp_sink

    parser = subparsers.add_parser("otlp-sink", help=HELP, description=DESCRIPTION)
    add_arguments(parser)
    parser.set_defaults(handler=cmd_otlp_sink)
