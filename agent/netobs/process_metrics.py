"""The agent process's own resource use, as the OpenTelemetry process metrics (semantic conventions).

What the agent costs where it runs, next to what it does: CPU seconds by mode (``process.cpu.time``, so
``rate(cpu) / rate(runs)`` is the CPU per probe the benchmark measures, live), resident memory, threads and
open file descriptors (every probe run opens a socket: a leak shows here first). The values are read from
the operating system (``os.times``, ``/proc/self``) when a metric reader collects, every export interval,
never on a probe's path. Where ``/proc`` cannot be read, those instruments report nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


class ProcessMetrics:
    """Registers the process instruments on ``meter``; ``proc`` is the process's ``/proc`` folder."""

    def __init__(self, meter: metrics.Meter, proc: Path = Path("/proc/self")) -> None:
        self.proc = proc
        meter.create_observable_counter(
            "process.cpu.time",
            callbacks=[self._cpu_time],
            unit="s",
            description="CPU seconds the agent process used, by mode (user, system)",
        )
        gauges = (  # (name, unit, description, callback): up-down counters, as the conventions define them
            ("process.memory.usage", "By", "Resident memory of the agent process", self._memory_usage),
            (
                "process.thread.count",
                "{thread}",
                "Threads of the agent process (event loop, exporters, the gRPC library's own)",
                self._thread_count,
            ),
            (
                "process.unix.file_descriptor.count",
                "{file_descriptor}",
                "Open file descriptors of the agent process (sockets of runs in flight among them)",
                self._fd_count,
            ),
        )
        for name, unit, description, callback in gauges:
            meter.create_observable_up_down_counter(name, callbacks=[callback], unit=unit, description=description)

    def _cpu_time(self, options: CallbackOptions) -> Iterable[Observation]:
        times = os.times()
        return [Observation(times.user, {"cpu.mode": "user"}), Observation(times.system, {"cpu.mode": "system"})]

    def _memory_usage(self, options: CallbackOptions) -> Iterable[Observation]:
        try:
            resident_pages = int((self.proc / "statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            return []
        return [Observation(resident_pages * PAGE_BYTES)]

    def _thread_count(self, options: CallbackOptions) -> Iterable[Observation]:
        try:
            return [Observation(len(os.listdir(self.proc / "task")))]
        except OSError:
            return []

    def _fd_count(self, options: CallbackOptions) -> Iterable[Observation]:
        try:
            return [Observation(len(os.listdir(self.proc / "fd")))]
        except OSError:
            return []
