"""Error-rate and packet-loss anomaly for one series: a windowed rate against a learned baseline rate.

Each result contributes a value in [0, 1]: 1.0/0.0 for failed/succeeded (error rate) or the ICMP loss
ratio (packet loss). The detector keeps the results of the last ``window_s`` seconds and a slow EWMA of
the rate (the series' normal, learnt over ``warmup_samples`` results before any alert). It fires when the
window holds at least ``min_samples`` results and its mean reaches ``max(min_rate, baseline + margin)``,
and resolves when the mean drops below half of that bound. While firing, the baseline does not learn
(an outage must not become normal).
"""

from __future__ import annotations

import bisect
import math
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field

from netobs_flink.detect.alert import FIRING, RESOLVED, AlertEvent
from netobs_flink.detect.robust import decay_weight

RESUM_EVERY = 1024  # samples between exact recomputations of a rate window's running sum


@dataclass(frozen=True)
class RateConfig:
    kind: str = "error_rate"  # or "packet_loss"
    window_s: float = 600.0
    min_samples: int = 6
    min_rate: float = 0.3
    warmup_samples: int = 20
    margin: float = 0.15
    baseline_half_life_s: float = 86400.0
    severity: str = "warning"

    def __post_init__(self) -> None:
        if self.kind not in ("error_rate", "packet_loss"):
            raise ValueError("kind must be error_rate or packet_loss")
        if not 0.0 < self.min_rate <= 1.0 or self.window_s <= 0 or self.min_samples < 1:
            raise ValueError("min_rate must be in (0, 1], window_s > 0, min_samples >= 1")


@dataclass
class RateState:
    # The window's results in event-time order (ties in arrival order): times and values side by side,
    # as arrays of machine numbers (a window holds hundreds of results; they pickle as two byte strings).
    times_ms: array[int] = field(default_factory=lambda: array("q"))
    values: array[float] = field(default_factory=lambda: array("d"))
    # Sum of ``values``, kept as results come and go (NaN: not known, e.g. a state from before it existed;
    # it is recomputed then and every RESUM_EVERY samples, so rounding cannot drift).
    total: float = math.nan
    baseline: float = 0.0
    samples: int = 0
    last_ms: int = 0
    firing_since_ms: int | None = None
    bound: float = 0.0


class RateDetector:
    """Windowed rate detector for one series; ``observe(at_ms, value)`` returns alert transitions."""

    def __init__(
        self, config: RateConfig | None = None, labels: Mapping[str, str] | None = None, state: RateState | None = None
    ) -> None:
        self.config = config or RateConfig()
        self.labels = dict(labels or {})
        self.state = state or RateState()

    def observe(self, at_ms: int, value: float, trace_id: str | None = None) -> list[AlertEvent]:
        c, s = self.config, self.state
        value = min(max(value, 0.0), 1.0)
        if s.times_ms and at_ms < s.times_ms[-1] - c.window_s * 1000:
            return []  # older than the whole window: nothing it could change
        at = bisect.bisect_right(s.times_ms, at_ms)  # usually the end: results come in order
        s.times_ms.insert(at, at_ms)
        s.values.insert(at, value)
        expired = bisect.bisect_right(s.times_ms, s.times_ms[-1] - c.window_s * 1000)
        s.samples += 1
        if s.total != s.total or s.samples % RESUM_EVERY == 0:  # NaN, or time to start afresh
            if expired:
                del s.times_ms[:expired], s.values[:expired]
            s.total = sum(s.values)
        else:  # a window holds hundreds of results: no sum over all of them for each one
            s.total += value
            if expired:
                s.total -= sum(s.values[:expired])
                del s.times_ms[:expired], s.values[:expired]
        rate = s.total / len(s.values)
        dt_s = (at_ms - s.last_ms) / 1000.0 if s.last_ms else 0.0
        s.last_ms = max(s.last_ms, at_ms)
        events: list[AlertEvent] = []
        if s.firing_since_ms is None:
            bound = max(c.min_rate, s.baseline + c.margin)
            if s.samples > c.warmup_samples and len(s.values) >= c.min_samples and rate >= bound:
                s.firing_since_ms = at_ms
                s.bound = bound
                events.append(self._event(FIRING, at_ms, rate, trace_id))
            elif s.samples <= c.warmup_samples:  # running mean while young
                s.baseline += (value - s.baseline) / s.samples
            else:
                s.baseline += decay_weight(dt_s, c.baseline_half_life_s) * (value - s.baseline)
        elif rate < s.bound / 2.0:
            events.append(self._event(RESOLVED, at_ms, rate, trace_id))
            s.firing_since_ms = None
        return events

    def _event(self, status: str, at_ms: int, rate: float, trace_id: str | None) -> AlertEvent:
        c, s = self.config, self.state
        what = "error rate" if c.kind == "error_rate" else "packet loss"
        annotations = {
            "summary": f"{what} {rate:.0%} over the last {c.window_s:.0f} s"
            if status == FIRING
            else f"{what} back to {rate:.0%}",
            "baseline_ratio": f"{s.baseline:.4f}",
            "current_ratio": f"{rate:.4f}",
        }
        if trace_id:
            annotations["trace_id"] = trace_id
        assert s.firing_since_ms is not None
        return AlertEvent(
            kind=c.kind,
            status=status,
            severity=c.severity,
            at_ms=at_ms,
            started_at_ms=s.firing_since_ms,
            labels=self.labels,
            annotations=annotations,
        )
