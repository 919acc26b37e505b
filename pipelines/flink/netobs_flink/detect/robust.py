"""Small pure maths the detectors share: time-based EWMA weights, medians, the sustain/hysteresis gate."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# Mean absolute deviation of a normal variable is sigma * sqrt(2/pi); this turns it back into sigma.
MEAN_ABS_TO_SIGMA = math.sqrt(math.pi / 2.0)


def decay_weight(dt_s: float, half_life_s: float) -> float:
    """Weight of a new observation in an EWMA with the given half-life, for a gap of ``dt_s`` seconds.

    Irregular sampling is handled by the gap: a long gap gives the new observation more weight.
    Returns a value in [0, 1]; a non-positive half-life means "no memory" (1.0).
    """
    if half_life_s <= 0:
        return 1.0
    return 1.0 - math.pow(2.0, -max(dt_s, 0.0) / half_life_s)


def median(values: Sequence[float]) -> float:
    """Median of a non-empty sequence (mean of the two middle values for an even count)."""
    if len(values) == 3:  # the latency detector's default window: no sort, no list, no calls
        a, b, c = values
        # max(min(a, b), min(max(a, b), c)), written as the comparisons min and max make
        low = b if b < a else a
        high = b if b > a else a
        middle = c if c < high else high
        return middle if middle > low else low
    if not values:
        raise ValueError("median of an empty sequence")
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2.0


@dataclass
class Gate:
    """Sustain and hysteresis for one boolean condition, in event time.

    ``update`` is fed the condition "anomalous" (``active``) and "clearly normal" (``clear``; the
    hysteresis band is neither). The gate turns on after ``fire_count`` consecutive anomalous
    evaluations spanning at least ``fire_for_s``, and off after ``resolve_count`` consecutive clear
    evaluations spanning at least ``resolve_for_s``. It returns "fired", "resolved" or None.
    """

    fire_count: int = 1
    fire_for_s: float = 0.0
    resolve_count: int = 1
    resolve_for_s: float = 0.0
    on: bool = False
    streak: int = 0
    streak_since_ms: int = 0

    def update(self, at_ms: int, active: bool, clear: bool) -> str | None:
        counting = clear if self.on else active
        if not counting:
            self.streak = 0
            return None
        if self.streak == 0:
            self.streak_since_ms = at_ms
        self.streak += 1
        need_count, need_s = (self.resolve_count, self.resolve_for_s) if self.on else (self.fire_count, self.fire_for_s)
        if self.streak >= need_count and (at_ms - self.streak_since_ms) / 1000.0 >= need_s:
            self.on = not self.on
            self.streak = 0
            return "fired" if self.on else "resolved"
        return None

    def force(self, on: bool) -> None:
        self.on = on
        self.streak = 0
