"""Result log records on the short path: the same OTLP as the SDK's, batched, and really sent."""

from __future__ import annotations

import contextlib
import http.server
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from netobs import __version__
from netobs._otlpdirect import MAX_REST_S, Batcher
from netobs._resultlogs import ResultLog, ResultLogEncoder
from netobs.config import parse_config
from netobs.telemetry import INSTRUMENTATION_SCOPE, Telemetry, build_resource
from tests.contract.exemplars import result_of_type

SCOPE = InstrumentationScope(INSTRUMENTATION_SCOPE, __version__)


@pytest.mark.parametrize("check_type", ["icmp", "http", "traceroute"])
def test_encoding_is_what_the_sdk_encoder_makes_of_the_same_record(check_type: str) -> None:
    cfg = parse_config("agent_id: ams-7\npop: ams")
    sdk = Telemetry.in_memory(cfg)  # results through the SDK's logger and processors
    results = [result_of_type(check_type), result_of_type(check_type)]
    results[1].result_id, results[1].started_at_ms = "another-id", 1_700_000_000_123
    for r in results:
        sdk.record(r)
    finished = sdk.log_exporter.get_finished_logs()
    expected = encode_logs(finished)
    records: list[ResultLog] = [
        (
            r.started_at_ms * 1_000_000,
            int(f.log_record.observed_timestamp or 0),
            r.to_json(),
            r.check_name,
            r.check_type,
            r.result_id,
        )
        for r, f in zip(results, finished, strict=True)
    ]
    got = ExportLogsServiceRequest.FromString(ResultLogEncoder(build_resource(cfg), SCOPE).encode(records))
    assert got == expected
    assert got.SerializeToString(deterministic=True) == expected.SerializeToString(deterministic=True)


class _Recorder:
    def __init__(self, fail: bool = False, raises: bool = False) -> None:
        self.requests: list[tuple[ExportLogsServiceRequest, int]] = []
        self.fail, self.raises, self.shut = fail, raises, False

    def export_request(self, request: bytes, count: int) -> bool:
        if self.raises:
            raise RuntimeError("boom")
        self.requests.append((ExportLogsServiceRequest.FromString(request), count))  # as a collector reads it
        return not self.fail

    def shutdown(self) -> None:
        self.shut = True


def _rec(i: int) -> ResultLog:
    return (i, i, f"body-{i}", "c", "icmp", f"id-{i}")


def _bodies(recorder: _Recorder) -> list[list[str]]:
    return [
        [lr.body.string_value for lr in req.resource_logs[0].scope_logs[0].log_records] for req, _ in recorder.requests
    ]


@pytest.mark.parametrize(
    ("added", "batch", "queue", "batches", "dropped"),
    [
        (5, 2, 100, [["body-0", "body-1"], ["body-2", "body-3"], ["body-4"]], 0),
        (1, 2048, 100, [["body-0"]], 0),
        (5, 10, 3, [["body-2", "body-3", "body-4"]], 2),  # a full queue drops the oldest
    ],
)
def test_batches_on_flush(
    added: int, batch: int, queue: int, batches: list[list[str]], dropped: int, *, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = _Recorder()
    batcher = Batcher(
        ResultLogEncoder(build_resource(parse_config("agent_id: a\npop: p")), SCOPE),
        recorder,
        "test",
        max_queue_size=queue,
        max_export_batch_size=batch,
        schedule_delay_s=3600,
    )
    try:
        for i in range(added):
            batcher.add(_rec(i))
        assert batcher.force_flush()
        assert _bodies(recorder) == batches
        assert [c for _, c in recorder.requests] == [len(b) for b in batches]
        assert (batcher.exported, batcher.dropped) == (sum(len(b) for b in batches), dropped)
        # a full queue is said once per 10 s, not once per dropped item
        warnings = [r.getMessage().split(";")[0] for r in caplog.records if "queue full" in r.getMessage()]
        assert warnings == (["test: queue full (3 items), the oldest dropped: 1 so far"] if dropped else [])
    finally:
        batcher.shutdown()
    assert recorder.shut


def _batcher(recorder: _Recorder, batch: int, delay_s: float = 3600, rest_factor: float = 0.0) -> Batcher[ResultLog]:
    encoder = ResultLogEncoder(build_resource(parse_config("agent_id: a\npop: p")), SCOPE)
    return Batcher(
        encoder,
        recorder,
        "test",
        max_export_batch_size=batch,
        schedule_delay_s=delay_s,
        rest_factor=rest_factor,
    )


def _until(done: Callable[[], bool], timeout_s: float = 5.0) -> None:
    for _ in range(int(timeout_s / 0.01)):
        if done():
            return
        threading.Event().wait(0.01)


@pytest.mark.parametrize(
    ("batch", "delay_s", "added", "requests"),
    [
        (3, 3600, 3, [3]),  # a full batch wakes the export thread
        (100, 0.05, 7, [7]),  # the timer exports a partial one
    ],
)
def test_the_export_thread_sends_when_a_batch_is_full_or_the_timer_fires(
    batch: int, delay_s: float, added: int, requests: list[int]
) -> None:
    recorder = _Recorder()
    batcher = _batcher(recorder, batch, delay_s)
    try:
        for i in range(added):
            batcher.add(_rec(i))
        _until(lambda: bool(recorder.requests))
        assert [c for _, c in recorder.requests] == requests
        assert _bodies(recorder) == [[f"body-{i}" for i in range(added)]]
    finally:
        batcher.shutdown()


class _SlowRecorder(_Recorder):
    """An exporter whose every request takes 20 ms (a collector across a network)."""

    def export_request(self, request: bytes, count: int) -> bool:
        threading.Event().wait(0.02)
        return super().export_request(request, count)


def test_items_arriving_during_an_export_wait_for_a_full_batch() -> None:
    recorder = _SlowRecorder()
    batcher = _batcher(recorder, 100)
    try:
        for i in range(1050):  # arrives while the thread exports: one item every ~0.2 ms
            batcher.add(_rec(i))
            threading.Event().wait(0.0002)
        _until(lambda: sum(c for _, c in recorder.requests) >= 1000)
        assert [c for _, c in recorder.requests] == [100] * 10  # full batches only, in order
        assert _bodies(recorder)[0][0] == "body-0" and _bodies(recorder)[-1][-1] == "body-999"
        assert batcher.force_flush()  # the rest goes out on a flush (or when the timer fires)
        assert [c for _, c in recorder.requests] == [100] * 10 + [50]
    finally:
        batcher.shutdown()


def test_a_flush_exports_what_was_queued_when_it_started() -> None:
    batcher: Batcher[ResultLog]
    added = 0

    class _Feeding(_Recorder):
        """Two more items arrive during each of the first three requests."""

        def export_request(self, request: bytes, count: int) -> bool:
            nonlocal added
            while added < 6 and added < 2 * (len(self.requests) + 1):
                batcher.add(_rec(100 + added))
                added += 1
            return super().export_request(request, count)

    recorder = _Feeding()
    batcher = _batcher(recorder, 4)
    try:
        for i in range(10):
            batcher.add(_rec(i))
        assert batcher.force_flush()
        assert [c for _, c in recorder.requests] == [4, 4, 2]  # the 10 queued, not the 6 that came during
        assert batcher.force_flush()
        assert [c for _, c in recorder.requests] == [4, 4, 2, 4, 2]
    finally:
        batcher.shutdown()


class _BusyRecorder(_Recorder):
    """An exporter whose every request takes 20 ms of its thread's CPU (a large request's serialisation)."""

    def export_request(self, request: bytes, count: int) -> bool:
        until = time.thread_time() + 0.02
        while time.thread_time() < until:
            pass
        return super().export_request(request, count)


def test_the_export_thread_rests_after_each_request_in_proportion_to_its_cpu() -> None:
    recorder = _BusyRecorder()
    batcher = _batcher(recorder, 10, rest_factor=2.0)
    rests: list[tuple[str, float]] = []
    batcher._sleep = lambda s: rests.append((threading.current_thread().name, s))  # type: ignore[method-assign]
    try:
        for i in range(30):  # three full batches: the thread wakes and sends them
            batcher.add(_rec(i))
        _until(lambda: len(rests) == 3)
        assert [c for _, c in recorder.requests] == [10, 10, 10]
        assert _bodies(recorder) == [[f"body-{i}" for i in range(j, j + 10)] for j in (0, 10, 20)]  # whole
        assert {name for name, _ in rests} == {"test"}  # on the export thread, after each request (>= 20 ms,
        assert all(0.04 <= s <= MAX_REST_S for _, s in rests), rests  # twice that, at most MAX_REST_S)
        for i in range(30):
            batcher.add(_rec(i))
        assert batcher.force_flush()  # a flush (the caller's thread) sends at once, without resting
        assert [c for _, c in recorder.requests] == [10] * 6
        assert len(rests) == 3
    finally:
        batcher.shutdown()


def test_records_are_encoded_where_they_are_added_and_a_bad_one_is_counted() -> None:
    recorder = _Recorder()
    batcher = _batcher(recorder, 100)
    encoded_on: list[str] = []
    encode_slice = batcher._encoder.encode_slice

    def spy(items: Any) -> bytes:
        encoded_on.append(threading.current_thread().name)
        if items[0] == "not a record":
            raise TypeError("not a record")
        return encode_slice(items)

    batcher._encoder.encode_slice = spy  # type: ignore[method-assign]
    try:
        batcher.add(_rec(1))
        batcher.add("not a record")  # type: ignore[arg-type]
        batcher.add(_rec(2))
        assert encoded_on == [threading.current_thread().name] * 3  # the adding thread (the loop), not "test"
        assert batcher.failures == {"TypeError": 1}
        assert batcher.force_flush()
        assert _bodies(recorder) == [["body-1", "body-2"]]
        assert batcher.exported == 2
    finally:
        batcher.shutdown()


def test_a_request_encoded_in_slices_is_the_request_encoded_whole() -> None:
    encoder = ResultLogEncoder(build_resource(parse_config("agent_id: a\npop: p")), SCOPE)
    records = [_rec(i) for i in range(7)]
    slices = [encoder.encode_slice(records[i : i + 3]) for i in range(0, 7, 3)]
    assert encoder.request(slices) == encoder.encode(records)
    request = ExportLogsServiceRequest.FromString(encoder.request(slices))
    assert [r.body.string_value for r in request.resource_logs[0].scope_logs[0].log_records] == [
        f"body-{i}" for i in range(7)
    ]


@pytest.mark.parametrize("mode", ["fails", "raises"])
def test_export_failures_are_counted_not_raised(mode: str) -> None:
    recorder = _Recorder(fail=mode == "fails", raises=mode == "raises")
    batcher = _batcher(recorder, 2048)
    batcher.add(_rec(1))
    batcher.add(_rec(2))
    assert not batcher.force_flush()
    assert (batcher.exported, batcher.failed) == (0, 2)
    batcher.shutdown()


# -- against real OTLP receivers on loopback (gRPC server, HTTP server) ---------------------------------


GRPC_METHOD = {
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
    "traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
}


@contextlib.contextmanager
def grpc_receiver(signal: str = "logs") -> Iterator[tuple[str, list[bytes]]]:
    """A gRPC server on loopback that keeps the raw requests of ``signal``'s Export calls."""
    import grpc  # type: ignore[import-untyped]

    received: list[bytes] = []

    class Handler(grpc.GenericRpcHandler):  # type: ignore[misc]
        def service(self, details: Any) -> Any:
            if details.method != GRPC_METHOD[signal]:
                return grpc.unary_unary_rpc_method_handler(lambda req, ctx: b"")

            def export(request: bytes, context: Any) -> bytes:
                received.append(request)
                return b""

            return grpc.unary_unary_rpc_method_handler(export)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((Handler(),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", received
    finally:
        server.stop(grace=None)


@contextlib.contextmanager
def http_receiver(signal: str = "logs") -> Iterator[tuple[str, list[bytes]]]:
    """An HTTP server on loopback that keeps the bodies POSTed to /v1/<signal>."""
    received: list[bytes] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.path == f"/v1/{signal}":
                received.append(body)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@contextlib.contextmanager
def otlp_telemetry(protocol: str, signal: str) -> Iterator[tuple[Telemetry, list[bytes]]]:
    """The agent's telemetry exporting over OTLP (``protocol``) to a receiver on loopback that keeps the
    raw requests of ``signal``; read them after leaving the block (and shutting the telemetry down)."""
    receiver = grpc_receiver if protocol == "grpc" else http_receiver
    with receiver(signal) as (endpoint, received):
        cfg = parse_config(
            f"agent_id: ams-7\npop: ams\nexporter: {{endpoint: '{endpoint}', protocol: {protocol}, "
            "export_interval_s: 300}\noutputs: {stdout_json: false}"
        )
        yield Telemetry.from_config(cfg), received


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_otlp_receiver_gets_one_record_per_result_with_body_timestamp_attributes_resource(protocol: str) -> None:
    with otlp_telemetry(protocol, "logs") as (telemetry, received):
        results = [result_of_type("icmp"), result_of_type("dns")]
        results[1].result_id = "second"
        try:
            for r in results:
                telemetry.record(r)
            telemetry.flush()
        finally:
            telemetry.shutdown()
        records = []
        for raw in received:
            for rl in ExportLogsServiceRequest.FromString(raw).resource_logs:
                resource = {kv.key: kv.value.string_value for kv in rl.resource.attributes}
                for sl in rl.scope_logs:
                    assert sl.scope.name == INSTRUMENTATION_SCOPE
                    records.extend((resource, lr) for lr in sl.log_records)
    assert len(records) == 2
    for (resource, lr), r in zip(records, results, strict=True):
        assert lr.body.string_value == r.to_json()
        assert lr.time_unix_nano == r.started_at_ms * 1_000_000
        assert lr.observed_time_unix_nano > 0 and lr.severity_number == 9
        assert lr.event_name == "netobs.probe.result"
        assert {kv.key: kv.value.string_value for kv in lr.attributes} == {
            "netobs.check.name": r.check_name,
            "netobs.check.type": r.check_type,
            "netobs.result.id": r.result_id,
        }
        assert (resource["netobs.agent.id"], resource["netobs.pop"], resource["service.name"]) == (
            "ams-7",
            "ams",
            "netobs-agent",
        )
