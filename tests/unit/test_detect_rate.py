"""Error-rate and packet-loss detector: a windowed rate against a learned baseline."""

from __future__ import annotations

import math
import random

import pytest
from netobs_flink.detect.alert import FIRING, RESOLVED
from netobs_flink.detect.rate import RESUM_EVERY, RateConfig, RateDetector

T0 = 1_700_000_000_000


def feed(values: list[float], config: RateConfig | None = None, step_s: int = 30) -> list[tuple[int, str]]:
    det = RateDetector(config, labels={"check": "c", "target": "t"})
    return [(i, e.status) for i, v in enumerate(values) for e in det.observe(T0 + i * step_s * 1000, v)]


@pytest.mark.parametrize(
    ("name", "values", "expected"),
    [
        ("all good", [0.0] * 100, []),
        ("one failure in ten is normal noise", [1.0 if i % 10 == 0 else 0.0 for i in range(200)], []),
        ("half failing for a while", [0.0] * 60 + [1.0, 0.0] * 20 + [0.0] * 40, [(70, FIRING), (114, RESOLVED)]),
        ("hard down then back", [0.0] * 60 + [1.0] * 10 + [0.0] * 30, [(65, FIRING), (87, RESOLVED)]),
    ],
)
def test_error_rate_table(name: str, values: list[float], expected: list[tuple[int, str]]) -> None:
    assert feed(values) == expected


def test_baseline_raises_the_bar_for_a_flaky_series() -> None:
    """A series that always fails 25% does not alert at 35%, where a clean series does."""
    flaky = [1.0 if i % 4 == 0 else 0.0 for i in range(400)]
    worse = [1.0 if (i * 7) % 20 < 7 else 0.0 for i in range(60)]  # 7 of every 20, spread out
    assert feed(flaky + worse, RateConfig(baseline_half_life_s=3600)) == []
    assert feed([0.0] * 400 + worse, RateConfig(baseline_half_life_s=3600))[0][1] == FIRING


@pytest.mark.parametrize(
    ("loss", "fires"),
    [(0.02, False), (0.3, True)],
)
def test_packet_loss(loss: float, fires: bool) -> None:
    config = RateConfig(kind="packet_loss", min_rate=0.05, margin=0.05)
    det = RateDetector(config)
    events = [e for i in range(40) for e in det.observe(T0 + i * 30_000, 0.0 if i < 20 else loss)]
    assert [e.kind for e in events] == (["packet_loss"] if fires else [])


def test_late_result_inside_the_window_still_counts() -> None:
    det = RateDetector(RateConfig(min_samples=3, window_s=300, warmup_samples=0, min_rate=0.5))
    for i in range(3):
        det.observe(T0 + i * 60_000, 0.0)
    assert det.observe(T0 + 200_000, 1.0) == []
    assert det.observe(T0 + 220_000, 1.0) == []  # 2 of 5
    events = det.observe(T0 + 90_000, 1.0)  # late, out of order, within the window: 3 of 6
    assert [e.status for e in events] == [FIRING]


def test_the_running_sum_stays_the_window_sum() -> None:
    rnd = random.Random(3)
    detector = RateDetector(RateConfig(kind="packet_loss", window_s=60.0, min_rate=0.05, margin=0.05))
    for i in range(3000):  # irregular gaps: 0 to 3 results expire per new one
        detector.observe(1_000_000 + i * 1000 + rnd.randrange(0, 900), rnd.random() * 0.2)
        s = detector.state
        assert math.isclose(s.total, sum(s.values), rel_tol=1e-12, abs_tol=1e-12)
        if s.samples % RESUM_EVERY == 0:
            assert s.total == sum(s.values), "recomputed exactly every RESUM_EVERY samples"


def test_a_state_without_the_running_sum_recomputes_it() -> None:
    detector = RateDetector(RateConfig(window_s=10.0))
    for i in range(5):
        detector.observe(i * 1000, 1.0 if i % 2 else 0.0)
    detector.state.total = float("nan")  # a state pickled before the running sum existed
    detector.observe(5000, 1.0)
    assert detector.state.total == 3.0 == sum(detector.state.values)
