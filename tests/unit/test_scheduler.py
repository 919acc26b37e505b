"""The scheduler: random first offsets, a fixed cadence on the monotonic clock, reload diffs."""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from typing import Any

import pytest
import uvloop

from netobs.config import parse_config
from netobs.scheduler import SLOT_GRID_S, Scheduler, shed_after_s


def _checks(text: str) -> list[Any]:
    return list(parse_config(text).checks)


class Recorder:
    def __init__(self) -> None:
        self.starts: list[tuple[str, str, float]] = []

    async def run(self, check: Any, target: str) -> None:
        self.starts.append((check.name, target, asyncio.get_running_loop().time()))


async def test_first_runs_are_spread_over_the_interval_then_keep_cadence() -> None:
    rec = Recorder()
    lateness: list[float] = []
    sched = Scheduler(rec.run, on_lateness=lambda s, _t: lateness.append(s), rng=random.Random(7))
    targets = ", ".join(f"'127.0.0.{i}'" for i in range(1, 21))
    checks = _checks(
        f"checks: [{{name: p, type: icmp, count: 1, targets: [{targets}], interval_s: 0.5, timeout_s: 0.4}}]"
    )
    t0 = asyncio.get_running_loop().time()
    sched.apply(checks)
    await asyncio.sleep(1.6)
    await sched.stop()
    by_target: dict[str, list[float]] = {}
    for _, target, at in rec.starts:
        by_target.setdefault(target, []).append(at)
    assert len(by_target) == 20
    firsts = sorted(v[0] - t0 for v in by_target.values())
    assert firsts[0] < 0.15 and firsts[-1] > 0.35  # spread over the 0.5 s interval, not all at once
    for starts in by_target.values():
        assert len(starts) >= 3
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        assert all(0.4 < g < 0.6 for g in gaps), gaps
    assert len(lateness) == len(rec.starts)
    assert sorted(lateness)[len(lateness) // 2] < 0.05


async def test_slots_are_on_the_grid_so_jobs_share_wake_ups() -> None:
    sched = Scheduler(Recorder().run, rng=random.Random(11))
    targets = ", ".join(f"'127.0.0.{i}'" for i in range(1, 41))
    sched.apply(
        _checks(f"checks: [{{name: p, type: icmp, count: 1, targets: [{targets}], interval_s: 0.1, timeout_s: 0.05}}]")
    )
    await asyncio.sleep(0.25)  # every job has run and moved on by whole intervals
    slots = [job.next_slot for job in sched._jobs.values()]
    timers = len(sched._timers)
    await sched.stop()
    assert all(abs(t / SLOT_GRID_S - round(t / SLOT_GRID_S)) < 1e-6 for t in slots), slots
    # 40 jobs in a 100 ms interval: at most 20 distinct 5 ms slots, so several jobs per wake-up ...
    distinct = len({round(t / SLOT_GRID_S) for t in slots})
    assert distinct <= 0.1 / SLOT_GRID_S
    assert timers == distinct  # ... and per timer


async def test_stop_waits_for_the_run_of_a_job_a_reload_removed() -> None:
    ended: list[str] = []

    async def slow(check: Any, target: str) -> None:
        await asyncio.sleep(0.15)
        ended.append(target)

    sched = Scheduler(slow, rng=random.Random(5))
    sched.apply(
        _checks("checks: [{name: a, type: icmp, count: 1, targets: [127.0.0.1], interval_s: 0.2, timeout_s: 0.19}]")
    )
    while sched.runs_started == 0:
        await asyncio.sleep(0.005)
    assert sched.apply(_checks("checks: []")) == (0, 0, 1)  # removed while its run is going
    await sched.stop()
    assert ended == ["127.0.0.1"]
    assert sched.runs_started == 1


def test_lateness_is_measured_finer_than_uvloops_millisecond_clock() -> None:
    lateness: list[float] = []

    async def main() -> None:
        sched = Scheduler(Recorder().run, on_lateness=lambda s, _t: lateness.append(s), rng=random.Random(2))
        targets = ", ".join(f"'127.0.0.{i}'" for i in range(1, 11))
        sched.apply(
            _checks(
                f"checks: [{{name: p, type: icmp, count: 1, targets: [{targets}], interval_s: 0.1, timeout_s: 0.05}}]"
            )
        )
        await asyncio.sleep(0.35)
        await sched.stop()

    uvloop.run(main())
    assert len(lateness) >= 20 and all(0 <= s < 0.05 for s in lateness), lateness
    # On the grid, a lateness from uvloop's clock (whole ms) would be a whole number of ms every time.
    assert any(abs(s * 1000 - round(s * 1000)) > 0.01 for s in lateness), lateness


class SameOffset(random.Random):
    """Every job's first offset is the same: all of them share one slot."""

    def uniform(self, a: float, b: float) -> float:
        return (a + b) / 2


async def test_lateness_is_taken_where_each_run_really_starts() -> None:
    # Five jobs in one slot whose runs each hold the loop 10 ms before their first wait: the runs start one
    # after the other, so the last starts ~40 ms after the timer fired, and its lateness says so.
    starts: list[float] = []

    async def holds_the_loop(check: Any, target: str) -> None:
        starts.append(time.monotonic())
        time.sleep(0.01)  # noqa: ASYNC251 - a run's first step, up to its first wait
        await asyncio.sleep(0)

    lateness: list[float] = []
    sched = Scheduler(holds_the_loop, on_lateness=lambda s, _t: lateness.append(s), rng=SameOffset())
    targets = ", ".join(f"'127.0.0.{i}'" for i in range(1, 6))
    sched.apply(
        _checks(f"checks: [{{name: p, type: icmp, count: 1, targets: [{targets}], interval_s: 1, timeout_s: 0.5}}]")
    )
    slot = next(iter(sched._jobs.values())).next_slot
    while len(starts) < 5:
        await asyncio.sleep(0.01)
    await sched.stop()
    assert len(lateness) == 5
    for reported, started in zip(lateness, starts, strict=True):
        assert abs(reported - (started - slot)) < 0.002, (lateness, [s - slot for s in starts])
    assert sorted(lateness)[-1] >= 0.04 > sorted(lateness)[0]


async def test_reload_keeps_unchanged_jobs_and_replaces_changed_ones() -> None:
    rec = Recorder()
    sched = Scheduler(rec.run, rng=random.Random(1))
    base = "checks: [{name: a, type: icmp, count: 1, targets: ['127.0.0.1', '127.0.0.2'], timeout_s: 1}"
    b10 = ", {name: b, type: icmp, count: 1, targets: ['127.0.0.3'], interval_s: 10, timeout_s: 1}]"
    assert sched.apply(_checks(base + b10)) == (
        0,
        3,
        0,
    )
    jobs_before = dict(sched._jobs)
    slots_before = {k: j.next_slot for k, j in jobs_before.items()}
    changed = base + b10.replace("interval_s: 10", "interval_s: 20")
    kept, added, removed = sched.apply(_checks(changed))
    assert (kept, added, removed) == (2, 1, 1)
    for key in [("a", "127.0.0.1"), ("a", "127.0.0.2")]:
        job = sched._jobs[key]
        assert job is jobs_before[key] and not job.stopped  # untouched: no restart, no new offset
        assert job.next_slot == slots_before[key]
    assert jobs_before[("b", "127.0.0.3")].stopped
    assert sched._jobs[("b", "127.0.0.3")] is not jobs_before[("b", "127.0.0.3")]
    assert sched.apply(_checks("checks: []")) == (0, 0, 3)
    assert sched.job_keys == set()
    await sched.stop()


async def test_disabled_checks_are_not_scheduled() -> None:
    sched = Scheduler(Recorder().run)
    sched.apply(_checks("checks: [{name: a, type: icmp, count: 1, targets: ['127.0.0.1'], enabled: false}]"))
    assert sched.job_keys == set()
    await sched.stop()


async def test_missed_slots_are_skipped_not_burst() -> None:
    rec = Recorder()
    sched = Scheduler(rec.run, rng=random.Random(3))
    sched.apply(
        _checks("checks: [{name: a, type: icmp, count: 1, targets: [127.0.0.1], interval_s: 0.1, timeout_s: 0.05}]")
    )
    await asyncio.sleep(0.15)
    time.sleep(0.35)  # noqa: ASYNC251 - deliberately block the loop so about 3 slots pass
    await asyncio.sleep(0.05)
    await sched.stop()
    times = [t for _, _, t in rec.starts]
    # after the stall one late run, then back on the grid: never a burst of runs at the same moment
    assert all(b - a > 0.01 for a, b in itertools.pairwise(times)), times
    assert len(times) <= 4


CHECK_A = "checks: [{name: a, type: tcp, targets: ['h:1'], interval_s: 0.3, timeout_s: 0.2}]"


async def test_a_single_stall_delays_runs_but_skips_none() -> None:
    rec = Recorder()
    skipped: list[tuple[str, str]] = []
    lateness: list[float] = []
    sched = Scheduler(
        rec.run,
        on_lateness=lambda s, _t: lateness.append(s),
        rng=random.Random(5),
        on_skip=lambda t, reason: skipped.append((t, reason)),
    )
    sched.apply(_checks(CHECK_A))
    await asyncio.sleep(0.35)
    on_time = len(rec.starts)
    time.sleep(0.32)  # noqa: ASYNC251 - the loop falls a slot behind: one run more than 50 ms late
    await asyncio.sleep(0.01)
    await sched.stop()
    assert max(lateness) > shed_after_s(sched_check := _checks(CHECK_A)[0]) and sched_check.timeout_s == 0.2
    assert skipped == [] and sched.runs_skipped == 0 and len(rec.starts) == on_time + 1


class Busy(Recorder):
    """Each run holds the loop for ``busy_s``: more work per second than there is time."""

    def __init__(self, busy_s: float) -> None:
        super().__init__()
        self.busy_s = busy_s

    async def run(self, check: Any, target: str) -> None:
        await super().run(check, target)
        time.sleep(self.busy_s)  # noqa: ASYNC251 - CPU the agent does not have


async def test_sustained_overload_skips_late_runs_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    rec = Busy(busy_s=0.003)  # 500 runs/s x 3 ms = 1.5 s of work per second
    skipped: list[tuple[str, str]] = []
    sched = Scheduler(rec.run, rng=random.Random(2), on_skip=lambda t, reason: skipped.append((t, reason)))
    targets = ", ".join(f"'h{i}:1'" for i in range(50))
    with caplog.at_level(logging.WARNING, logger="netobs.scheduler"):
        sched.apply(
            _checks(f"checks: [{{name: a, type: tcp, targets: [{targets}], interval_s: 0.1, timeout_s: 0.09}}]")
        )
        await asyncio.sleep(3.0)
        await sched.stop()
    assert skipped and set(skipped) == {("tcp", "overload")} and sched.runs_skipped == len(skipped)
    assert sched.lateness_average_s > 0.025  # the loop was behind for a sustained time
    assert len(rec.starts) > 300  # the agent kept running what it could
    assert "agent overloaded:" in caplog.text and "run(s) skipped" in caplog.text


@pytest.mark.parametrize(("timeout_s", "threshold_s"), [(0.2, 0.05), (1.0, 0.05), (5.0, 0.25), (30.0, 1.5)])
def test_shed_threshold_is_50_ms_or_5_percent_of_the_timeout(timeout_s: float, threshold_s: float) -> None:
    check = _checks(f"checks: [{{name: a, type: tcp, targets: ['h:1'], interval_s: 60, timeout_s: {timeout_s}}}]")[0]
    assert shed_after_s(check) == pytest.approx(threshold_s)
