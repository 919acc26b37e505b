"""The latency detector (pure core): no alert on normal series, shifts and record excursions fire and resolve."""

from __future__ import annotations

import math
import pickle
import random
from collections.abc import Callable

import pytest
from netobs_flink.detect.alert import FIRING, RESOLVED, AlertEvent
from netobs_flink.detect.latency import LatencyConfig, LatencyDetector

T0_MS = 1_700_000_000_000
STEP_S = 300  # NAB-like five-minute samples
DAY = 288  # samples per day at STEP_S

Gen = Callable[[int, random.Random], float]


def run(gen: Gen, n: int, config: LatencyConfig | None = None, seed: int = 7) -> list[tuple[int, AlertEvent]]:
    """Feed n samples; returns (sample index, event) for every transition."""
    rnd = random.Random(seed)
    det = LatencyDetector(config, labels={"check": "c", "target": "t"})
    out = []
    for i in range(n):
        out += [(i, e) for e in det.observe(T0_MS + i * STEP_S * 1000, gen(i, rnd))]
    return out


def square_wave(i: int, rnd: random.Random) -> float:
    return (80.0 if 108 <= i % DAY < 216 else 20.0) + rnd.gauss(0, 1)


NORMAL_SERIES: list[tuple[str, Gen]] = [
    ("gaussian", lambda i, r: 40 + r.gauss(0, 2)),
    ("lognormal", lambda i, r: 20 * math.exp(r.gauss(0, 0.1))),
    ("heavy tail with rare spikes", lambda i, r: 20 + r.expovariate(1 / 3) + (200 if r.random() < 0.01 else 0)),
    ("flat zero", lambda i, r: 0.0),
    ("flat constant", lambda i, r: 12.5),
    ("quantized integers", lambda i, r: float(r.choice([1, 1, 1, 2, 2, 3]))),
    ("slow drift", lambda i, r: 20 + i * 0.005 + r.gauss(0, 1)),
    ("daily sine", lambda i, r: 50 + 20 * math.sin(2 * math.pi * i / DAY) + r.gauss(0, 2)),
    ("daily square wave", square_wave),
    # noise-free, stepping at midnight: the first steps after the warm-up day come before the seasonal
    # model could be chosen (it was once judged by the plain model and alerted every day)
    ("perfect square wave", lambda i, r: 80.0 if i % DAY < DAY // 2 else 20.0),
]


@pytest.mark.parametrize(("name", "gen"), NORMAL_SERIES, ids=[n for n, _ in NORMAL_SERIES])
def test_no_alert_on_normal_series(name: str, gen: Gen) -> None:
    assert run(gen, 8 * DAY) == []


SHIFTS = [
    # name, generator, first anomalous index, last anomalous index, kind
    # (a shift that lasts for hours is slowly learnt as the new normal: this one resolves after 6 h of 8)
    (
        "latency +50% for 8 h",
        lambda i, r: 20 * math.exp(r.gauss(0, 0.1)) * (1.5 if 2000 <= i < 2096 else 1),
        2000,
        2000 + 65,
        "latency_increase",
    ),
    (
        "latency x3 for 1 h",
        lambda i, r: 30 + r.gauss(0, 1) + (60 if 2000 <= i < 2012 else 0),
        2000,
        2011,
        "latency_increase",
    ),
    (
        "latency halves for 2 h",
        lambda i, r: 30 + r.gauss(0, 1) - (15 if 2000 <= i < 2024 else 0),
        2000,
        2023,
        "latency_decrease",
    ),
    ("flat series steps up", lambda i, r: 5.0 if not 2000 <= i < 2100 else 6.0, 2000, 2099, "latency_increase"),
    (
        "square wave misses its daily rise",
        lambda i, r: 20 + r.gauss(0, 1) if 5 * DAY <= i < 6 * DAY else square_wave(i, r),
        5 * DAY + 108,
        5 * DAY + 215,
        "latency_decrease",
    ),
    (
        "square wave rises higher one day",
        lambda i, r: square_wave(i, r) + (40 if 5 * DAY + 108 <= i < 5 * DAY + 216 else 0),
        5 * DAY + 108,
        5 * DAY + 215,
        "latency_increase",
    ),
]


@pytest.mark.parametrize(("name", "gen", "start", "end", "kind"), SHIFTS, ids=[s[0] for s in SHIFTS])
def test_shift_fires_then_resolves(name: str, gen: Gen, start: int, end: int, kind: str) -> None:
    events = run(gen, end + 60)
    assert [(e.kind, e.status) for _, e in events] == [(kind, FIRING), (kind, RESOLVED)]
    (fired_i, fired), (resolved_i, resolved) = events
    # Within the window of 3 samples, or the seasonal phase tolerance (one 30-min bucket = 6 samples).
    assert start <= fired_i <= start + 6, "fires within half an hour"
    # Resolves soon after recovery (up to half an hour early where a seasonal step is due anyway).
    assert end - 6 < resolved_i <= end + 12, "resolves soon after recovery"
    assert fired.fingerprint == resolved.fingerprint
    assert resolved.started_at_ms == fired.at_ms
    assert fired.severity == ("warning" if kind == "latency_increase" else "info")
    assert float(fired.annotations["current_ms"]) != pytest.approx(float(fired.annotations["baseline_ms"]), rel=0.1)


@pytest.mark.parametrize(
    ("spike", "fires"),
    [
        (150.0, True),  # far beyond any earlier excursion: a record
        (45.0, False),  # 45 ms on a 20 ms series with routine 40 ms spikes: nothing new
    ],
)
def test_single_spike_fires_only_when_it_breaks_the_record(spike: float, fires: bool) -> None:
    def gen(i: int, r: random.Random) -> float:
        routine = 40.0 if i % 97 == 0 else 0.0
        return 20 + r.gauss(0, 0.5) + (spike if i == 2000 else routine)

    events = run(gen, 2100)
    assert [(i, e.status) for i, e in events] == ([(2000, FIRING), (2003, RESOLVED)] if fires else [])
    if fires:
        assert events[0][1].annotations["trigger"] == "record excursion"


@pytest.mark.parametrize(
    ("warmup_s", "alerts"),
    [
        (86400.0, 0),  # the shift happens during the first day: no baseline yet, no alert
        (3600.0, 1),  # a short warm-up (the e2e tests' setting) sees it
    ],
)
def test_warmup_suppresses_alerts(warmup_s: float, alerts: int) -> None:
    def gen(i: int, r: random.Random) -> float:
        return 30 + r.gauss(0, 1) + (50 if 100 <= i < 120 else 0)

    events = run(gen, 200, LatencyConfig(warmup_s=warmup_s, season_s=0))
    assert len([e for _, e in events if e.status == FIRING]) == alerts


def test_late_and_non_finite_samples_are_ignored() -> None:
    det = LatencyDetector(LatencyConfig(warmup_s=0, min_samples=3, season_s=0))
    for i in range(50):
        det.observe(T0_MS + i * 1000, 10.0)
    samples = det.state.samples
    assert det.observe(T0_MS + 10_000, 500.0) == []  # older than the last sample
    assert det.observe(T0_MS + 60_000, math.nan) == []
    assert det.state.samples == samples


def test_state_survives_pickling_mid_stream() -> None:
    """What Flink does on checkpoint/restore: the restored detector continues exactly like the original."""
    rnd = random.Random(3)
    values = [30 + rnd.gauss(0, 1) + (40 if 400 <= i < 420 else 0) for i in range(500)]
    config = LatencyConfig(warmup_s=3600, season_s=0)
    straight = LatencyDetector(config)
    events_straight = [e for i, v in enumerate(values) for e in straight.observe(T0_MS + i * 60_000, v)]
    first = LatencyDetector(config)
    for i, v in enumerate(values[:405]):
        first.observe(T0_MS + i * 60_000, v)
    restored = LatencyDetector(config, state=pickle.loads(pickle.dumps(first.state)))
    events_restored = [e for i, v in enumerate(values[405:], 405) for e in restored.observe(T0_MS + i * 60_000, v)]
    assert events_straight[0].status == FIRING and events_straight[0].at_ms < T0_MS + 405 * 60_000
    assert events_restored == events_straight[1:]


@pytest.mark.parametrize(
    "kwargs",
    [{"fire_sigma": 2.0, "resolve_sigma": 3.0}, {"window_samples": 0}, {"season_s": 3600, "buckets": 2}],
)
def test_config_rejects_inconsistent_values(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message is the config's own
        LatencyConfig(**kwargs)  # type: ignore[arg-type]
