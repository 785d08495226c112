"""``python -m loadtest.bench_profile OUT <mpac arguments>``: ``mpac`` under cProfile.

``mpac bench --profile OUT`` runs pgw this way; the stats are written to OUT when the service
stops (SIGTERM/SIGINT stop it gracefully). Read them with ``python -m pstats OUT`` or
``loadtest.bench_profile.summary``.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import sys


def summary(path: str, limit: int = 30, sort: str = "tottime") -> str:
    """The ``limit`` most expensive functions of a stats file, as pstats prints them."""
    out = io.StringIO()
    stats = pstats.Stats(path, stream=out)
    stats.strip_dirs().sort_stats(sort).print_stats(limit)
    return out.getvalue()


def main(argv: list[str]) -> int:
    from backend.cli import main as mpac

    out, rest = argv[0], argv[1:]
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        return mpac(rest)
    finally:
        profiler.disable()
        profiler.dump_stats(out)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
