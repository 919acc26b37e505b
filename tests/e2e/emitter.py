"""A small OTLP emitter for end-to-end tests: what an agent sends, written with the OTel SDK.

Each emitter has its own resource (agent id, POP) so a test finds exactly its own series,
spans and records; ``flush()`` returns once the collector has acknowledged everything.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

BUCKETS_S: Sequence[float] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


@dataclass(frozen=True)
class SentResult:
    result_id: str
    body: dict[str, Any]
    raw: str


class Emitter:
    def __init__(self, endpoint: str, agent_id: str | None = None, pop: str = "e2e-pop") -> None:
        self.agent_id = agent_id or f"e2e-{uuid.uuid4().hex[:10]}"
        self.pop = pop
        self.resource = Resource.create(
            {
                "service.name": "netobs-agent",
                "service.instance.id": self.agent_id,
                "netobs.agent.id": self.agent_id,
                "netobs.pop": pop,
            }
        )
        self.meter_provider = MeterProvider(
            resource=self.resource,
            metric_readers=[
                PeriodicExportingMetricReader(
                    OTLPMetricExporter(endpoint=endpoint, insecure=True, timeout=10),
                    export_interval_millis=3_600_000,
                )
            ],
        )
        self.tracer_provider = TracerProvider(resource=self.resource)
        self.tracer_provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True, timeout=10))
        )
        self.logger_provider = LoggerProvider(resource=self.resource)
        self.logger_provider.add_log_record_processor(
            SimpleLogRecordProcessor(OTLPLogExporter(endpoint=endpoint, insecure=True, timeout=10))
        )
        meter = self.meter_provider.get_meter("netobs.e2e")
        self.duration = meter.create_histogram(
            "netobs.probe.duration", unit="s", explicit_bucket_boundaries_advisory=BUCKETS_S
        )
        self.tracer = self.tracer_provider.get_tracer("netobs.e2e")
        self.logger = self.logger_provider.get_logger("netobs.e2e")

    def probe_attrs(self, check: str, target: str) -> dict[str, str]:
        return {"netobs.check.name": check, "netobs.check.type": "http", "netobs.target": target}

    def record_duration(self, check: str, target: str, duration_s: float) -> None:
        self.duration.record(duration_s, self.probe_attrs(check, target))

    def emit_result(self, check: str, target: str, *, as_bytes: bool = False, **extra: Any) -> SentResult:
        """One result log record (body = the result JSON) as the agent sends it."""
        result_id = str(uuid.uuid4())
        body: dict[str, Any] = {
            "schema_version": 1,
            "result_id": result_id,
            "started_at_ms": int(time.time() * 1000),
            "duration_ms": 12.5,
            "agent_id": self.agent_id,
            "pop": self.pop,
            "check_name": check,
            "check_type": "http",
            "target": target,
            "success": True,
            "error_type": None,
            "phases_ms": {"dns": 1.25, "connect": 2.0},
            "labels": {"team": "sre <&>"},
            **extra,
        }
        raw = json.dumps(body, separators=(",", ":"))
        self.logger.emit(
            timestamp=body["started_at_ms"] * 1_000_000,
            body=raw.encode() if as_bytes else raw,
            severity_number=SeverityNumber.INFO,
            event_name="netobs.probe.result",
            attributes={"netobs.check.name": check, "netobs.result.id": result_id},
        )
        return SentResult(result_id=result_id, body=body, raw=raw)

    def emit_plain_log(self, text: str) -> None:
        """A log record from an ordinary application (not a probe result)."""
        self.logger.emit(body=text, severity_number=SeverityNumber.WARN)

    def flush(self, timeout_ms: int = 20_000) -> None:
        assert self.meter_provider.force_flush(timeout_ms), "metrics not flushed"
        assert self.tracer_provider.force_flush(timeout_ms), "spans not flushed"
        assert self.logger_provider.force_flush(timeout_ms), "logs not flushed"

    def shutdown(self) -> None:
        self.meter_provider.shutdown()
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()

    def span_tree(self, name: str, children: Sequence[str]) -> str:
        """A root span with one child per name; returns the trace id (32 hex digits)."""
        with self.tracer.start_as_current_span(name, kind=trace.SpanKind.CLIENT) as root:
            for child in children:
                with self.tracer.start_as_current_span(child):
                    pass
            return format(root.get_span_context().trace_id, "032x")
