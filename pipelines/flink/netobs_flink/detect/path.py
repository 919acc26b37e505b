"""Traceroute path change for one series: the current path against the series' dominant path.

Each traceroute result gives a ``path_hash`` and an end-to-end RTT (the last answered hop). The detector
keeps decayed counts per path (half-life ``half_life_s``) and an EWMA of the RTT per path. Once a path holds
at least ``dominant_share`` of the weight over ``min_samples`` results, it is *dominant*. ``fire_count``
consecutive results on another path fire ``path_change``; its severity is ``warning`` when the new path's
RTT differs from the dominant one's by more than ``max(rtt_rel, rtt_abs_ms)`` (a path change that users
feel), else ``info``. It resolves when the series is back on the dominant path for ``resolve_count``
results, or when the new path has become the dominant one (the new normal).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from netobs_flink.detect.alert import FIRING, RESOLVED, AlertEvent
from netobs_flink.detect.robust import decay_weight


@dataclass(frozen=True)
class PathConfig:
    half_life_s: float = 6 * 3600.0
    dominant_share: float = 0.6
    min_samples: int = 5
    fire_count: int = 2
    resolve_count: int = 2
    rtt_rel: float = 0.2
    rtt_abs_ms: float = 5.0
    max_paths: int = 8


@dataclass
class PathState:
    weights: dict[str, float] = field(default_factory=dict)
    rtt_ms: dict[str, float] = field(default_factory=dict)
    samples: int = 0
    last_ms: int = 0
    dominant: str | None = None
    streak: int = 0
    firing: bool = False
    since_ms: int = 0
    severity: str = "info"
    new_path: str = ""


class PathChangeDetector:
    def __init__(
        self, config: PathConfig | None = None, labels: Mapping[str, str] | None = None, state: PathState | None = None
    ) -> None:
        self.config = config or PathConfig()
        self.labels = dict(labels or {})
        self.state = state or PathState()

    def observe(
        self, at_ms: int, path_hash: str, rtt_ms: float | None, trace_id: str | None = None
    ) -> list[AlertEvent]:
        c, s = self.config, self.state
        if not path_hash or at_ms < s.last_ms:
            return []
        decay = 1.0 - decay_weight((at_ms - s.last_ms) / 1000.0 if s.samples else 0.0, c.half_life_s)
        s.last_ms = at_ms
        s.samples += 1
        for h in s.weights:
            s.weights[h] *= decay
        s.weights[path_hash] = s.weights.get(path_hash, 0.0) + 1.0
        if rtt_ms is not None:
            old = s.rtt_ms.get(path_hash)
            s.rtt_ms[path_hash] = rtt_ms if old is None else old + 0.3 * (rtt_ms - old)
        if len(s.weights) > c.max_paths:
            for h in sorted(s.weights, key=s.weights.__getitem__)[: len(s.weights) - c.max_paths]:
                if h not in (path_hash, s.dominant):
                    s.weights.pop(h)
                    s.rtt_ms.pop(h, None)

        events: list[AlertEvent] = []
        total = sum(s.weights.values())
        leader = max(s.weights, key=s.weights.__getitem__)
        if s.dominant is None:
            if s.samples >= c.min_samples and s.weights[leader] >= c.dominant_share * total:
                s.dominant = leader
            return events
        on_dominant = path_hash == s.dominant
        if not s.firing:
            s.streak = 0 if on_dominant else s.streak + 1
            if s.streak >= c.fire_count:
                s.firing, s.since_ms, s.new_path, s.streak = True, at_ms, path_hash, 0
                s.severity, delta = self._severity(path_hash)
                annotations = {
                    "summary": "traceroute path changed"
                    + (" with a latency change" if s.severity == "warning" else ""),
                    "dominant_path": s.dominant,
                    "current_path": path_hash,
                }
                if delta is not None:
                    annotations["rtt_change_ms"] = f"{delta:.3f}"
                if trace_id:
                    annotations["trace_id"] = trace_id
                events.append(AlertEvent("path_change", FIRING, s.severity, at_ms, at_ms, self.labels, annotations))
            elif on_dominant and s.weights[leader] >= c.dominant_share * total:
                s.dominant = leader
            return events
        s.streak = s.streak + 1 if on_dominant else 0
        promoted = leader != s.dominant and s.weights[leader] >= c.dominant_share * total
        if s.streak >= c.resolve_count or promoted:
            reason = "back on the dominant path" if not promoted else "the new path became the dominant one"
            events.append(
                AlertEvent(
                    "path_change",
                    RESOLVED,
                    s.severity,
                    at_ms,
                    s.since_ms,
                    self.labels,
                    {"summary": reason, "dominant_path": leader if promoted else s.dominant, "current_path": path_hash},
                )
            )
            if promoted:
                s.dominant = leader
            s.firing, s.streak = False, 0
        return events

    def _severity(self, new_path: str) -> tuple[str, float | None]:
        c, s = self.config, self.state
        assert s.dominant is not None
        base, now = s.rtt_ms.get(s.dominant), s.rtt_ms.get(new_path)
        if base is None or now is None:
            return "info", None
        delta = now - base
        return ("warning" if abs(delta) > max(c.rtt_rel * base, c.rtt_abs_ms) else "info"), delta
