"""The pure detector core: standard library only, no Flink, no I/O, no clock.

Each detector is a small state machine fed event-time samples; it returns :class:`AlertEvent`
transitions (firing, resolved). Its state is a plain picklable object so the Flink job can keep it in
keyed state and restore it from a checkpoint.

- :mod:`.latency`: robust level shift / record excursion per latency series (total and each phase);
- :mod:`.rate`: error rate and packet loss per series;
- :mod:`.availability`: per-series up/down and the cross-POP correlation (target outage, POP issue, local);
- :mod:`.path`: traceroute path change against the dominant path, correlated with latency;
- :mod:`.tls`: certificate expiry;
- :mod:`.replay`: the offline replay of a CSV through the latency detector.
"""

from netobs_flink.detect.alert import FIRING, RESOLVED, AlertEvent
from netobs_flink.detect.latency import LatencyConfig, LatencyDetector

__all__ = ["FIRING", "RESOLVED", "AlertEvent", "LatencyConfig", "LatencyDetector"]
