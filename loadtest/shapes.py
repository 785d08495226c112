"""``LunchPeakShape``: a restaurant fleet's lunch hour, compressed into the run length.

Counters fill from 11:30, the rush peaks at 12:15 and it is over by 13:00. The 90 minutes are
compressed into ``--run-time`` (default 10 minutes when none is given): the number of users
follows the curve below, scaled so that 12:15 is ``--users`` (the peak), then the run stops.

| clock | 11:30 | 11:45 | 12:00 | 12:15 | 12:30 | 12:45 | 13:00 |
|---|---|---|---|---|---|---|---|
| share of the peak | 25 % | 45 % | 75 % | 100 % | 80 % | 50 % | 25 % |

Fixed-count users (portal, webhooks) are part of that number and start first. The spawn rate
is ``--spawn-rate``, raised when the curve climbs faster than that.

Used only when the locustfile is loaded with ``LOAD_SHAPE=lunch`` (``mpac loadtest run --shape
lunch`` sets it): locust runs any shape class it finds in a locustfile.
"""

from __future__ import annotations

import math
from typing import ClassVar

from locust import LoadTestShape

from loadtest.lunch import DEFAULT_RUN_TIME_S, steepest_rate, users_at


class LunchPeakShape(LoadTestShape):
    use_common_options: ClassVar[bool] = True

    def _settings(self) -> tuple[float, int, float, int]:
        options = self.runner.environment.parsed_options if self.runner else None
        run_time = float(getattr(options, "run_time", 0) or DEFAULT_RUN_TIME_S)
        peak = int(getattr(options, "num_users", 0) or 10)
        spawn_rate = float(getattr(options, "spawn_rate", 0) or 1)
        fixed = 0
        if self.runner is not None:
            fixed = sum(
                int(getattr(cls, "fixed_count", 0) or 0)
                for cls in self.runner.environment.user_classes
            )
        return run_time, peak, spawn_rate, fixed

    def tick(self) -> tuple[int, float] | None:
        run_time, peak, spawn_rate, fixed = self._settings()
        elapsed = self.get_run_time()
        if elapsed >= run_time:
            return None
        users = users_at(elapsed, run_time, peak, floor=fixed + 1)
        rate = max(spawn_rate, math.ceil(steepest_rate(run_time, peak) * 2))
        return users, rate
