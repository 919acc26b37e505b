"""The result log records on a short path to OTLP: a tuple queued per result, protobuf built per batch.

Theory of operation. Through the OpenTelemetry SDK one log record costs ~30-40 µs on the event loop
(``Logger.emit``: an API record, attribute validation, a read-write and a readable copy, context
handling) and ~35 µs more in the batch processor's thread (``encode_logs``: one protobuf message per
record from generic attribute and value encoders). The agent's result records all have the same shape:
a string body (the result JSON), a timestamp, severity INFO, the event name and three string attributes.
So the agent only appends a tuple to a ``_otlpdirect.Batcher`` on the loop, and the batcher's thread builds
the ``ExportLogsServiceRequest`` here, once per batch (~5 µs per record), and hands it to the OTLP
exporter (gRPC or HTTP) with its own retry and timeout handling. Resource and scope are encoded once by
the SDK's own encoders, so what the collector receives is field for field what ``encode_logs`` makes of
the same record (``tests/unit/test_resultlogs.py`` compares them).
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.exporter.otlp.proto.common._internal import _encode_instrumentation_scope, _encode_resource
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

SEVERITY_INFO = 9  # SeverityNumber.INFO
RESULT_EVENT_NAME = "netobs.probe.result"

# (time_unix_nano, observed_time_unix_nano, body, check name, check type, result id)
ResultLog = tuple[int, int, str, str, str, str]


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
