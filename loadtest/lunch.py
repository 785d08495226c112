"""The lunch-hour curve of ``LunchPeakShape`` (``loadtest/shapes.py``), without locust.

| clock | 11:30 | 11:45 | 12:00 | 12:15 | 12:30 | 12:45 | 13:00 |
|---|---|---|---|---|---|---|---|
| share of the peak | 25 % | 45 % | 75 % | 100 % | 80 % | 50 % | 25 % |

The 90 minutes are compressed into the run length; linear between the points.
"""

from __future__ import annotations

from itertools import pairwise

# (minutes after 11:30, share of the peak)
LUNCH_CURVE: tuple[tuple[float, float], ...] = (
    (0.0, 0.25),
    (15.0, 0.45),
    (30.0, 0.75),
    (45.0, 1.0),
    (60.0, 0.8),
    (75.0, 0.5),
    (90.0, 0.25),
)
LUNCH_MINUTES = LUNCH_CURVE[-1][0]
DEFAULT_RUN_TIME_S = 600


def lunch_share(minute: float) -> float:
    """The share of the peak at ``minute`` minutes after 11:30 (linear between the points)."""
    if minute <= LUNCH_CURVE[0][0]:
        return LUNCH_CURVE[0][1]
    for (m0, s0), (m1, s1) in pairwise(LUNCH_CURVE):
        if minute <= m1:
            return s0 + (s1 - s0) * (minute - m0) / (m1 - m0)
    return LUNCH_CURVE[-1][1]


def clock_at(elapsed_s: float, run_time_s: float) -> str:
    """The lunch clock (``12:15``) that ``elapsed_s`` of a compressed run stands for."""
    minutes = 11 * 60 + 30 + LUNCH_MINUTES * min(1.0, elapsed_s / run_time_s)
    return f"{int(minutes // 60):02d}:{int(minutes % 60):02d}"


def users_at(elapsed_s: float, run_time_s: float, peak: int, floor: int = 1) -> int:
    minute = LUNCH_MINUTES * min(1.0, elapsed_s / run_time_s)
    return max(floor, round(peak * lunch_share(minute)))


def steepest_rate(run_time_s: float, peak: int) -> float:
    """Users per second the curve's steepest segment needs."""
    steepest = max(abs(s1 - s0) / (m1 - m0) for (m0, s0), (m1, s1) in pairwise(LUNCH_CURVE))
    seconds_per_minute = run_time_s / LUNCH_MINUTES
    return peak * steepest / seconds_per_minute
