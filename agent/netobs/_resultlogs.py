"""The result log records on a short path to OTLP: a tuple queued per result, protobuf built per batch.

Theory of operation. Through the OpenTelemetry SDK one log record costs ~30-40 µs on the event loop
(``Logger.emit``: an API record, attribute validation, a read-write and a readable copy, context
handling) and ~35 µs more in the batch processor's thread (``encode_logs``: one protobuf message per
record from generic attribute and value encoders). The agent's result records all have the same shape:
a string body (the result JSON), a timestamp, severity INFO, the event name and three string attributes.
So ``ResultLogBatcher.add`` only appends a tuple to a deque on the loop, and its thread builds the
``ExportLogsServiceRequest`` directly, once per batch (~5 µs per record), and hands it to the OTLP
exporter (gRPC or HTTP) with its own retry and timeout handling. Resource and scope are encoded once by
the SDK's own encoders, so what the collector receives is field for field what ``encode_logs`` makes of
the same record (``tests/unit/test_resultlogs.py`` compares them).

Batching follows the SDK's batch processor: export when ``max_export_batch_size`` records wait or every
``schedule_delay_s``; the queue holds at most ``max_queue_size`` records and drops the oldest beyond.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Sequence
from typing import Any, Protocol

from opentelemetry.exporter.otlp.proto.common._internal import _encode_instrumentation_scope, _encode_resource
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.sdk._logs.export import LogRecordExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

log = logging.getLogger(__name__)

SEVERITY_INFO = 9  # SeverityNumber.INFO
RESULT_EVENT_NAME = "netobs.probe.result"

# (time_unix_nano, observed_time_unix_nano, body, check name, check type, result id)
ResultLog = tuple[int, int, str, str, str, str]


class RequestExporter(Protocol):
    """An OTLP log exporter that sends a ready-made request."""

    def export_request(self, request: ExportLogsServiceRequest, count: int) -> bool: ...

    def shutdown(self) -> None: ...


class ResultLogEncoder:
    """Builds ``ExportLogsServiceRequest`` messages for result logs of one resource and scope."""

    def __init__(self, resource: Resource, scope: InstrumentationScope) -> None:
        self._resource = _encode_resource(resource)
        self._resource_schema_url = resource.schema_url
        self._scope = _encode_instrumentation_scope(scope)
        self._scope_schema_url = scope.schema_url

    def encode(self, records: Sequence[ResultLog]) -> ExportLogsServiceRequest:
        request = ExportLogsServiceRequest()
        resource_logs = request.resource_logs.add()
        resource_logs.resource.CopyFrom(self._resource)
        if self._resource_schema_url:
            resource_logs.schema_url = self._resource_schema_url
        scope_logs = resource_logs.scope_logs.add()
        scope_logs.scope.CopyFrom(self._scope)
        if self._scope_schema_url:
            scope_logs.schema_url = self._scope_schema_url
        add = scope_logs.log_records.add
        for time_ns, observed_ns, body, check_name, check_type, result_id in records:
            record = add(
                time_unix_nano=time_ns,
                observed_time_unix_nano=observed_ns,
                severity_number=SEVERITY_INFO,
                event_name=RESULT_EVENT_NAME,
            )
            record.body.string_value = body
            attributes = record.attributes
            attributes.add(key="netobs.check.name").value.string_value = check_name
            attributes.add(key="netobs.check.type").value.string_value = check_type
            attributes.add(key="netobs.result.id").value.string_value = result_id
        return request


class ResultLogBatcher:
    """Queues result logs and exports them in batches from a thread of its own."""

    def __init__(
        self,
        encoder: ResultLogEncoder,
        exporter: RequestExporter,
        max_queue_size: int = 65536,
        max_export_batch_size: int = 2048,
        schedule_delay_s: float = 1.0,
    ) -> None:
        self._encoder = encoder
        self._exporter = exporter
        self._queue: collections.deque[ResultLog] = collections.deque(maxlen=max_queue_size)
        self._max_queue_size = max_queue_size
        self._batch_size = max_export_batch_size
        self._delay_s = schedule_delay_s
        self._wake = threading.Event()
        self._export_lock = threading.Lock()
        self._stopped = False
        self.dropped = 0
        self.exported = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="netobs-result-logs", daemon=True)
        self._thread.start()

    def add(self, record: ResultLog) -> None:
        """Queue ``record`` (event loop; no I/O). Beyond ``max_queue_size`` the oldest record is dropped."""
        queue = self._queue
        if len(queue) >= self._max_queue_size:
            self.dropped += 1
        queue.append(record)
        if len(queue) >= self._batch_size and not self._wake.is_set():
            self._wake.set()

    def force_flush(self) -> bool:
        """Export everything queued so far, on the caller's thread; True when every export succeeded."""
        return self._export_queued()

    def shutdown(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._wake.set()
        self._thread.join(timeout=30)
        self._export_queued()
        self._exporter.shutdown()

    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(self._delay_s)
            self._wake.clear()
            self._export_queued()

    def _export_queued(self) -> bool:
        ok = True
        with self._export_lock:
            while self._queue:
                batch: list[ResultLog] = []
                popleft = self._queue.popleft
                try:
                    for _ in range(self._batch_size):
                        batch.append(popleft())
                except IndexError:
                    pass
                ok = self._export(batch) and ok
        return ok

    def _export(self, batch: list[ResultLog]) -> bool:
        try:
            sent = self._exporter.export_request(self._encoder.encode(batch), len(batch))
        except Exception:
            log.exception("exporting %d result log records failed", len(batch))
            sent = False
        if sent:
            self.exported += len(batch)
        else:
            self.failed += len(batch)
        return sent


def grpc_exporter(**kwargs: Any) -> RequestExporter:
    """The SDK's OTLP/gRPC log exporter (its channel, retries, timeout), sending ready-made requests."""
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.exporter import OTLPExporterMixin

    class GrpcRequestExporter(OTLPLogExporter):
        def _translate_data(self, data: Any) -> ExportLogsServiceRequest:
            request: ExportLogsServiceRequest = data[0]
            return request

        def _count_data(self, data: Any) -> int:
            count: int = data[1]
            return count

        def export_request(self, request: ExportLogsServiceRequest, count: int) -> bool:
            # OTLPExporterMixin._export passes ``data`` only to the two methods above.
            result = OTLPExporterMixin._export(self, (request, count))  # type: ignore[misc]
            return result is LogRecordExportResult.SUCCESS

        def shutdown(self, timeout_millis: float = 30_000, **kw: Any) -> None:
            super().shutdown(timeout_millis=timeout_millis)

    return GrpcRequestExporter(**kwargs)


def http_exporter(**kwargs: Any) -> RequestExporter:
    """The SDK's OTLP/HTTP log exporter (its session, retries, timeout, size limit), sending ready-made
    requests."""
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    class HttpRequestExporter(OTLPLogExporter):
        def export_request(self, request: ExportLogsServiceRequest, count: int) -> bool:
            if self._shutdown:
                return False
            # What OTLPLogExporter.export does after encode_logs, with the exporter's own metrics.
            with self._metrics.export_operation(count) as result:
                data = request.SerializeToString()
                if 0 < self._max_request_size < len(data):
                    log.warning("dropping %d result log records: %d bytes exceed the request limit", count, len(data))
                    return False
                sent = self._client.export(data)
                if not sent.success:
                    result.error = sent.error
                    return False
            return True

    return HttpRequestExporter(**kwargs)
