"""Per-series detection on window summaries: the pure logic the Flink job's keyed function runs.

The job pre-aggregates results in the JVM (Flink SQL, tumbling event-time windows per series) and calls
:func:`process_window` once per (series, window) with a :class:`WindowSummary`. Everything the series
remembers is a :class:`SeriesState` (picklable, kept in Flink keyed state). Standard library only, so it
is unit-tested without Flink.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from netobs_flink.detect.alert import AlertEvent
from netobs_flink.detect.availability import AvailabilityConfig, Change, SeriesAvailability
from netobs_flink.detect.latency import LatencyConfig, LatencyDetector, LatencyState
from netobs_flink.detect.path import PathChangeDetector, PathConfig, PathState
from netobs_flink.detect.rate import RateConfig, RateDetector, RateState
from netobs_flink.detect.tls import TlsConfig, TlsExpiryDetector, TlsState

PHASES = ("dns", "connect", "tls", "ttfb", "transfer")


@dataclass(frozen=True)
class WindowSummary:
    """The results of one series in one window (what the SQL pre-aggregation emits).

    Latencies are means over the window's *successful* results (None when there was none).
    """

    agent_id: str
    pop: str
    check_name: str
    check_type: str
    target: str
    first_ms: int
    last_ms: int
    count: int
    failures: int
    last_success: bool
    total_ms: float | None = None
    phases_ms: dict[str, float] = field(default_factory=dict)
    loss_ratio: float | None = None
    path_hash: str | None = None
    path_rtt_ms: float | None = None
    cert_expiry_days: float | None = None
    cert_subject: str | None = None
    error_type: str | None = None
    trace_id: str | None = None
    failed_trace_id: str | None = None

    @property
    def key(self) -> str:
        return f"{self.agent_id}|{self.check_name}|{self.target}"


@dataclass(frozen=True)
class DetectorConfigs:
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    errors: RateConfig = field(default_factory=RateConfig)
    loss: RateConfig = field(default_factory=lambda: RateConfig(kind="packet_loss", min_rate=0.05, margin=0.05))
    availability: AvailabilityConfig = field(default_factory=AvailabilityConfig)
    path: PathConfig = field(default_factory=PathConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)
    heartbeat_s: float = 60.0  # how often a series tells the correlator it is alive


def configs_to_dict(configs: DetectorConfigs) -> dict[str, Any]:
    """Plain data (what the job ships to its Python workers; they rebuild the configs in ``open``)."""
    return dataclasses.asdict(configs)


def configs_from_dict(data: dict[str, Any]) -> DetectorConfigs:
    return DetectorConfigs(
        latency=LatencyConfig(**data["latency"]),
        errors=RateConfig(**data["errors"]),
        loss=RateConfig(**data["loss"]),
        availability=AvailabilityConfig(**data["availability"]),
        path=PathConfig(**data["path"]),
        tls=TlsConfig(**data["tls"]),
        heartbeat_s=float(data["heartbeat_s"]),
    )


@dataclass
class SeriesState:
    latency: dict[str, LatencyState] = field(default_factory=dict)
    errors: RateState = field(default_factory=RateState)
    loss: RateState = field(default_factory=RateState)
    availability: SeriesAvailability | None = None
    path: PathState = field(default_factory=PathState)
    tls: TlsState = field(default_factory=TlsState)
    last_heartbeat_ms: int = -1


@dataclass(frozen=True)
class Heartbeat:
    """ "This POP reports on (check, target)": membership for the correlator's k of n."""

    pop: str
    check: str
    target: str
    at_ms: int


def process_window(
    state: SeriesState, w: WindowSummary, configs: DetectorConfigs
) -> tuple[list[AlertEvent], list[Change | Heartbeat]]:
    """Run every detector that applies to the window; returns (alert transitions, correlator inputs)."""
    labels = {"agent": w.agent_id, "pop": w.pop, "check": w.check_name, "check_type": w.check_type, "target": w.target}
    trace = w.failed_trace_id or w.trace_id
    alerts: list[AlertEvent] = []
    at = w.last_ms

    series: list[tuple[str, float | None]] = [("total", w.total_ms)]
    series += [(p, w.phases_ms.get(p)) for p in PHASES if w.phases_ms.get(p) is not None]
    if w.check_type == "traceroute":
        series = []  # a traceroute's duration is not a latency; its RTT feeds the path detector
    for phase, value in series:
        if value is None:
            continue
        detector = LatencyDetector(
            configs.latency, {**labels, "phase": phase}, state.latency.setdefault(phase, LatencyState())
        )
        alerts += detector.observe(at, value, w.trace_id)

    if w.count > 0:
        alerts += RateDetector(configs.errors, labels, state.errors).observe(at, w.failures / w.count, trace)
    if w.loss_ratio is not None:
        alerts += RateDetector(configs.loss, labels, state.loss).observe(at, w.loss_ratio, trace)
    if w.path_hash:
        alerts += PathChangeDetector(configs.path, labels, state.path).observe(at, w.path_hash, w.path_rtt_ms, trace)
    if w.cert_expiry_days is not None:
        tls_labels = {"check": w.check_name, "target": w.target, "agent": w.agent_id, "pop": w.pop}
        alerts += TlsExpiryDetector(configs.tls, tls_labels, state.tls).observe(at, w.cert_expiry_days, w.cert_subject)

    outputs: list[Change | Heartbeat] = []
    if state.availability is None:
        state.availability = SeriesAvailability(w.pop, w.check_name, w.target)
    # A window of n results is n outcomes; only the trailing run matters for consecutive counts.
    if w.failures == w.count:
        outcomes = [False] * min(w.count, configs.availability.down_after)
    elif w.failures == 0:
        outcomes = [True] * min(w.count, configs.availability.up_after)
    else:
        outcomes = [w.last_success]
    for ok in outcomes:
        change = state.availability.observe(at, ok, configs.availability, w.error_type, trace)
        if change is not None:
            outputs.append(change)
    if state.last_heartbeat_ms < 0 or (at - state.last_heartbeat_ms) / 1000.0 >= configs.heartbeat_s:
        state.last_heartbeat_ms = at
        outputs.append(Heartbeat(w.pop, w.check_name, w.target, at))
    return alerts, outputs
