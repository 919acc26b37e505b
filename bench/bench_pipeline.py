"""Benchmark the collector pipeline: result records OTLP -> collector -> Kafka.

Measures, against a running stack (``netobs stack up``) or a temporary one (``--start``):
- accept rate: records/s the collector acknowledges over OTLP gRPC (SDK batch processor);
- end-to-end rate: records/s from the first send until the last record is in ``netobs.results``;
- latency: send -> visible to a Kafka consumer, one record at a time (p50/p95/max).

    python bench/bench_pipeline.py --records 20000
    python bench/bench_pipeline.py --start --records 5000     # own stack at port offset 13500
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from netobs.stack.layout import StackLayout
from netobs.stack.ports import HOST
from netobs.stack.stack import Stack
from netobs.stack.topics import RESULTS


def collector_process(layout: StackLayout) -> tuple[float, float]:
    """(CPU seconds, RSS bytes) of the collector, from its own Prometheus metrics endpoint."""
    url = f"http://{HOST}:{layout.ports.otelcol_metrics}/metrics"
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        m = _PROCESS_METRIC.match(line)
        if m:
            values[m.group(1)] = float(m.group(2))
    return values.get("cpu_seconds", float("nan")), values.get("memory_rss", float("nan"))


_PROCESS_METRIC = re.compile(r"^otelcol_process_(cpu_seconds|memory_rss)\w*(?:\{[^}]*\})? ([0-9.eE+-]+)$")


class Arrivals:
    """A consumer thread noting when each result id first shows up in the topic."""

    def __init__(self, bootstrap: str) -> None:
        self.seen: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"netobs-bench-{uuid.uuid4().hex}",
                "auto.offset.reset": "latest",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 10,
            }
        )
        self._assigned = threading.Event()
        self._consumer.subscribe([RESULTS.name], on_assign=lambda c, p: self._assigned.set())
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._assigned.is_set() and time.monotonic() < deadline:
            time.sleep(0.1)

    def _run(self) -> None:
        while not self._stop.is_set():
            msg = self._consumer.poll(0.1)
            if msg is None or msg.error() is not None:
                continue
            value = msg.value()
            if value is None:
                continue
            now = time.monotonic()
            try:
                rid = json.loads(value).get("result_id")
            except (ValueError, AttributeError):
                continue
            if isinstance(rid, str):
                with self._lock:
                    self.seen.setdefault(rid, now)

    def count(self, ids: set[str]) -> int:
        with self._lock:
            return len(ids & self.seen.keys())

    def arrival(self, rid: str) -> float | None:
        with self._lock:
            return self.seen.get(rid)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()


def make_body(agent_id: str, seq: int) -> tuple[str, str]:
    rid = str(uuid.uuid4())
    body: dict[str, Any] = {
        "schema_version": 1,
        "result_id": rid,
        "started_at_ms": int(time.time() * 1000),
        "duration_ms": 3.2,
        "agent_id": agent_id,
        "pop": "bench",
        "check_name": "bench",
        "check_type": "tcp",
        "target": f"10.0.0.{seq % 250}:443",
        "success": True,
        "error_type": None,
        "phases_ms": {"connect": 3.1},
        "labels": {},
    }
    return rid, json.dumps(body)


def run(layout: StackLayout, records: int, latency_samples: int) -> dict[str, float]:
    endpoint = f"{HOST}:{layout.ports.otelcol_otlp_grpc}"
    agent_id = f"bench-{uuid.uuid4().hex[:8]}"
    provider = LoggerProvider(resource=Resource.create({"service.name": "netobs-bench"}))
    provider.add_log_record_processor(
        BatchLogRecordProcessor(
            OTLPLogExporter(endpoint=endpoint, insecure=True, timeout=30),
            max_queue_size=records + 1,
            max_export_batch_size=1024,
            schedule_delay_millis=50,
        )
    )
    logger = provider.get_logger("netobs.bench")
    arrivals = Arrivals(f"{HOST}:{layout.ports.kafka}")
    try:
        ids: set[str] = set()
        bodies = [make_body(agent_id, i) for i in range(records)]
        cpu_before_s, _ = collector_process(layout)
        t0 = time.monotonic()
        for rid, raw in bodies:
            logger.emit(body=raw, severity_number=SeverityNumber.INFO, attributes={"netobs.result.id": rid})
            ids.add(rid)
        provider.force_flush(120_000)
        accepted_s = time.monotonic() - t0
        deadline = time.monotonic() + 300
        while arrivals.count(ids) < records and time.monotonic() < deadline:
            time.sleep(0.05)
        delivered = arrivals.count(ids)
        e2e_s = max(arrivals.seen[r] for r in ids if r in arrivals.seen) - t0
        cpu_after_s, rss_bytes = collector_process(layout)

        latencies_ms = []
        for i in range(latency_samples):
            rid, raw = make_body(agent_id, i)
            start = time.monotonic()
            logger.emit(body=raw, severity_number=SeverityNumber.INFO, attributes={"netobs.result.id": rid})
            provider.force_flush(30_000)
            end = time.monotonic() + 30
            while arrivals.arrival(rid) is None and time.monotonic() < end:
                time.sleep(0.002)
            seen = arrivals.arrival(rid)
            if seen is not None:
                latencies_ms.append((seen - start) * 1000)
    finally:
        arrivals.close()
        provider.shutdown()
    q = statistics.quantiles(latencies_ms, n=20) if len(latencies_ms) >= 2 else [float("nan")] * 19
    return {
        "records": records,
        "delivered": delivered,
        "accept_records_per_s": round(records / accepted_s, 1),
        "end_to_end_records_per_s": round(delivered / e2e_s, 1),
        "collector_cpu_ms_per_1k_records": round((cpu_after_s - cpu_before_s) * 1000 / (records / 1000), 1),
        "collector_rss_mib": round(rss_bytes / 2**20, 1),
        "latency_p50_ms": round(statistics.median(latencies_ms), 1) if latencies_ms else float("nan"),
        "latency_p95_ms": round(q[18], 1),
        "latency_max_ms": round(max(latencies_ms), 1) if latencies_ms else float("nan"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--latency-samples", type=int, default=50)
    parser.add_argument("--start", action="store_true", help="start a temporary stack at --port-offset")
    parser.add_argument("--port-offset", type=int, default=None)
    parser.add_argument("--state-dir", type=Path, default=None)
    args = parser.parse_args()

    stack: Stack | None = None
    if args.start:
        state = args.state_dir or Path(tempfile.mkdtemp(prefix="netobs-bench-"))
        offset = 13_500 if args.port_offset is None else args.port_offset
        layout = StackLayout.create(state_dir=state, port_offset=offset)
        stack = Stack(layout, say=lambda line: print(f"[stack] {line}", file=sys.stderr))
        t0 = time.monotonic()
        failures = stack.up(["kafka", "otelcol", "prometheus", "jaeger"])
        if failures:
            print("\n".join(str(f) for f in failures), file=sys.stderr)
            stack.down()
            return 1
        print(f"[stack] up in {time.monotonic() - t0:.1f} s", file=sys.stderr)
    else:
        layout = StackLayout.create(state_dir=args.state_dir, port_offset=args.port_offset)
    try:
        print(json.dumps(run(layout, args.records, args.latency_samples), indent=2))
    finally:
        if stack is not None:
            stack.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
