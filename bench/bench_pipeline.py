"""Benchmark the collector pipeline: result records OTLP -> collector -> Kafka.

Measures, against a running stack (``netobs stack up``) or a temporary one (``--start``):
- accept rate: records/s the collector acknowledges over OTLP gRPC (SDK batch processor);
- end-to-end rate: records/s from the first send until the last record is in ``netobs.results``;
- latency: send -> visible to a Kafka consumer, one record at a time with a forced flush (p50/p95/p99/max);
- visibility delay through the agent's real telemetry (``netobs.telemetry.Telemetry`` with an OTLP gRPC
  exporter, metric export interval ``--export-interval-s``, default 1 s): from ``Telemetry.record(result)`` of
  a result (with its span ended just before) until the result is queryable in Prometheus (its
  ``netobs_probe_duration_seconds_count`` series, unique ``target`` label), in Jaeger (``/api/traces/<id>``)
  and in Kafka (its ``result_id``), p50/p99 over ``--visibility-samples`` results created
  ``--visibility-gap-s`` apart (so they fall at every phase of the export timers).

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
import urllib.parse
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
from opentelemetry.trace import SpanKind

from netobs.config import AgentConfig, ExporterConfig, OutputsConfig
from netobs.result import ProbeResult
from netobs.stack.layout import StackLayout
from netobs.stack.ports import HOST
from netobs.stack.stack import Stack
from netobs.stack.topics import RESULTS
from netobs.telemetry import Telemetry


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
    return {
        "records": records,
        "delivered": delivered,
        "accept_records_per_s": round(records / accepted_s, 1),
        "end_to_end_records_per_s": round(delivered / e2e_s, 1),
        "collector_cpu_ms_per_1k_records": round((cpu_after_s - cpu_before_s) * 1000 / (records / 1000), 1),
        "collector_rss_mib": round(rss_bytes / 2**20, 1),
        "latency_samples": len(latencies_ms),
        "latency_p50_ms": percentile(latencies_ms, 50),
        "latency_p95_ms": percentile(latencies_ms, 95),
        "latency_p99_ms": percentile(latencies_ms, 99),
        "latency_max_ms": round(max(latencies_ms), 1) if latencies_ms else float("nan"),
    }


def percentile(values: list[float], pct: int) -> float:
    """The ``pct``-th percentile (inclusive method: never outside the observed range), rounded to 0.1."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return round(values[0], 1)
    return round(statistics.quantiles(values, n=100, method="inclusive")[pct - 1], 1)


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def prometheus_targets(layout: StackLayout, agent_id: str) -> set[str]:
    """``target`` labels of this agent's duration series that Prometheus can answer a query for now."""
    query = urllib.parse.quote(f'netobs_probe_duration_seconds_count{{agent="{agent_id}"}}')
    try:
        data = _get_json(f"http://{HOST}:{layout.ports.prometheus}/api/v1/query?query={query}")
    except (OSError, ValueError):
        return set()
    return {r["metric"].get("target", "") for r in data.get("data", {}).get("result", [])}


def jaeger_has(layout: StackLayout, trace_id: str) -> bool:
    try:
        data = _get_json(f"http://{HOST}:{layout.ports.jaeger_query_http}/api/traces/{trace_id}")
    except (OSError, ValueError):  # 404 until the trace is stored
        return False
    return bool(data.get("data"))


def visibility(layout: StackLayout, samples: int, gap_s: float, export_interval_s: float) -> dict[str, Any]:
    """Creation -> visible delays in Prometheus, Jaeger and Kafka through the agent's own telemetry."""
    run_id = uuid.uuid4().hex[:8]
    agent_id = f"bench-vis-{run_id}"
    cfg = AgentConfig(
        agent_id=agent_id,
        pop="bench",
        exporter=ExporterConfig(
            endpoint=f"{HOST}:{layout.ports.otelcol_otlp_grpc}",
            insecure=True,
            export_interval_s=export_interval_s,
            timeout_s=10.0,
        ),
        outputs=OutputsConfig(stdout_json=False, prometheus_listen=None),
    )
    telemetry = Telemetry.from_config(cfg)
    arrivals = Arrivals(f"{HOST}:{layout.ports.kafka}")
    created: dict[str, float] = {}  # target -> monotonic creation time
    trace_of: dict[str, str] = {}
    rid_of: dict[str, str] = {}
    seen: dict[str, dict[str, float]] = {"prometheus": {}, "jaeger": {}, "kafka": {}}
    lock = threading.Lock()
    stop = threading.Event()

    def poll_prometheus() -> None:
        while not stop.is_set():
            now_targets = prometheus_targets(layout, agent_id)
            now = time.monotonic()
            with lock:
                for target in now_targets & created.keys():
                    seen["prometheus"].setdefault(target, now)
            stop.wait(0.05)

    def poll_jaeger() -> None:
        while not stop.is_set():
            with lock:
                pending = [t for t in created if t not in seen["jaeger"]]
            for target in pending:
                if jaeger_has(layout, trace_of[target]):
                    with lock:
                        seen["jaeger"].setdefault(target, time.monotonic())
            stop.wait(0.05)

    pollers = [threading.Thread(target=f, daemon=True) for f in (poll_prometheus, poll_jaeger)]
    for t in pollers:
        t.start()
    try:
        for i in range(samples):
            target = f"vis-{run_id}-{i}:443"
            span = telemetry.tracer.start_span(f"tcp {target}", kind=SpanKind.CLIENT)
            span.end()
            sc = span.get_span_context()
            result = ProbeResult(
                result_id=str(uuid.uuid4()),
                started_at_ms=time.time_ns() // 1_000_000,
                duration_ms=1.0,
                agent_id=agent_id,
                pop="bench",
                check_name="bench-visibility",
                check_type="tcp",
                target=target,
                success=True,
                phases_ms={"connect": 1.0},
                trace_id=format(sc.trace_id, "032x"),
                span_id=format(sc.span_id, "016x"),
            )
            with lock:
                trace_of[target] = result.trace_id or ""
                rid_of[target] = result.result_id
                created[target] = time.monotonic()
            telemetry.record(result)
            time.sleep(gap_s)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for target, rid in rid_of.items():
                at = arrivals.arrival(rid)
                if at is not None:
                    seen["kafka"].setdefault(target, at)
            with lock:
                if all(len(s) == samples for s in seen.values()):
                    break
            time.sleep(0.1)
    finally:
        stop.set()
        for t in pollers:
            t.join(10)
        arrivals.close()
        telemetry.shutdown()
    out: dict[str, Any] = {
        "samples": samples,
        "gap_s": gap_s,
        "agent_metric_export_interval_s": export_interval_s,
    }
    for backend, seen_at in seen.items():
        delays = [(seen_at[t] - created[t]) * 1000 for t in created if t in seen_at]
        out[backend] = {
            "visible": len(delays),
            "p50_ms": percentile(delays, 50),
            "p99_ms": percentile(delays, 99),
            "max_ms": round(max(delays), 1) if delays else float("nan"),
        }
    return out


def table(kafka: dict[str, float], vis: dict[str, Any]) -> str:
    rows: list[tuple[str, float, float, float, float, float]] = [
        (
            "Kafka, one SDK log record + force_flush",
            kafka["latency_samples"],
            kafka["latency_samples"],
            kafka["latency_p50_ms"],
            kafka["latency_p99_ms"],
            kafka["latency_max_ms"],
        )
    ]
    for backend in ("prometheus", "jaeger", "kafka"):
        v = vis[backend]
        name = f"{backend.capitalize()}, agent telemetry"
        rows.append((name, vis["samples"], v["visible"], v["p50_ms"], v["p99_ms"], v["max_ms"]))
    lines = [
        f"{'creation -> visible in':42} {'n':>4} {'seen':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}",
        *(f"{r[0]:42} {r[1]:>4} {r[2]:>5} {r[3]:>8} {r[4]:>8} {r[5]:>8}" for r in rows),
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--latency-samples", type=int, default=50)
    parser.add_argument("--visibility-samples", type=int, default=40)
    parser.add_argument("--visibility-gap-s", type=float, default=0.25)
    parser.add_argument("--export-interval-s", type=float, default=1.0, help="agent metric export interval")
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
        kafka = run(layout, args.records, args.latency_samples)
        vis = visibility(layout, args.visibility_samples, args.visibility_gap_s, args.export_interval_s)
        print(json.dumps({"kafka_throughput": kafka, "visibility": vis}, indent=2))
        print(table(kafka, vis))
    finally:
        if stack is not None:
            stack.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
