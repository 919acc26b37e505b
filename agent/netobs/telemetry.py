"""The agent's telemetry: every result recorded as metrics, a log record, and (for traced types) spans.

Instruments are created through the OpenTelemetry API; where the data goes is decided once, here:
- with an exporter configured: OTLP (gRPC or HTTP) for metrics, traces and logs;
- without one, the embedded default: result records as JSON lines on stdout and metrics on a
  Prometheus ``/metrics`` endpoint, needing nothing else running;
- in tests: in-memory readers/exporters (``Telemetry.in_memory()``).

Metric attributes are the low-cardinality keys below; the agent and its POP are resource attributes.
``tests/contract/golden/metric_catalogue.json`` pins instrument names, units and attribute keys.
"""

from __future__ import annotations

import logging
import socket
import sys
import time
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Protocol, TypeVar

from opentelemetry import _logs, metrics, trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    InMemoryLogRecordExporter,
    LogRecordExporter,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from netobs import __version__
from netobs._fastmetrics import (
    DirectMetricEncoder,
    MetricMerger,
    SummedCounter,
    SummedHistogram,
    SummedInstrument,
    supports,
)
from netobs._lightspans import LightSpan, LightTracer, SpanEncoder
from netobs._otlpdirect import (
    Batcher,
    PeriodicExporter,
    RequestExporter,
    grpc_exporter,
    http_exporter,
)
from netobs._protowire import RequestEncoder
from netobs._resultlogs import RESULT_EVENT_NAME, ResultLog, ResultLogEncoder
from netobs.config import AgentConfig, ExporterConfig
from netobs.export_metrics import ExportMetrics
from netobs.probes.base import PresetIds
from netobs.process_metrics import ProcessMetrics
from netobs.result import ProbeResult

log = logging.getLogger(__name__)

# Network latency spans sub-millisecond loopback to tens of seconds of timeouts.
LATENCY_BUCKETS_S: Sequence[float] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075,
    0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 30.0,
)  # fmt: skip
LATENESS_BUCKETS_S: Sequence[float] = (
    0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
)  # fmt: skip

T = TypeVar("T")
DEFAULT_PROMETHEUS_LISTEN = "127.0.0.1:9469"
# The export threads share the GIL with the event loop: while one works, the loop waits for it at each of its
# system calls, and runs start late. So spans and result logs are encoded on the loop as they come (see
# ``_otlpdirect``) and the threads only send; metric requests are built 100 points at a time. After each
# request a thread rests three times the CPU it took; requests of spans and logs stay large (2,048 items: a
# gRPC call costs ~1 ms of CPU). bench/README.md, ninth and fifteenth sessions.
METRIC_EXPORT_BATCH_POINTS = 100
EXPORT_BATCH_ITEMS = 2048
EXPORT_REST_FACTOR = 3.0
INSTRUMENTATION_SCOPE = "netobs.agent"


def _batcher(encoder: RequestEncoder[T], exporter: RequestExporter, name: str, schedule_delay_s: float) -> Batcher[T]:
    return Batcher(
        encoder,
        exporter,
        name,
        schedule_delay_s=schedule_delay_s,
        max_export_batch_size=EXPORT_BATCH_ITEMS,
        rest_factor=EXPORT_REST_FACTOR,
    )


def build_resource(cfg: AgentConfig) -> Resource:
    return Resource.create(
        {
            "service.name": "netobs-agent",
            "service.version": __version__,
            "service.instance.id": cfg.agent_id,
            "host.name": socket.gethostname(),
            "netobs.agent.id": cfg.agent_id,
            "netobs.pop": cfg.pop,
        }
    )


@dataclass
class TelemetryParts:
    """What a Telemetry is built from; lets tests and the CLI choose the destinations."""

    # Readers of every metric (the agent's own summed instruments are merged into what they collect) ...
    metric_readers: list[MetricReader] = field(default_factory=list)
    # ... or, over OTLP: the SDK's instruments through a reader, the summed ones encoded directly.
    sdk_metric_readers: list[MetricReader] = field(default_factory=list)
    direct_metric_exporters: list[RequestExporter] = field(default_factory=list)
    metric_export_interval_s: float = 10.0
    # Spans and result logs through the SDK's processors (tests: in-memory exporters) ...
    span_exporters: list[SpanExporter] = field(default_factory=list)
    log_exporters: list[LogRecordExporter] = field(default_factory=list)
    # ... or OTLP exporters fed on the agent's short path (production; see _lightspans, _resultlogs).
    # Without SDK span exporters the agent's tracer is the light one, also when nothing exports spans.
    direct_span_exporters: list[RequestExporter] = field(default_factory=list)
    result_log_exporters: list[RequestExporter] = field(default_factory=list)
    batch: bool = True  # batch processors (production) or simple ones (tests: synchronous)
    stdout: IO[str] | None = None


class Telemetry:
    """Owns the SDK providers and the instruments; ``record`` is the result sink."""

    def __init__(self, resource: Resource, parts: TelemetryParts) -> None:
        self.resource = resource
        # Results are recorded after their span has ended and outside any span's context, so the default
        # trace-based exemplar filter would never keep one; switching it off saves work on every measurement.
        self.meter_provider = MeterProvider(
            resource=resource,
            metric_readers=[*parts.metric_readers, *parts.sdk_metric_readers],
            exemplar_filter=AlwaysOffExemplarFilter(),
        )
        self.tracer_provider = TracerProvider(resource=resource, id_generator=PresetIds())
        for exporter in parts.span_exporters:
            self.tracer_provider.add_span_processor(
                BatchSpanProcessor(exporter, max_queue_size=65536, max_export_batch_size=2048)
                if parts.batch
                else SimpleSpanProcessor(exporter)
            )
        self.logger_provider = LoggerProvider(resource=resource)
        for log_exporter in parts.log_exporters:
            self.logger_provider.add_log_record_processor(
                BatchLogRecordProcessor(log_exporter, max_queue_size=65536, max_export_batch_size=2048)
                if parts.batch
                else SimpleLogRecordProcessor(log_exporter)
            )
        scope = InstrumentationScope(INSTRUMENTATION_SCOPE, __version__)
        self._sdk_logs = bool(parts.log_exporters)
        log_encoder = ResultLogEncoder(resource, scope)
        self._result_logs: list[Batcher[ResultLog]] = [
            _batcher(log_encoder, exporter, "netobs-result-logs", schedule_delay_s=1.0)
            for exporter in parts.result_log_exporters
        ]
        span_encoder = SpanEncoder(resource, scope)
        self._span_batchers: list[Batcher[LightSpan]] = [
            _batcher(span_encoder, exporter, "netobs-spans", schedule_delay_s=5.0)
            for exporter in parts.direct_span_exporters
        ]
        self._stdout = parts.stdout
        self.prometheus: PrometheusEndpoint | None = None
        self.tracer: trace.Tracer
        if parts.span_exporters:
            if parts.direct_span_exporters:
                raise ValueError("spans go through either the SDK's exporters or the direct ones, not both")
            self.tracer = self.tracer_provider.get_tracer(INSTRUMENTATION_SCOPE, __version__)
        else:
            self.tracer = LightTracer(self._span_ended)
        self._results_logger: _logs.Logger = self.logger_provider.get_logger(INSTRUMENTATION_SCOPE, __version__)
        # Histograms are aggregated here and merged into each collection when every reader can take them
        # (see _fastmetrics); otherwise they are the SDK's own instruments.
        readers = parts.metric_readers
        meter = self.meter_provider.get_meter(INSTRUMENTATION_SCOPE, __version__)
        self._instruments = _Instruments(meter, self_aggregated=all(supports(r) for r in readers))
        self.process_metrics = ProcessMetrics(meter)
        summed = self._instruments.summed
        if summed:
            merger = MetricMerger(resource, scope, summed)
            for reader in readers:
                merger.install(reader)
        encoder = DirectMetricEncoder(resource, scope, summed, max_points=METRIC_EXPORT_BATCH_POINTS)
        self._direct_metrics: list[PeriodicExporter] = [
            PeriodicExporter(
                encoder.requests,
                exporter,
                "netobs-metrics",
                parts.metric_export_interval_s,
                rest_factor=EXPORT_REST_FACTOR,
            )
            for exporter in (parts.direct_metric_exporters if summed else [])
        ]
        self.export_metrics = ExportMetrics(meter, self._span_batchers, self._result_logs, self._direct_metrics)
        self._attr_cache: dict[tuple[str, str, str], dict[str, str]] = {}

    def _batchers(self) -> list[Batcher[Any] | PeriodicExporter]:
        return [*self._span_batchers, *self._result_logs, *self._direct_metrics]

    def _span_ended(self, span: LightSpan) -> None:
        for batcher in self._span_batchers:
            batcher.add(span)

    # -- construction -------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: AgentConfig, stdout: IO[str] | None = None) -> Telemetry:
        parts = TelemetryParts(batch=True)
        if cfg.exporter is not None:
            _add_otlp(parts, cfg.exporter)
        stdout_on = cfg.outputs.stdout_json if cfg.outputs.stdout_json is not None else cfg.exporter is None
        if stdout_on:
            parts.stdout = stdout or sys.stdout
        listen = cfg.outputs.prometheus_listen
        if listen is None and cfg.exporter is None:
            listen = DEFAULT_PROMETHEUS_LISTEN
        endpoint = PrometheusEndpoint(listen) if listen else None
        if endpoint is not None:
            parts.metric_readers.append(endpoint.reader)
        telemetry = cls(build_resource(cfg), parts)
        telemetry.prometheus = endpoint
        return telemetry

    @classmethod
    def in_memory(cls, cfg: AgentConfig | None = None) -> InMemoryTelemetry:
        return InMemoryTelemetry(cfg or AgentConfig(agent_id="test-agent", pop="test-pop"))

    # -- the result sink ----------------------------------------------------------------------------
    def record(self, result: ProbeResult) -> None:
        key = (result.check_name, result.check_type, result.target)
        attrs = self._attr_cache.get(key)
        if attrs is None:
            attrs = {
                "netobs.check.name": result.check_name,
                "netobs.check.type": result.check_type,
                "netobs.target": result.target,
            }
            self._attr_cache[key] = attrs
        self._instruments.record(result, attrs)
        body = result.to_json()
        if self._result_logs:
            record = (
                result.started_at_ms * 1_000_000,
                time.time_ns(),
                body,
                result.check_name,
                result.check_type,
                result.result_id,
            )
            for batcher in self._result_logs:
                batcher.add(record)
        if self._sdk_logs:
            self._results_logger.emit(
                timestamp=result.started_at_ms * 1_000_000,
                body=body,
                severity_number=_logs.SeverityNumber.INFO,
                event_name=RESULT_EVENT_NAME,
                attributes={
                    "netobs.check.name": result.check_name,
                    "netobs.check.type": result.check_type,
                    "netobs.result.id": result.result_id,
                },
            )
        if self._stdout is not None:
            self._stdout.write(body + "\n")

    def record_lateness(self, lateness_s: float, check_type: str) -> None:
        self._instruments.lateness.record(lateness_s, check_type, lambda: {"netobs.check.type": check_type})

    def count_skipped(self, check_type: str, reason: str) -> None:
        self._instruments.skipped.add(
            1, (check_type, reason), lambda: {"netobs.check.type": check_type, "netobs.skip.reason": reason}
        )

    def set_checks(self, count: int) -> None:
        self._instruments.checks.set(count)

    def count_reload(self, outcome: str) -> None:
        self._instruments.reloads.add(1, {"netobs.reload.outcome": outcome})

    def flush(self) -> None:
        self.tracer_provider.force_flush()
        for batcher in self._batchers():
            batcher.force_flush()
        self.logger_provider.force_flush()
        self.meter_provider.force_flush()
        if self._stdout is not None:
            self._stdout.flush()

    def shutdown(self) -> None:
        for provider in (self.tracer_provider, self.logger_provider, self.meter_provider):
            try:
                provider.shutdown()
            except Exception:
                log.exception("telemetry shutdown of %s failed", type(provider).__name__)
        for batcher in self._batchers():
            try:
                batcher.shutdown()
            except Exception:
                log.exception("telemetry shutdown of a direct exporter failed")
        if self.prometheus is not None:
            self.prometheus.close()
        if self._stdout is not None:
            self._stdout.flush()


class InMemoryTelemetry(Telemetry):
    """Telemetry whose data stays in memory, for tests."""

    def __init__(self, cfg: AgentConfig) -> None:
        self.metric_reader = InMemoryMetricReader()
        self.span_exporter = InMemorySpanExporter()
        self.log_exporter = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
        super().__init__(
            build_resource(cfg),
            TelemetryParts(
                metric_readers=[self.metric_reader],
                span_exporters=[self.span_exporter],
                log_exporters=[self.log_exporter],
                batch=False,
            ),
        )

    def metric_points(self) -> dict[str, list[tuple[dict[str, Any], Any]]]:
        """{instrument name: [(attributes, data point), ...]} of what was recorded so far."""
        return metric_points(self.metric_reader)

    def metric_units(self) -> dict[str, str]:
        return metric_units(self.metric_reader)


def _metrics_of(reader: InMemoryMetricReader) -> Iterator[Any]:
    data = reader.get_metrics_data()
    if data is None:
        return
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            yield from sm.metrics


def metric_points(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, Any], Any]]]:
    """{instrument name: [(attributes, data point), ...]} of what ``reader`` collects now."""
    out: dict[str, list[tuple[dict[str, Any], Any]]] = {}
    for metric in _metrics_of(reader):
        for point in metric.data.data_points:
            out.setdefault(metric.name, []).append((dict(point.attributes or {}), point))
    return out


def metric_units(reader: InMemoryMetricReader) -> dict[str, str]:
    """{instrument name: unit} of what ``reader`` collects now."""
    return {metric.name: metric.unit or "" for metric in _metrics_of(reader)}


class _Instruments:
    """The agent's instruments and how a result maps onto them."""

    def __init__(self, meter: metrics.Meter, self_aggregated: bool = True) -> None:
        self.summed: list[SummedInstrument] = []

        def histogram(name: str, description: str, bounds: Sequence[float] = LATENCY_BUCKETS_S) -> _Histogram:
            if self_aggregated:
                summed = SummedHistogram(name, "s", description, bounds)
                self.summed.append(summed)
                return summed
            return _SdkHistogram(
                meter.create_histogram(
                    name, unit="s", description=description, explicit_bucket_boundaries_advisory=bounds
                )
            )

        def counter(name: str, unit: str, description: str) -> SummedCounter:
            summed = SummedCounter(name, unit, description)
            if self_aggregated:
                self.summed.append(summed)
            else:
                meter.create_observable_counter(name, callbacks=[summed.observe], unit=unit, description=description)
            return summed

        self.duration = histogram("netobs.probe.duration", "Duration of a probe run, from start to result")
        self.runs = counter("netobs.probe.runs", "{run}", "Probe runs, by success and error.type")
        self.phase = histogram(
            "netobs.probe.phase.duration", "Duration of one phase of a run (dns, connect, tls, ttfb, transfer)"
        )
        self.icmp_rtt = histogram(
            "netobs.icmp.rtt", "Round-trip time of every ICMP echo reply (the distribution, smokeping-style)"
        )
        self.icmp_sent = counter("netobs.icmp.packets.sent", "{packet}", "ICMP echo requests sent")
        self.icmp_lost = counter("netobs.icmp.packets.lost", "{packet}", "ICMP echo requests left unanswered")
        self.icmp_jitter = meter.create_gauge(
            "netobs.icmp.jitter", unit="s", description="Mean absolute RTT difference of consecutive replies"
        )
        self.cert_expiry = meter.create_gauge(
            "netobs.tls.cert.expiry",
            unit="s",
            description="Time until the server certificate expires (negative: expired)",
        )
        self.hops = meter.create_gauge(
            "netobs.traceroute.hops", unit="{hop}", description="Hops to the destination (or last responder)"
        )
        self.reached = meter.create_gauge(
            "netobs.traceroute.reached", unit="1", description="1 when the traceroute reached the destination"
        )
        self.path_id = meter.create_gauge(
            "netobs.traceroute.path.id",
            unit="1",
            description="First 32 bits of the path hash as a number: it changes when the path does",
        )
        self.last_hop_rtt = histogram("netobs.traceroute.last_hop.rtt", "RTT of the last responding hop")
        self.path_changes = meter.create_counter(
            "netobs.traceroute.path.changes",
            unit="{change}",
            description="Runs whose path differed from the last",
        )
        self.lateness = histogram(
            "netobs.agent.schedule.lateness", "How late a run started against its slot", LATENESS_BUCKETS_S
        )
        self.skipped = counter(
            "netobs.agent.runs.skipped",
            "{run}",
            "Runs not started because the agent was too far behind its schedule, by reason (overload)",
        )
        self.checks = meter.create_gauge(
            "netobs.agent.scheduled", unit="{target}", description="(check, target) pairs scheduled"
        )
        self.reloads = meter.create_counter(
            "netobs.agent.config.reloads", unit="{reload}", description="Config reloads, by outcome"
        )
        self._last_path: dict[tuple[str, str], str] = {}

    def record(self, r: ProbeResult, attrs: dict[str, str]) -> None:
        series = (r.check_name, r.check_type, r.target)

        def series_attrs() -> dict[str, str]:
            return attrs

        self.duration.record(r.duration_ms / 1000.0, series, series_attrs)
        if r.success:
            self.runs.add(1, (*series, True), lambda: {**attrs, "netobs.probe.success": True})
        else:
            error_type = r.error_type or "_OTHER"
            self.runs.add(
                1,
                (*series, error_type),
                lambda: {**attrs, "netobs.probe.success": False, "error.type": error_type},
            )
        for name, ms in r.phases_ms.items():
            self.phase.record(ms / 1000.0, (*series, name), lambda: {**attrs, "netobs.phase": name})  # noqa: B023
        if r.icmp is not None:
            for rtt in r.icmp.rtts_ms:
                if rtt is not None:
                    self.icmp_rtt.record(rtt / 1000.0, series, series_attrs)
            self.icmp_sent.add(r.icmp.sent, series, series_attrs)
            self.icmp_lost.add(r.icmp.sent - r.icmp.received, series, series_attrs)
            if r.icmp.jitter_ms is not None:
                self.icmp_jitter.set(r.icmp.jitter_ms / 1000.0, attrs)
        tls = r.http.tls if r.http is not None else r.tcp.tls if r.tcp is not None else None
        if tls is not None and tls.cert_expiry_days is not None:
            self.cert_expiry.set(tls.cert_expiry_days * 86400.0, attrs)
        if r.traceroute is not None:
            tr = r.traceroute
            self.hops.set(tr.hop_count, attrs)
            self.reached.set(1 if tr.reached else 0, attrs)
            if tr.path_hash:
                self.path_id.set(int(tr.path_hash[:8], 16), attrs)
                key = (r.check_name, r.target)
                previous = self._last_path.get(key)
                if previous is not None and previous != tr.path_hash:
                    self.path_changes.add(1, attrs)
                self._last_path[key] = tr.path_hash
            answered = [h for h in tr.hops if h.rtt_ms is not None]
            if answered and answered[-1].rtt_ms is not None:
                self.last_hop_rtt.record(answered[-1].rtt_ms / 1000.0, series, series_attrs)


class _Histogram(Protocol):
    def record(self, value: float, key: Hashable, attributes: Callable[[], Mapping[str, Any]]) -> None: ...


class _SdkHistogram:
    """The SDK's histogram behind the same interface (readers that cannot take merged histograms)."""

    def __init__(self, instrument: metrics.Histogram) -> None:
        self._instrument = instrument

    def record(self, value: float, key: Hashable, attributes: Callable[[], Mapping[str, Any]]) -> None:
        self._instrument.record(value, attributes())


def _add_otlp(parts: TelemetryParts, exp: ExporterConfig) -> None:
    headers = dict(exp.headers) or None
    if exp.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        creds = None
        if not exp.insecure:
            import grpc  # type: ignore[import-untyped]

            tls = exp.tls
            creds = grpc.ssl_channel_credentials(
                root_certificates=_read(tls.ca_file) if tls else None,
                private_key=_read(tls.key_file) if tls else None,
                certificate_chain=_read(tls.cert_file) if tls else None,
            )
        common: dict[str, Any] = {
            "endpoint": exp.endpoint,
            "insecure": exp.insecure,
            "headers": headers,
            "timeout": exp.timeout_s,
            "credentials": creds,
        }
        parts.sdk_metric_readers.append(
            PeriodicExportingMetricReader(
                # Smaller export requests: serialising one request holds the GIL, and thousands of series
                # in one request stalled the event loop for tens of milliseconds.
                OTLPMetricExporter(**common, max_export_batch_size=METRIC_EXPORT_BATCH_POINTS),
                export_interval_millis=exp.export_interval_s * 1000,
            )
        )
        parts.direct_metric_exporters.append(grpc_exporter("metrics", **common))
        parts.metric_export_interval_s = exp.export_interval_s
        parts.direct_span_exporters.append(grpc_exporter("traces", **common))
        parts.result_log_exporters.append(grpc_exporter("logs", **common))
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
            OTLPMetricExporter as HttpMetricExporter,
        )

        base = exp.endpoint if "://" in exp.endpoint else f"http://{exp.endpoint}"
        base = base.rstrip("/")
        tls_kw: dict[str, Any] = {}
        if exp.tls is not None:
            if exp.tls.ca_file:
                tls_kw["certificate_file"] = exp.tls.ca_file
            if exp.tls.cert_file:
                tls_kw["client_certificate_file"] = exp.tls.cert_file
            if exp.tls.key_file:
                tls_kw["client_key_file"] = exp.tls.key_file
        kw: dict[str, Any] = {"headers": headers, "timeout": exp.timeout_s, **tls_kw}
        parts.sdk_metric_readers.append(
            PeriodicExportingMetricReader(
                HttpMetricExporter(endpoint=f"{base}/v1/metrics", **kw),
                export_interval_millis=exp.export_interval_s * 1000,
            )
        )
        parts.direct_metric_exporters.append(http_exporter("metrics", endpoint=f"{base}/v1/metrics", **kw))
        parts.metric_export_interval_s = exp.export_interval_s
        parts.direct_span_exporters.append(http_exporter("traces", endpoint=f"{base}/v1/traces", **kw))
        parts.result_log_exporters.append(http_exporter("logs", endpoint=f"{base}/v1/logs", **kw))


def _read(path: str | None) -> bytes | None:
    if path is None:
        return None
    with open(path, "rb") as fh:
        return fh.read()


class PrometheusEndpoint:
    """A /metrics endpoint of its own (own registry, own server thread), stopped with the telemetry."""

    def __init__(self, listen: str) -> None:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import CollectorRegistry, start_http_server

        from netobs.config import split_host_port

        host, port = split_host_port(listen)
        if port is None:
            raise ValueError(f"prometheus_listen {listen!r} must be host:port")
        self.registry = CollectorRegistry()
        self.reader = PrometheusMetricReader(registry=self.registry)
        self.server, self.thread = start_http_server(port=port, addr=host or "127.0.0.1", registry=self.registry)
        self.url = f"http://{host or '127.0.0.1'}:{self.server.server_port}/metrics"
        log.info("metrics on %s", self.url)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
