"""The result log records on a short path to OTLP: a tuple queued per result, protobuf built per batch.

Theory of operation. Through the OpenTelemetry SDK one log record costs ~30-40 µs on the event loop
(``Logger.emit``: an API record, attribute validation, a read-write and a readable copy, context
handling) and ~35 µs more in the batch processor's thread (``encode_logs``: one protobuf message per
record from generic attribute and value encoders). The agent's result records all have the same shape:
a string body (the result JSON), a timestamp, severity INFO, the event name and three string attributes.
So the agent hands a tuple to a ``_otlpdirect.Batcher`` on the loop, which writes the record here in the
protobuf wire format (~3 µs per record in Python, a fraction of a µs with the same writer in C,
``_wire.encode_result_logs``, used when built) and queues the bytes; the batcher's thread joins a batch of
them into an ``ExportLogsServiceRequest`` and hands it to the OTLP exporter (gRPC or HTTP) with its own
retry and timeout handling. Resource and scope are encoded once by
the SDK's own encoders, so what the collector receives is field for field what ``encode_logs`` makes of
the same record (``tests/unit/test_resultlogs.py`` compares them).
"""

from __future__ import annotations

from collections.abc import Sequence

from netobs._protowire import NATIVE, PACK_FIXED64, RequestEncoder, attributes, field, key_value, varint

SEVERITY_INFO = 9  # SeverityNumber.INFO
RESULT_EVENT_NAME = "netobs.probe.result"

# (time_unix_nano, observed_time_unix_nano, body, check name, check type, result id)
ResultLog = tuple[int, int, str, str, str, str]


class ResultLogEncoder(RequestEncoder[ResultLog]):
    """Builds serialised ``ExportLogsServiceRequest``s for result logs of one resource and scope."""

    def encode_native(self, items: Sequence[ResultLog]) -> bytes | None:
        assert NATIVE is not None
        encoded: bytes | None = NATIVE.encode_result_logs(items, SEVERITY_INFO, RESULT_EVENT_NAME)
        return encoded

    def encode_python(self, items: Sequence[ResultLog]) -> bytes:
        return encode_result_logs_python(items)


def encode_result_logs_python(items: Sequence[ResultLog]) -> bytes:
    """The records as ScopeLogs.log_records fields, by the Python writer (the C writer's reference)."""
    return b"".join(map(_record, items))


# LogRecord fields (logs.proto): time_unix_nano 1 (fixed64), severity_number 2, body 5, attributes 6,
# observed_time_unix_nano 11 (fixed64), event_name 12; each record in ScopeLogs.log_records (2).
_SEVERITY = b"\x10" + varint(SEVERITY_INFO)
_EVENT_NAME = field(b"\x62", RESULT_EVENT_NAME.encode())


def _record(r: ResultLog) -> bytes:
    time_ns, observed_ns, body, check_name, check_type, result_id = r
    record = b"".join(
        (
            b"\x09",
            PACK_FIXED64(time_ns),
            _SEVERITY,
            field(b"\x2a", field(b"\x0a", body.encode())),
            attributes(b"\x32", {"netobs.check.name": check_name, "netobs.check.type": check_type}),
            field(b"\x32", key_value("netobs.result.id", result_id)),  # unique per record: not cached
            b"\x59",
            PACK_FIXED64(observed_ns),
            _EVENT_NAME,
        )
    )
    return field(b"\x12", record)
