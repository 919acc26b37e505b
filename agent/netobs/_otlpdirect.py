"""Sending OTLP requests built by the agent itself: a batching queue with an export thread, and the SDK's
OTLP exporters (gRPC and HTTP: their channels, retries, timeouts) adapted to send a ready-made request.

The agent builds the protobuf of its result log records (``_resultlogs``) and of its spans
(``_lightspans``) directly, instead of going through the SDK's per-item objects and generic encoders.
``Batcher.add`` encodes the item where it is added (the event loop: the C writer, a few µs, no I/O) and
appends the bytes to a deque; its thread joins a batch of them into a request and exports it. Batching
follows the SDK's batch processors: export when ``max_export_batch_size`` items wait or every
``schedule_delay_s``; the queue holds at most ``max_queue_size`` items and drops the oldest beyond.

Why encode on the loop: an export thread shares the GIL with it, and the C writer holds the GIL for as long
as it writes (the switch interval does not apply inside C), so a thread encoding 128 items at a time held
the loop up ~0.3 ms each time. On the loop a record's encoding is a few µs among the run's own work, the
threads only build the request from bytes and send it (and rest after each one, ``rest_factor``, see
``MAX_REST_S``), and the queue holds bytes, which the garbage collector does not scan, instead of span
objects with their attribute dicts. Measured at 2,000 HTTP probes/s (bench/README.md, fifteenth session):
no difference in CPU or start lateness beyond this host's noise.
"""

from __future__ import annotations

import collections
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Generic, Literal, Protocol, TypeVar

from netobs._protowire import RequestEncoder

log = logging.getLogger(__name__)

T = TypeVar("T")
Signal = Literal["logs", "traces", "metrics"]
# An export thread at work holds the GIL for the event loop's every hand-over; a burst of tens of ms (a batch
# of spans, the metrics of thousands of series) made probes start that late. After each request (and each
# slice of metric encoding) the production threads rest ``rest_factor`` times the CPU it took (at most
# MAX_REST_S).
MAX_REST_S = 0.05
DROP_LOG_EVERY_S = 10.0  # a full queue is logged at most this often (with the count so far)
UNKNOWN_EXPORTER = "unknown_otlp_exporter"  # otel.component.type of an exporter that does not say
OTHER_FAILURE = "_OTHER"  # error.type of items whose export failed without an exception
_SIGNAL_ITEM = {"traces": "span", "logs": "log", "metrics": "metric"}  # in the exporters' component types
# A request: a protobuf message (ExportLogsServiceRequest, ExportTraceServiceRequest,
# ExportMetricsServiceRequest) or one already serialised (bytes), which the exporters send as it is.
Message = Any


class RequestExporter(Protocol):
    """An OTLP exporter that sends a ready-made request."""

    def export_request(self, request: Message, count: int) -> bool: ...

    def shutdown(self) -> None: ...


class _ExportThread:
    """A daemon thread that exports on its own schedule (``_run``), on demand (``force_flush``) and a last
    time at ``shutdown``; counts what was exported and what failed."""

    def __init__(self, exporter: RequestExporter, name: str, rest_factor: float = 0.0) -> None:
        self._exporter = exporter
        self._rest_factor = rest_factor
        self._wake = threading.Event()
        self._export_lock = threading.Lock()
        self._stopped = False
        self.exported = 0
        self.failures: collections.Counter[str] = collections.Counter()  # items that failed, by cause
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @property
    def failed(self) -> int:
        """Items whose export failed, whatever the cause."""
        return sum(self.failures.values())

    @property
    def name(self) -> str:
        return self._thread.name

    @property
    def exporter_type(self) -> str:
        """The exporter's ``otel.component.type`` (as the SDK names its OTLP exporters)."""
        return str(getattr(self._exporter, "component_type", UNKNOWN_EXPORTER))

    def force_flush(self) -> bool:
        """Export what there is now, on the caller's thread; True when every export succeeded."""
        return self._flush()

    def shutdown(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._wake.set()
        self._thread.join(timeout=30)
        self._flush()
        self._exporter.shutdown()

    def _run(self) -> None:
        raise NotImplementedError

    def _flush(self) -> bool:
        raise NotImplementedError

    _sleep = staticmethod(time.sleep)

    def _rest(self, cpu_start_s: float) -> None:
        """After a slice of work on the export thread: rest ``rest_factor`` times the CPU it took (a flush
        or the last export at shutdown does not wait)."""
        if self._rest_factor > 0 and not self._stopped and threading.current_thread() is self._thread:
            self._sleep(min(MAX_REST_S, (time.thread_time() - cpu_start_s) * self._rest_factor))

    def _send(self, encode: Callable[[], Message], count: int) -> bool:
        """Encode and export one request of ``count`` items, then rest; a failure is logged and counted,
        never raised."""
        cause = OTHER_FAILURE  # the exporter gave up (after its retries) without telling why
        try:
            request = encode()
            cpu_start_s = time.thread_time()
            try:
                sent = self._exporter.export_request(request, count)
            finally:
                self._rest(cpu_start_s)
        except Exception as exc:
            log.exception("%s: exporting %d items failed", self._thread.name, count)
            sent, cause = False, type(exc).__qualname__
        if sent:
            self.exported += count
        else:
            self.failures[cause] += count
        return sent


class Batcher(_ExportThread, Generic[T]):
    """Encodes items with ``encoder`` as they are added, and exports them in batches from a thread of its
    own."""

    def __init__(
        self,
        encoder: RequestEncoder[T],
        exporter: RequestExporter,
        name: str,
        *,
        max_queue_size: int = 65536,
        max_export_batch_size: int = 2048,
        schedule_delay_s: float = 1.0,
        rest_factor: float = 0.0,
    ) -> None:
        super().__init__(exporter, name, rest_factor)
        self._encoder = encoder
        self._queue: collections.deque[bytes] = collections.deque(maxlen=max_queue_size)
        self._max_queue_size = max_queue_size
        self._batch_size = max_export_batch_size
        self._delay_s = schedule_delay_s
        self.dropped = 0
        self._drops_logged_at = -DROP_LOG_EVERY_S
        self._thread.start()

    def add(self, record: T) -> None:
        """Encode and queue ``record`` (event loop; no I/O). Beyond ``max_queue_size`` the oldest item is
        dropped. A record that cannot be encoded is logged and counted as failed, never raised."""
        try:
            encoded = self._encoder.encode_slice((record,))
        except Exception as exc:
            log.exception("%s: encoding a record failed, dropped", self._thread.name)
            self.failures[type(exc).__qualname__] += 1
            return
        queue = self._queue
        if len(queue) >= self._max_queue_size:
            self.dropped += 1
            self._report_drops()
        queue.append(encoded)
        if len(queue) >= self._batch_size and not self._wake.is_set():
            self._wake.set()

    def _report_drops(self) -> None:
        now = time.monotonic()
        if now - self._drops_logged_at >= DROP_LOG_EVERY_S:
            self._drops_logged_at = now
            log.warning(
                "%s: queue full (%d items), the oldest dropped: %d so far; the export is not keeping up "
                "(the collector down or slow, or more items per second than the thread can encode)",
                self._thread.name,
                self._max_queue_size,
                self.dropped,
            )

    def _run(self) -> None:
        while not self._stopped:
            full = self._wake.wait(self._delay_s)
            self._wake.clear()
            self._export(whole_queue=not full or self._stopped)

    def _flush(self) -> bool:
        return self._export(whole_queue=True)

    def _export(self, whole_queue: bool) -> bool:
        """Export what is queued now: everything (the timer, a flush), or only the full batches (woken by a
        full batch). Items that arrive meanwhile wait for the next full batch or the timer: chasing them
        made the thread send ~70 spans per request at 10,000 spans/s (110 requests/s, ~6 µs of CPU per
        span in the gRPC call alone) and result logs in requests of 1-30 records."""
        ok = True
        with self._export_lock:
            queue = self._queue
            pending = len(queue) if whole_queue else len(queue) - len(queue) % self._batch_size
            popleft = queue.popleft
            while pending > 0:  # only this loop takes items out (under the lock), so they are all there
                batch = [popleft() for _ in range(min(pending, self._batch_size))]
                pending -= len(batch)
                ok = self._send(functools.partial(self._encoder.request, batch), len(batch)) and ok
        return ok


class PeriodicExporter(_ExportThread):
    """Exports what ``encode(now_ns)`` returns (requests with their item counts) every ``interval_s``,
    from a thread of its own (the agent's summed metrics, see ``_fastmetrics.DirectMetricEncoder``)."""

    def __init__(
        self,
        encode: Callable[[int], Iterable[tuple[Message, int]]],
        exporter: RequestExporter,
        name: str,
        interval_s: float,
        rest_factor: float = 0.0,
    ) -> None:
        super().__init__(exporter, name, rest_factor)
        self._encode = encode
        self._interval_s = interval_s
        self._thread.start()

    def _run(self) -> None:
        while not self._wake.wait(self._interval_s):
            self._flush()

    def _flush(self) -> bool:
        ok = True
        with self._export_lock:
            requests = iter(self._encode(time.time_ns()))
            while True:
                cpu_start_s = time.thread_time()
                try:
                    request, count = next(requests)
                except StopIteration:
                    break
                except Exception:
                    log.exception("%s: encoding failed", self._thread.name)
                    return False
                self._rest(cpu_start_s)
                ok = self._send(lambda: request, count) and ok  # noqa: B023 - called at once
        return ok


class _PassBytes:
    """A gRPC channel for the generated service stubs whose methods send a request that is already
    serialised (bytes) as it is, and serialise a message as the stub would."""

    def __init__(self, channel: Any) -> None:
        self._channel = channel

    def unary_unary(self, method: str, request_serializer: Callable[[Any], bytes], **kwargs: Any) -> Any:
        def serialise(request: Message) -> bytes:
            return request if isinstance(request, bytes) else request_serializer(request)

        return self._channel.unary_unary(method, request_serializer=serialise, **kwargs)


def grpc_exporter(signal: Signal, **kwargs: Any) -> RequestExporter:
    """The SDK's OTLP/gRPC exporter for ``signal`` (its channel, retries, timeout), sending ready-made
    requests."""
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.exporter import OTLPExporterMixin
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    base: Any = {"logs": OTLPLogExporter, "traces": OTLPSpanExporter, "metrics": OTLPMetricExporter}[signal]

    class GrpcRequestExporter(base):  # type: ignore[misc]
        component_type = f"otlp_grpc_{_SIGNAL_ITEM[signal]}_exporter"

        def _initialize_channel_and_stub(self) -> None:
            super()._initialize_channel_and_stub()
            self._client = self._stub(_PassBytes(self._channel))  # (also called when the SDK reconnects)

        def _translate_data(self, data: Any) -> Message:
            request: Message = data[0]
            return request

        def _count_data(self, data: Any) -> int:
            count: int = data[1]
            return count

        def export_request(self, request: Message, count: int) -> bool:
            # OTLPExporterMixin._export passes ``data`` only to the two methods above.
            result = OTLPExporterMixin._export(self, (request, count))  # type: ignore[type-var]
            return result.name == "SUCCESS"  # LogRecordExportResult / SpanExportResult / MetricExportResult

        def shutdown(self, timeout_millis: float = 30_000, **kw: Any) -> None:
            super().shutdown(timeout_millis=timeout_millis)

    exporter: RequestExporter = GrpcRequestExporter(**kwargs)
    return exporter


def http_exporter(signal: Signal, **kwargs: Any) -> RequestExporter:
    """The SDK's OTLP/HTTP exporter for ``signal`` (its session, retries, timeout, size limit), sending
    ready-made requests."""
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    base: Any = {"logs": OTLPLogExporter, "traces": OTLPSpanExporter, "metrics": OTLPMetricExporter}[signal]

    class HttpRequestExporter(base):  # type: ignore[misc]
        component_type = f"otlp_http_{_SIGNAL_ITEM[signal]}_exporter"

        def export_request(self, request: Message, count: int) -> bool:
            if self._shutdown:
                return False
            if signal == "metrics":  # the metric exporter sends one encoded request in _export_batch
                return bool(self._export_batch(request).name == "SUCCESS")
            # What the exporter's export does after encoding, with the exporter's own metrics.
            with self._metrics.export_operation(count) as result:
                data = request if isinstance(request, bytes) else request.SerializeToString()
                if 0 < self._max_request_size < len(data):
                    log.warning("dropping %d %s items: %d bytes exceed the request limit", count, signal, len(data))
                    return False
                sent = self._client.export(data)
                if not sent.success:
                    result.error = sent.error
                    return False
            return True

    exporter: RequestExporter = HttpRequestExporter(**kwargs)
    return exporter
