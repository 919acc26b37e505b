"""The scheduler: random first offsets, a fixed cadence on the monotonic clock, reload diffs."""

from __future__ import annotations

import asyncio
import itertools
import random
from typing import Any

from netobs.config import parse_config
from netobs.scheduler import Scheduler


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
    handles_before = {k: j.handle for k, j in sched._jobs.items()}
    changed = base + b10.replace("interval_s: 10", "interval_s: 20")
    kept, added, removed = sched.apply(_checks(changed))
    assert (kept, added, removed) == (2, 1, 1)
    for key in [("a", "127.0.0.1"), ("a", "127.0.0.2")]:
        assert sched._jobs[key].handle is handles_before[key]  # timer untouched: no restart, no new offset
    assert sched._jobs[("b", "127.0.0.3")].handle is not handles_before[("b", "127.0.0.3")]
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
    import time

    time.sleep(0.35)  # noqa: ASYNC251 - deliberately block the loop so about 3 slots pass
    await asyncio.sleep(0.05)
    await sched.stop()
    times = [t for _, _, t in rec.starts]
    # after the stall one late run, then back on the grid: never a burst of runs at the same moment
    assert all(b - a > 0.01 for a, b in itertools.pairwise(times)), times
    assert len(times) <= 4
