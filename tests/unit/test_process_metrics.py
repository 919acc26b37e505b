"""``netobs.process_metrics``: the agent's own CPU, memory, threads and descriptors, read at collection."""

from __future__ import annotations

import os
import resource
import socket
import threading
import time
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from netobs.process_metrics import ProcessMetrics


def _collect(proc: Path = Path("/proc/self")) -> tuple[InMemoryMetricReader, ProcessMetrics]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    return reader, ProcessMetrics(provider.get_meter("test"), proc)


def _points(reader: InMemoryMetricReader) -> dict[str, dict[tuple[tuple[str, Any], ...], float]]:
    out: dict[str, dict[tuple[tuple[str, Any], ...], float]] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for point in metric.data.data_points:
                    out.setdefault(metric.name, {})[tuple(sorted((point.attributes or {}).items()))] = point.value
    return out


def test_cpu_time_by_mode_follows_the_work_done() -> None:
    reader, _ = _collect()
    before = _points(reader)["process.cpu.time"]
    assert set(before) == {(("cpu.mode", "user"),), (("cpu.mode", "system"),)}
    end = time.process_time() + 0.2
    while time.process_time() < end:  # burn 0.2 s of CPU, nearly all in user mode
        sum(range(20_000))
    after = _points(reader)["process.cpu.time"]
    user_s = after[(("cpu.mode", "user"),)] - before[(("cpu.mode", "user"),)]
    system_s = after[(("cpu.mode", "system"),)] - before[(("cpu.mode", "system"),)]
    assert 0.15 <= user_s + system_s <= 0.5
    assert user_s >= 0.1


def test_memory_threads_and_descriptors_are_the_process_s() -> None:
    reader, _ = _collect()
    first = _points(reader)
    rss = first["process.memory.usage"][()]
    assert 10 * 2**20 < rss < 2 * resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # ru_maxrss: KiB
    threads = first["process.thread.count"][()]
    fds = first["process.unix.file_descriptor.count"][()]
    assert threads == len(os.listdir("/proc/self/task")) >= 1

    stop = threading.Event()
    worker = threading.Thread(target=stop.wait)
    worker.start()
    sockets = [socket.socket() for _ in range(5)]
    ballast = bytearray(64 * 2**20)  # zero-filled: every page touched, so resident
    try:
        second = _points(reader)
        assert second["process.thread.count"][()] == threads + 1
        assert second["process.unix.file_descriptor.count"][()] == fds + 5
        assert second["process.memory.usage"][()] - rss >= 60 * 2**20
    finally:
        del ballast
        stop.set()
        worker.join()
        for s in sockets:
            s.close()


def test_without_proc_only_cpu_time_is_reported(tmp_path: Path) -> None:
    reader, _ = _collect(tmp_path / "no-such-proc")
    assert set(_points(reader)) == {"process.cpu.time"}
