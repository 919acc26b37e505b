"""Counting the reference cycles that probe runs leave behind.

An object in a reference cycle outlives its last use until the cyclic garbage collector finds it, and the
collector's passes pause the event loop for as long as they take: one cycle per HTTP run (the exchange and
its response reader, socket and all) made 10-30 ms pauses every few seconds at 2,000 runs/s. The real
probe tests run each probe type many times with the agent's production telemetry (light spans, directly
encoded metrics and result logs, exporters that count and discard) and assert that the collector finds
nothing afterwards.
"""

from __future__ import annotations

import asyncio
import gc
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

from netobs.config import AgentConfig
from netobs.probes.base import Probe
from netobs.result import ProbeResult
from netobs.runner import Runner
from netobs.telemetry import Telemetry, TelemetryParts, build_resource
from tests.exporters import CountingExporter

RUNS = 40
# The HTTP/2 library keeps bound methods of a connection in the connection (its frame dispatch table), so
# every HTTP/2 exchange leaves that library's connection state in a cycle; nothing of the agent's may be.
H2_LIBRARY = ("h2", "hpack", "hyperframe")


def without(garbage: Counter[str], packages: tuple[str, ...]) -> Counter[str]:
    """``garbage`` without the types of ``packages`` and the plain containers (dicts, deques, bound
    methods...) that such packages' objects hold."""
    skip = (*packages, "builtins", "collections")
    return Counter({name: n for name, n in garbage.items() if name.split(".")[0] not in skip})


@contextmanager
def production_runner(probes: dict[str, Probe]) -> Iterator[tuple[Runner, CountingExporter]]:
    """A runner whose results go through the agent's production telemetry path to a counting, discarding exporter
    (metrics, spans and result logs all to the same one)."""
    exporter = CountingExporter()
    parts = TelemetryParts(
        direct_metric_exporters=[exporter], direct_span_exporters=[exporter], result_log_exporters=[exporter]
    )
    telemetry = Telemetry(build_resource(AgentConfig(agent_id="cycles", pop="test")), parts)
    try:
        yield Runner("cycles", "test", probes, sinks=[telemetry.record], tracer=telemetry.tracer), exporter
    finally:
        telemetry.flush()
        telemetry.shutdown()


async def cyclic_garbage(
    run: Callable[[], Awaitable[ProbeResult]], runs: int = RUNS
) -> tuple[Counter[str], list[ProbeResult]]:
    """Runs ``run`` once (to warm caches and per-loop state), then ``runs`` times at once with the cyclic
    collector off; returns what the collector then finds unreachable (by module and type name, e.g.
    ``socket.socket``) and the results."""
    await run()
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)  # keep what it finds in gc.garbage, to name it
    try:
        results = await asyncio.gather(*(run() for _ in range(runs)))
        gc.collect()
        return Counter(f"{type(obj).__module__}.{type(obj).__qualname__}" for obj in gc.garbage), results
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
