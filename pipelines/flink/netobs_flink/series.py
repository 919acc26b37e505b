"""Per-series detection on window summaries: the pure logic the Flink job's keyed function runs.

The job pre-aggregates results in the JVM (ShardWindows: tumbling event-time windows per series), encodes
each (series, window) as one text line (:data:`LINE_FIELDS`) and collects the lines of many series into
one batch per (shard, window), so Python is called once per batch, not once per series. :func:`parse_line`
turns a line back into a :class:`WindowSummary`, and :func:`process_window` runs the detectors on it.
Everything a series remembers is a :class:`SeriesState` (picklable, kept in Flink keyed state);
:class:`WriteBehindSeries` keeps the live states in memory and writes them to that state only when it
matters (see its docstring for why a restart neither loses nor repeats alerts). Standard library only, so
it is unit-tested without Flink.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from netobs_flink.detect.alert import AlertEvent
from netobs_flink.detect.availability import AvailabilityConfig, Change, Heartbeat, SeriesAvailability
from netobs_flink.detect.latency import LatencyConfig, LatencyDetector, LatencyState
from netobs_flink.detect.path import PathChangeDetector, PathConfig, PathState
from netobs_flink.detect.rate import RateConfig, RateDetector, RateState
from netobs_flink.detect.tls import TlsConfig, TlsExpiryDetector, TlsState
from netobs_flink.record import PHASES


@dataclass
class WindowSummary:
    """The results of one series in one window (what the JVM pre-aggregation, ShardWindows, emits). Treat it as a value;
    it is not frozen only because a frozen init costs 2 us more, once per series and window.

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


class SeriesDetectors:
    """The detector objects of one series, over the parts of its :class:`SeriesState`.

    Built once per live state (detectors hold references into it, so they stay valid as long as that state
    object does) instead of once per window: labels, detectors and their configuration checks cost more
    than the detection itself when a window holds one result.
    """

    __slots__ = ("check_type", "errors", "labels", "latency", "loss", "path", "pop", "state", "tls")

    def __init__(self, state: SeriesState, w: WindowSummary, configs: DetectorConfigs) -> None:
        self.state, self.pop, self.check_type = state, w.pop, w.check_type
        labels = {"agent": w.agent_id, "pop": w.pop, "check": w.check_name, "check_type": w.check_type}
        labels["target"] = w.target
        self.labels = labels
        self.latency: dict[str, LatencyDetector] = {}
        self.errors = RateDetector(configs.errors, labels, state.errors)
        self.loss = RateDetector(configs.loss, labels, state.loss)
        self.path = PathChangeDetector(configs.path, labels, state.path)
        tls_labels = {"check": w.check_name, "target": w.target, "agent": w.agent_id, "pop": w.pop}
        self.tls = TlsExpiryDetector(configs.tls, tls_labels, state.tls)

    def fits(self, state: SeriesState, w: WindowSummary) -> bool:
        """Still the detectors of ``state`` with ``w``'s labels (a series keeps its POP and check type
        unless its configuration changed)."""
        return self.state is state and self.pop == w.pop and self.check_type == w.check_type

    @classmethod
    def for_window(
        cls, cached: SeriesDetectors | None, state: SeriesState, w: WindowSummary, configs: DetectorConfigs
    ) -> SeriesDetectors:
        """``cached`` when it still fits ``state`` and ``w``, else new detectors."""
        return cached if cached is not None and cached.fits(state, w) else cls(state, w, configs)

    def latency_for(self, phase: str, configs: DetectorConfigs) -> LatencyDetector:
        detector = self.latency.get(phase)
        if detector is None:
            phase_state = self.state.latency.get(phase)
            if phase_state is None:
                phase_state = self.state.latency[phase] = LatencyState()
            detector = LatencyDetector(configs.latency, {**self.labels, "phase": phase}, phase_state)
            self.latency[phase] = detector
        return detector


def process_window(
    state: SeriesState, w: WindowSummary, configs: DetectorConfigs, detectors: SeriesDetectors | None = None
) -> tuple[list[AlertEvent], list[Change | Heartbeat]]:
    """Run every detector that applies to the window; returns (alert transitions, correlator inputs).

    ``detectors``: the series' :class:`SeriesDetectors` from an earlier window (rebuilt when missing or
    not for this state); :class:`WriteBehindSeries` keeps one per live state.
    """
    return _detect(state, w, configs, SeriesDetectors.for_window(detectors, state, w, configs))


def _detect(
    state: SeriesState, w: WindowSummary, configs: DetectorConfigs, detectors: SeriesDetectors
) -> tuple[list[AlertEvent], list[Change | Heartbeat]]:
    """:func:`process_window` with detectors known to fit."""
    trace = w.failed_trace_id or w.trace_id
    alerts: list[AlertEvent] = []
    at = w.last_ms

    if w.check_type != "traceroute":  # a traceroute's duration is not a latency; its RTT feeds the path detector
        if w.total_ms is not None:
            alerts += detectors.latency_for("total", configs).observe(at, w.total_ms, w.trace_id)
        if w.phases_ms:
            for phase in PHASES:
                value = w.phases_ms.get(phase)
                if value is not None:
                    alerts += detectors.latency_for(phase, configs).observe(at, value, w.trace_id)

    if w.count > 0:
        alerts += detectors.errors.observe(at, w.failures / w.count, trace)
    if w.loss_ratio is not None:
        alerts += detectors.loss.observe(at, w.loss_ratio, trace)
    if w.path_hash:
        alerts += detectors.path.observe(at, w.path_hash, w.path_rtt_ms, trace)
    if w.cert_expiry_days is not None:
        alerts += detectors.tls.observe(at, w.cert_expiry_days, w.cert_subject)

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


# -- the JVM -> Python encoding of window summaries ---------------------------------------------------

FIELD_SEP = "\x1f"  # ASCII unit separator, between the fields of one line
LINE_SEP = "\x1e"  # ASCII record separator: never inside a line either (the JVM replaces both in text)
# The fields of one line, in order (the job's Java ShardWindows writes them by these names; '' is None).
LINE_FIELDS: tuple[str, ...] = (
    "agent_id",
    "pop",
    "check_name",
    "check_type",
    "target",
    "first_ms",
    "last_ms",
    "n",
    "failures",
    "last_success",
    "total_ms",
    *(f"{p}_ms" for p in PHASES),
    "loss_ratio",
    "path_hash",
    "path_rtt_ms",
    "cert_expiry_days",
    "cert_subject",
    "error_type",
    "trace_id",
    "failed_trace_id",
)


def _float(text: str) -> float | None:
    return None if text == "" else float(text)


def parse_line(line: str) -> WindowSummary:
    """One line of a batch (fields joined by :data:`FIELD_SEP` in :data:`LINE_FIELDS` order) as a summary.

    Raises ValueError naming what is wrong (field count, a number that is not one, a missing series id).
    """
    f = line.split(FIELD_SEP)
    if len(f) != len(LINE_FIELDS):
        raise ValueError(f"window line has {len(f)} fields, expected {len(LINE_FIELDS)}: {line[:120]!r}")
    if not (f[0] and f[2] and f[4]):
        raise ValueError(f"window line without agent_id, check_name or target: {line[:120]!r}")
    try:
        phases = {p: float(v) for p, v in zip(PHASES, f[11:16], strict=True) if v != ""}
        return WindowSummary(
            agent_id=f[0],
            pop=f[1],
            check_name=f[2],
            check_type=f[3],
            target=f[4],
            first_ms=int(f[5]),
            last_ms=int(f[6]),
            count=int(f[7]),
            failures=int(f[8]),
            last_success=f[9].lower() == "true",
            total_ms=_float(f[10]),
            phases_ms=phases,
            loss_ratio=_float(f[16]),
            path_hash=f[17] or None,
            path_rtt_ms=_float(f[18]),
            cert_expiry_days=_float(f[19]),
            cert_subject=f[20] or None,
            error_type=f[21] or None,
            trace_id=f[22] or None,
            failed_trace_id=f[23] or None,
        )
    except ValueError as exc:
        raise ValueError(f"window line with a bad number ({exc}): {line[:120]!r}") from exc


def parse_batch(lines: Iterable[str | None], on_error: Callable[[ValueError], None]) -> list[WindowSummary]:
    """The summaries of one batch of lines; a malformed line goes to ``on_error`` and the rest go on."""
    out: list[WindowSummary] = []
    for line in lines:
        if line is None:
            on_error(ValueError("window line is NULL"))
            continue
        try:
            out.append(parse_line(line))
        except ValueError as exc:
            on_error(exc)
    return out


# -- series states kept in memory, written behind -------------------------------------------------------


class SeriesStore(Protocol):
    """Where series states persist (in the job: Flink MapState of the current shard, checkpointed)."""

    def get(self, key: str) -> SeriesState | None: ...

    def put(self, key: str, state: SeriesState) -> None: ...


@dataclass
class _Live:
    state: SeriesState
    unsaved: int = 0  # windows processed since the state was last written to the store
    detectors: SeriesDetectors | None = None  # built with the first window


@dataclass
class LiveBudget:
    """How many live series states the caches sharing it (one per shard, in one subtask) may hold."""

    max_series: int
    count: int = 0

    def __post_init__(self) -> None:
        if self.max_series < 1:
            raise ValueError("max_series must be >= 1")


class WriteBehindSeries:
    """Live :class:`SeriesState` objects of the series of one shard, written to ``store`` behind.

    Pickling a state into Flink state after every window cost more than the detectors themselves. Here a
    state is written (1) in the same call as any output it produces (an alert transition, an up/down or
    suspect change, a heartbeat), before that output leaves; (2) otherwise every ``persist_every``
    windows; (3) when it is evicted: when the caches sharing ``budget`` hold more than its ``max_series``
    states, the one that loads a state drops its own oldest (a state is ~33 KB with a full rate window).

    Why a job restarted from a checkpoint neither loses nor repeats alerts: a checkpoint barrier passes
    between two calls, so it holds every state written before it. Each output the job sent before the
    barrier was written together with the state that produced it, so the restored state already knows
    every transition and change it sent (a firing alert is restored firing and will resolve; none is
    sent again), and the correlator's inputs are consistent with what the series states claim. What a
    restore can miss is at most ``persist_every - 1`` windows per series that produced no output (their
    input offsets are inside the checkpoint, so they are not replayed): a few samples of the latency
    baselines and of the rate windows, i.e. an alert that is close to its threshold may fire or resolve
    one window later or earlier after a restart, but no transition is lost or repeated.
    """

    def __init__(
        self,
        store: SeriesStore,
        configs: DetectorConfigs,
        persist_every: int = 16,
        budget: LiveBudget | None = None,
    ) -> None:
        if persist_every < 1:
            raise ValueError("persist_every must be >= 1")
        self.store = store
        self.configs = configs
        self.persist_every = persist_every
        self.budget = budget or LiveBudget(50_000)
        self.live: dict[str, _Live] = {}

    def process(self, w: WindowSummary) -> tuple[list[AlertEvent], list[Change | Heartbeat]]:
        """:func:`process_window` on the series' live state; writes the state when the rules above say so."""
        key = w.key
        live = self.live.get(key)
        if live is None:
            live = _Live(self.store.get(key) or SeriesState())
            self.live[key] = live
            self.budget.count += 1
            self._evict()
        live.detectors = detectors = SeriesDetectors.for_window(live.detectors, live.state, w, self.configs)
        alerts, outputs = _detect(live.state, w, self.configs, detectors)
        live.unsaved += 1
        if alerts or outputs or live.unsaved >= self.persist_every:
            self.store.put(key, live.state)
            live.unsaved = 0
        return alerts, outputs

    def _evict(self) -> None:
        # Only this shard's states can be written now (MapState is scoped to the current key); the newest
        # (the one just loaded) is never evicted.
        while self.budget.count > self.budget.max_series and len(self.live) > 1:
            key = next(iter(self.live))  # the oldest loaded
            live = self.live.pop(key)
            self.budget.count -= 1
            if live.unsaved:
                self.store.put(key, live.state)
