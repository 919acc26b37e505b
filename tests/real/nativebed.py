"""What the tests of the native engine share: the agent's runner and scheduler wired with or without the
engine (``netobs._native``), and the comparison of the two paths' records and span trees."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

from netobs import _native
from netobs.agent import Agent
from netobs.config import parse_config
from netobs.probes.base import Probe
from netobs.result import ProbeResult
from netobs.runner import Runner
from netobs.scheduler import Scheduler
from netobs.telemetry import InMemoryTelemetry, Telemetry


class Wiring:
    """Runner, scheduler and in-memory telemetry as the agent wires them, with or without the engine."""

    def __init__(self, native: bool, probes: dict[str, Probe]) -> None:
        self.tel: InMemoryTelemetry = Telemetry.in_memory()
        self.results: list[ProbeResult] = []
        self.lateness: list[float] = []
        self.skips: list[tuple[str, str]] = []
        self.runner = Runner("a1", "test", probes, sinks=[self.tel.record, self.results.append], tracer=self.tel.tracer)
        engine = _native.load()
        assert engine is not None, "netobs._connect is not built (pip install -e .)"
        self.native = _native.NativeRuns(self.runner, engine) if native else None
        self.scheduler = Scheduler(
            self.runner.run,
            on_lateness=lambda s, _t: self.lateness.append(s),
            on_skip=lambda t, r: self.skips.append((t, r)),
            native=self.native,
        )

    async def run_for(self, checks: list[Any], seconds: float) -> list[ProbeResult]:
        self.scheduler.apply(checks)
        await asyncio.sleep(seconds)
        await self.scheduler.stop()
        return self.results

    def spans_of(self, result: ProbeResult) -> list[tuple[str, str | None, dict[str, Any], str, str | None]]:
        """(name, parent's name, attributes, status, description) of the run's spans, root first, then by
        start."""
        finished = self.tel.span_exporter.get_finished_spans()
        spans = sorted(
            (s for s in finished if f"{s.context.trace_id:032x}" == result.trace_id), key=lambda s: s.start_time or 0
        )
        names = {s.context.span_id: s.name for s in spans}
        rows = [
            (
                s.name,
                names.get(s.parent.span_id) if s.parent is not None else None,
                dict(s.attributes or {}),
                s.status.status_code.name,
                s.status.description,
            )
            for s in spans
        ]
        return sorted(rows, key=lambda row: row[1] is not None)


def shape(result: ProbeResult, measured: tuple[str, ...] = ()) -> dict[str, Any]:
    """A record without what differs from run to run (ids, times, measured values; and the ``measured``
    fields of its type's sub-record, such as a body size read in chunks)."""
    record = dataclasses.asdict(result)
    for key in ("result_id", "started_at_ms", "duration_ms", "trace_id", "span_id"):
        assert record.pop(key) is not None or key in ("trace_id", "span_id")
    record["phases_ms"] = sorted(record["phases_ms"])
    detail = record.get(result.check_type)
    for key in measured:
        if detail is not None:
            detail.pop(key, None)
    return record


def by_target(results: list[ProbeResult]) -> dict[str, ProbeResult]:
    return {r.target: r for r in results}


async def both(
    checks: Callable[[], list[Any]], seconds: float, probes: Callable[[], dict[str, Probe]]
) -> tuple[Wiring, Wiring]:
    """The same checks run for ``seconds`` through the Python path, then through the engine."""
    python, native = Wiring(native=False, probes=probes()), Wiring(native=True, probes=probes())
    await python.run_for(checks(), seconds)
    await native.run_for(checks(), seconds)
    return python, native


def assert_same(python: Wiring, native: Wiring, targets: list[str], measured: tuple[str, ...] = ()) -> None:
    """The last run of each target: the same record (but its ids, times and ``measured``) and span tree."""
    py, nat = by_target(python.results), by_target(native.results)
    assert set(py) == set(nat) == set(targets), (sorted(py), sorted(nat))
    for target in targets:
        got, want = shape(nat[target], measured), shape(py[target], measured)
        assert got == want, (target, got, want)
        got_spans, want_spans = native.spans_of(nat[target]), python.spans_of(py[target])
        assert got_spans == want_spans, (target, got_spans, want_spans)


async def started_agent(checks_yaml: str, seconds: float = 0.5) -> Agent:
    """An agent with in-memory telemetry running ``checks_yaml`` (the lines under ``checks:``) for ``seconds``."""
    head = 'agent_id: a1\npop: test\noutputs: {stdout_json: false, prometheus_listen: ""}\nchecks:\n'
    cfg = parse_config(head + checks_yaml)
    agent = Agent(cfg, telemetry=Telemetry.in_memory(cfg))
    agent.start()
    await asyncio.sleep(seconds)
    return agent
