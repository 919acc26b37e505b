"""The long-running agent: telemetry + runner + scheduler, with SIGHUP reloads."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from netobs import _native
from netobs._protowire import NATIVE
from netobs.config import AgentConfig, ConfigError, load_config
from netobs.probes import Probe, default_probes
from netobs.runner import Runner
from netobs.scheduler import Scheduler
from netobs.telemetry import Telemetry

log = logging.getLogger(__name__)
T = TypeVar("T")

# The event loops the agent runs on. uvloop (libuv, in C) is the default: at 2,000 ICMP probes/s it saves
# ~10% of the agent's CPU per probe against the standard loop (bench/README.md); "asyncio" is the standard
# library's loop, for debugging or where uvloop is not available.
EVENT_LOOPS = ("uvloop", "asyncio")


def run_loop(main: Coroutine[Any, Any, T], event_loop: str = "uvloop") -> T:
    """Run ``main`` to completion on a new event loop of the kind ``event_loop`` (see ``EVENT_LOOPS``)."""
    if event_loop == "uvloop":
        import uvloop

        return uvloop.run(main)
    if event_loop == "asyncio":
        return asyncio.run(main)
    main.close()
    raise ValueError(f"event loop {event_loop!r}: must be one of {', '.join(EVENT_LOOPS)}")


# The interpreter's GIL hand-over interval while the agent runs. The export threads (metrics, result logs,
# spans) are CPU-bound for a few ms every batch; at Python's default 5 ms, each time the event loop
# wanted the GIL back it could wait up to 5 ms, and probes started tens of ms late around every metric
# export (p99 schedule lateness 33-78 ms at 2,000 probes/s; 0.5 ms: 4-7 ms at the same CPU per probe).
SWITCH_INTERVAL_S = 0.0005
# Young-generation GC threshold: with thousands of jobs a full collection walked every long-lived object
# and paused the loop for tens of ms; the objects alive after start are frozen (never scanned again).
GC_THRESHOLDS = (50_000, 20, 100)


def tune_runtime() -> None:
    """Process-wide settings for a low-latency scheduler (see ``SWITCH_INTERVAL_S``, ``GC_THRESHOLDS``)."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def unsupported_types(cfg: AgentConfig, probes: dict[str, Probe]) -> list[str]:
    return sorted({c.type for c in cfg.checks if c.type not in probes})


class Agent:
    def __init__(
        self,
        cfg: AgentConfig,
        config_path: Path | None = None,
        telemetry: Telemetry | None = None,
        probes: dict[str, Probe] | None = None,
        native: bool = True,
    ) -> None:
        """``native``: run plain TCP connects and HTTP/1.1 exchanges in the C engine (``netobs._native``)
        when it is built."""
        self.cfg = cfg
        self.config_path = config_path
        self.telemetry = telemetry or Telemetry.from_config(cfg)
        self.probes = probes or default_probes()
        self.runner = Runner(
            cfg.agent_id, cfg.pop, self.probes, sinks=[self.telemetry.record], tracer=self.telemetry.tracer
        )
        engine = _native.load()
        self._engine_missing = engine is None
        self.native = _native.NativeRuns(self.runner, engine) if engine is not None and native else None
        self.scheduler = Scheduler(
            self.runner.run,
            on_lateness=self.telemetry.record_lateness,
            on_skip=self.telemetry.count_skipped,
            native=self.native,
        )
        self._stop = asyncio.Event()

    def _schedulable(self, cfg: AgentConfig) -> list[object]:
        return [c for c in cfg.checks if c.type in self.probes]

    def start(self) -> None:
        missing = unsupported_types(self.cfg, self.probes)
        if missing:
            log.error("check types not available in this agent, not scheduled: %s", ", ".join(missing))
        tune_runtime()  # first: its full collection would hold up the first slots (late runs are skipped)
        _, added, _ = self.scheduler.apply(self._schedulable(self.cfg))
        self.telemetry.set_checks(len(self.scheduler.job_keys))
        native = self.native
        log.info(
            "agent %s at pop %s: %d (check, target) jobs scheduled; run by the native engine: %d plain TCP connects "
            "and %d plain HTTP/1.1 exchanges",
            self.cfg.agent_id,
            self.cfg.pop,
            added,
            native.count("tcp") if native is not None else 0,
            native.count("http") if native is not None else 0,
        )
        if self._engine_missing:
            log.warning(
                "netobs._connect (the C engine of plain TCP and HTTP checks) is not built: they run in Python "
                "instead, at about twice the CPU per probe; build it with `pip install -e .` (needs gcc and Python "
                "headers)"
            )
        if NATIVE is None:
            log.warning(
                "netobs._wire (the agent's C writers and histogram buckets) is not built: the Python ones run "
                "instead, at more CPU per result; build it with `pip install -e .` (needs gcc and Python headers)"
            )

    def reload(self) -> bool:
        """Re-read the config file; keep the running config if the new one is invalid."""
        if self.config_path is None:
            return False
        try:
            new = load_config(self.config_path)
        except ConfigError as exc:
            log.error("reload refused, keeping the running config: %s", "; ".join(str(exc).splitlines()))
            self.telemetry.count_reload("refused")
            return False
        if (new.agent_id, new.pop, new.exporter, new.outputs) != (
            self.cfg.agent_id,
            self.cfg.pop,
            self.cfg.exporter,
            self.cfg.outputs,
        ):
            log.warning("agent_id, pop, exporter and outputs changes take effect at the next restart")
        kept, added, removed = self.scheduler.apply(self._schedulable(new))
        self.cfg = new
        self.telemetry.set_checks(len(self.scheduler.job_keys))
        self.telemetry.count_reload("applied")
        log.info("config reloaded: %d jobs kept, %d added, %d removed", kept, added, removed)
        return True

    def request_stop(self) -> None:
        self._stop.set()

    async def run_forever(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        loop.add_signal_handler(signal.SIGTERM, self.request_stop)
        loop.add_signal_handler(signal.SIGINT, self.request_stop)
        self.start()
        try:
            await self._stop.wait()
        finally:
            log.info("stopping: waiting for runs in flight")
            await self.scheduler.stop()
            self.telemetry.shutdown()
