"""The scheduler: runs every (check, target) at its interval, forever.

Each job starts at a random offset within its interval (so 1,000 targets on a 60 s interval do not fire
together), then keeps its cadence on the loop's monotonic clock: slot n is ``first + n * interval``,
whatever a run took, so there is no drift. First slots are on a 5 ms grid (``SLOT_GRID_S``), and so are
all later ones when the interval is a multiple of it: the jobs due in the same 5 ms start from one wake-up
of the event loop instead of one each, and from one timer (the jobs of a slot are kept in a list under its
time; a timer per job cost uvloop a handle, a heap insertion and a removal per run). A slot that was
missed entirely (the agent was stopped by a debugger, the machine was suspended) is skipped, not run in a
burst. Lateness (actual start against the slot) is measured for every run.

When the agent is out of CPU, the event loop falls behind and a run started then measures the agent's own
backlog, not the network: an overloaded agent reported nearly every target as timing out (2,000 HTTP
probes/s on a machine with less than a core free: success 2.5%). So a run that starts more than
``shed_after_s`` late (50 ms, or 5% of its timeout when that is longer) while the lateness of recent runs
(an exponential average over ~500 runs) is above half that is skipped, counted
(``netobs.agent.runs.skipped``) and logged; the runs that do start finish on time and tell the truth. A
single stall (a collection, a suspended VM) makes a few runs late but does not move the average much: they
run.

Plain TCP connects and HTTP/1.1 exchanges (``netobs._native``) can be handed to a C engine with a thread of
its own (``native``): ``apply`` gives it the job with its first slot, ``_stop`` takes the job back, and the
engine reports each run's start, skip or missed slots here (``run_started``, ``run_skipped``, ``slots_missed``),
so the counts, metrics and logs are the same for both kinds of job.

``apply`` swaps in a new set of checks: jobs whose check did not change keep their slots and any run in
flight; changed and removed jobs stop after their current run; new jobs get a fresh offset. ``stop`` waits
for (or cancels) every run still going, also those of jobs a reload removed.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from netobs._native import NativeRuns

log = logging.getLogger(__name__)

JobKey = tuple[str, str]  # (check name, target)
RunFn = Callable[[Any, str], Coroutine[Any, Any, object]]
LatenessFn = Callable[[float, str], None]
SkipFn = Callable[[str, str], None]  # (check type, reason)

# Timer coalescing: a wake-up of the event loop costs a system call, a context switch and cold caches, which
# at 2,000 probes/s were ~20% of the agent's CPU (TCP 175-201 -> 142 µs per probe with 5 ms). Larger slots
# save more wake-ups, but a slot's runs start one after the other: with the lateness taken where each run
# really starts (``_start``), TCP at 2,000/s had a p99 of 3.3-3.9 ms on a 5 ms grid, 5.1-5.7 on 10 ms and
# 7.9-8.6 on 20 ms (against 2.4 ms on 20 ms when taken as the timer fired). The random offsets still
# spread a second's runs over 200 slots.
SLOT_GRID_S = 0.005
SHED_AFTER_S = 0.05
SHED_TIMEOUT_FRACTION = 0.05
LATENESS_AVERAGE_WEIGHT = 0.002  # of each run's lateness in the running average (~500 runs)
SKIP_LOG_EVERY_S = 10.0


def shed_after_s(check: Any) -> float:
    """How late a run may start before it is skipped as overload."""
    return max(SHED_AFTER_S, SHED_TIMEOUT_FRACTION * float(check.timeout_s))


@dataclass(eq=False)
class _Job:
    check: Any
    target: str
    next_slot: float
    task: asyncio.Task[object] | None = None  # the latest run (timeout_s < interval_s: at most one going)
    stopped: bool = False
    native: int | None = None  # the job's id with the native engine, when that runs it


def _slot_key(at: float) -> float:
    """The key (and timer time) of the slot at ``at``: slots of jobs that are due together compare equal
    although their sums of intervals may differ in the last bits."""
    return round(at, 6)


def _settings(check: Any) -> Any:
    """What a job's runs depend on: the check without its target list."""
    dump = getattr(check, "model_dump", None)
    return dump(exclude={"targets"}) if dump is not None else check


class Scheduler:
    def __init__(
        self,
        run: RunFn,
        on_lateness: LatenessFn | None = None,
        rng: random.Random | None = None,
        on_skip: SkipFn | None = None,
        native: NativeRuns | None = None,
    ) -> None:
        self._run = run
        self._native = native
        if native is not None:
            native.bind(self)
        self._on_lateness = on_lateness
        self._on_skip = on_skip
        self._rng = rng or random.Random()
        self._jobs: dict[JobKey, _Job] = {}
        self._slots: dict[float, list[_Job]] = {}  # slot key -> the jobs due then (stopped ones are passed over)
        self._timers: dict[float, asyncio.TimerHandle] = {}  # slot key -> its timer
        self._orphans: set[asyncio.Task[object]] = set()  # runs going on after their job moved on or stopped
        self._loop: asyncio.AbstractEventLoop | None = None
        self.runs_started = 0
        self.runs_skipped = 0
        self.lateness_average_s = 0.0
        self._skips_unlogged = 0
        self._skip_logged_at = -SKIP_LOG_EVERY_S

    @property
    def job_keys(self) -> set[JobKey]:
        return set(self._jobs)

    def apply(self, checks: Iterable[Any]) -> tuple[int, int, int]:
        """Make the scheduled set equal to ``checks`` (enabled ones). Returns (kept, added, removed)."""
        self._loop = asyncio.get_running_loop()
        wanted: dict[JobKey, Any] = {}
        for check in checks:
            if getattr(check, "enabled", True):
                for target in check.targets:
                    wanted[(check.name, target)] = check
        kept = added = removed = 0
        for key in list(self._jobs):
            job = self._jobs[key]
            if key in wanted and _settings(wanted[key]) == _settings(job.check):
                job.check = wanted[key]  # same settings (its target list may differ): keep the timer
                kept += 1
                continue
            self._stop(job)
            del self._jobs[key]
            removed += 1
        now = self._loop.time()
        for key, check in wanted.items():
            if key in self._jobs:
                continue
            first = math.ceil((now + self._rng.uniform(0, check.interval_s)) / SLOT_GRID_S) * SLOT_GRID_S
            job = _Job(check=check, target=key[1], next_slot=first)
            self._jobs[key] = job
            if self._native is not None:
                job.native = self._native.add(check, key[1], first, shed_after_s(check))
            if job.native is None:
                self._arm(job)
            added += 1
        return kept, added, removed

    def _arm(self, job: _Job) -> None:
        assert self._loop is not None
        key = _slot_key(job.next_slot)
        jobs = self._slots.get(key)
        if jobs is None:
            jobs = self._slots[key] = []
            self._timers[key] = self._loop.call_at(key, self._fire_slot, key)
        jobs.append(job)

    def _fire_slot(self, key: float) -> None:
        del self._timers[key]
        for job in self._slots.pop(key):
            if not job.stopped:
                self._fire(job)

    def _fire(self, job: _Job) -> None:
        assert self._loop is not None
        now = time.monotonic()
        slot = job.next_slot
        interval = job.check.interval_s
        # Next slot on the fixed grid; skip slots that already passed instead of bursting.
        job.next_slot = slot + interval
        if job.next_slot <= now:
            missed = int((now - job.next_slot) // interval) + 1
            job.next_slot += missed * interval
            self.slots_missed(job.check, job.target, missed)
        self._arm(job)
        self._orphan(job)
        job.task = self._loop.create_task(self._start(job.check, job.target, slot))

    async def _start(self, check: Any, target: str, slot: float) -> object:
        """One run of ``check`` on ``target``, due at ``slot``: its lateness is taken here, where the run
        really starts. The runs of a slot start one after the other in the loop iteration after their
        timer, each up to its first wait (a socket set up, a packet sent: tens of µs), so the last of a
        slot's runs starts later than the timer fired (at 2,000 TCP probes/s and a 20 ms grid, p99 2.4 ms
        when taken at the timer, 7-9 ms here)."""
        # The loop's clock, read precisely: uvloop's loop.time() is the start of the loop iteration in
        # whole milliseconds, which hides up to 1 ms of every run's lateness.
        now = time.monotonic()
        lateness = now - slot
        if self._on_lateness is not None:
            self._on_lateness(lateness, check.type)
        self.lateness_average_s += (lateness - self.lateness_average_s) * LATENESS_AVERAGE_WEIGHT
        limit_s = shed_after_s(check)
        if lateness > limit_s and self.lateness_average_s > limit_s / 2:
            self._skip(check, target, lateness, now)
            return None
        self.runs_started += 1
        return await self._run(check, target)

    # -- what the native engine reports (its own shedding decides; the same counts and logs) ----------
    def run_started(self, check: Any, lateness_s: float) -> None:
        if self._on_lateness is not None:
            self._on_lateness(lateness_s, check.type)
        self.runs_started += 1

    def run_skipped(self, check: Any, target: str, lateness_s: float, now: float) -> None:
        if self._on_lateness is not None:
            self._on_lateness(lateness_s, check.type)
        self._skip(check, target, lateness_s, now)

    def slots_missed(self, check: Any, target: str, missed: int) -> None:
        log.warning("%s %s: skipped %d missed slot(s)", check.name, target, missed)

    def _orphan(self, job: _Job) -> None:
        """Keep ``job``'s run, if still going, where ``stop`` finds it (rare: runs end by their timeout)."""
        task = job.task
        if task is not None and not task.done():
            self._orphans.add(task)
            task.add_done_callback(self._orphans.discard)
        job.task = None

    def _skip(self, check: Any, target: str, lateness: float, now: float) -> None:
        self.runs_skipped += 1
        self._skips_unlogged += 1
        if self._on_skip is not None:
            self._on_skip(check.type, "overload")
        if now - self._skip_logged_at >= SKIP_LOG_EVERY_S:
            log.warning(
                "agent overloaded: %d run(s) skipped in the last %.0f s, the latest %s %s due %.0f ms ago, "
                "recent runs %.0f ms late on average (runs starting later than %.0f ms would measure the "
                "agent's backlog, not the network)",
                self._skips_unlogged,
                min(now - self._skip_logged_at, SKIP_LOG_EVERY_S),
                check.name,
                target,
                lateness * 1000,
                self.lateness_average_s * 1000,
                shed_after_s(check) * 1000,
            )
            self._skips_unlogged = 0
            self._skip_logged_at = now

    def _stop(self, job: _Job) -> None:
        job.stopped = True  # its slot passes it over
        if job.native is not None and self._native is not None:
            self._native.remove(job.native)
        self._orphan(job)

    async def stop(self, cancel_running: bool = False) -> None:
        """Stop every timer; wait for (or cancel) the runs in flight."""
        for job in self._jobs.values():
            self._stop(job)
        self._jobs.clear()
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._slots.clear()
        pending = list(self._orphans)
        if cancel_running:
            for task in pending:
                task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        if self._native is not None:
            await self._native.stop(cancel_running)
