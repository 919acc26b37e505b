"""The HTTP probe end to end over in-process socket pairs: no network, real h11/h2 on both ends.

``FakeNet`` is the probe's resolver and connector: a name maps to an address, an (address, port) to a
handler coroutine that serves one connection on the other end of a ``socket.socketpair()``.
"""

from __future__ import annotations

import asyncio
import errno
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import h2.config
import h2.connection
import h2.events
import pytest

from netobs.config import HttpCheck, parse_config
from netobs.probes.http import HttpProbe
from netobs.result import ErrorType, ProbeResult
from netobs.runner import Runner
from netobs.telemetry import InMemoryTelemetry, Telemetry

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@dataclass
class Seen:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeNet:
    hosts: dict[str, str]
    handlers: dict[tuple[str, int], Handler]
    resolved: list[str] = field(default_factory=list)
    connects: list[tuple[str, int]] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def resolve(self, host: str, ip_version: str) -> list[str]:
        self.resolved.append(host)
        if host not in self.hosts:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [self.hosts[host]]

    async def connect(self, ip: str, port: int) -> socket.socket:
        self.connects.append((ip, port))
        handler = self.handlers.get((ip, port))
        if handler is None:
            raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
        client, server = socket.socketpair()
        client.setblocking(False)
        server.setblocking(False)
        self.tasks.append(asyncio.create_task(self._serve(handler, server)))
        return client

    @staticmethod
    async def _serve(handler: Handler, sock: socket.socket) -> None:
        reader, writer = await asyncio.open_connection(sock=sock)
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away: what several cases are about
        finally:
            writer.transport.abort()

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def _read_request(reader: asyncio.StreamReader, seen: list[Seen]) -> None:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    request_line, *lines = head.split("\r\n")
    method, target, _ = request_line.split(" ")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines if ln)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    seen.append(Seen(method, target, headers, body))


def h1(raw: bytes, seen: list[Seen] | None = None, delay_s: float = 0.0) -> Handler:
    """Reads one request, waits ``delay_s``, answers ``raw`` and closes."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader, seen if seen is not None else [])
        await asyncio.sleep(delay_s)
        writer.write(raw)
        await writer.drain()

    return handler


def h1_endless() -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader, [])
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        chunk = b"4000\r\n" + b"x" * 0x4000 + b"\r\n"
        while True:
            writer.write(chunk)
            await writer.drain()

    return handler


def silent() -> Handler:
    """Accepts and reads, never answers (a stalled TLS or HTTP peer)."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(65536):
            pass

    return handler


def h2_server(
    status: int = 200,
    body: bytes = b"",
    headers: list[tuple[str, str]] | None = None,
    *,
    endless: bool = False,
    reset: bool = False,
    seen: list[dict[str, str]] | None = None,
) -> Handler:
    """An HTTP/2 server (prior knowledge) answering every stream the same way."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        conn.initiate_connection()
        pending: dict[int, bytes] = {}
        while True:
            data = await reader.read(65536)
            if not data:
                return
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    if seen is not None:
                        seen.append({str(k): str(v) for k, v in event.headers})
                    if reset:
                        conn.reset_stream(event.stream_id, error_code=2)
                        continue
                    response = [(":status", str(status)), *(headers or [])]
                    conn.send_headers(event.stream_id, response, end_stream=not body and not endless)
                    if body or endless:
                        pending[event.stream_id] = body
            for sid in list(pending):
                _send_within_window(conn, sid, pending, endless)
            writer.write(conn.data_to_send())
            await writer.drain()

    return handler


def _send_within_window(conn: h2.connection.H2Connection, sid: int, pending: dict[int, bytes], endless: bool) -> None:
    """Sends what the flow-control window allows; the rest waits for the client's WINDOW_UPDATE."""
    while True:
        window = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
        if window == 0:
            return
        if endless:
            conn.send_data(sid, b"y" * window)
            continue
        rest = pending[sid]
        chunk, left = rest[:window], rest[window:]
        conn.send_data(sid, chunk, end_stream=not left)
        if not left:
            del pending[sid]
            return
        pending[sid] = left


def _check(url: str, **fields: Any) -> HttpCheck:
    return HttpCheck(name="web", type="http", targets=[url], timeout_s=2.0, interval_s=10.0, **fields)


@pytest.fixture
async def net() -> AsyncIterator[FakeNet]:
    fake = FakeNet(hosts={"a.test": "192.0.2.1", "b.test": "192.0.2.2"}, handlers={})
    yield fake
    await fake.close()


CFG = parse_config("agent_id: a1\npop: fra\n")


async def _run(net: FakeNet, check: HttpCheck, telemetry: InMemoryTelemetry | None = None) -> ProbeResult:
    probe = HttpProbe(resolver=net, connector=net.connect)
    tel = telemetry or Telemetry.in_memory(CFG)
    runner = Runner("a1", "fra", {"http": probe}, sinks=[tel.record], tracer=tel.tracer)
    return await runner.run(check, check.targets[0])


OK_BODY = b"hello netobs"
OK = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 12\r\n\r\nhello netobs"
CHUNKED = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n7\r\n netobs\r\n0\r\n\r\n"


@pytest.mark.parametrize(
    ("raw", "fields", "expected"),
    [
        (OK, {}, (None, 200, 12)),
        (CHUNKED, {}, (None, 200, 12)),
        (b"HTTP/1.0 200 OK\r\n\r\nuntil close", {}, (None, 200, 11)),
        (b"HTTP/1.1 100 Continue\r\n\r\n" + OK, {}, (None, 200, 12)),
        (b"HTTP/1.1 503 Busy\r\ncontent-length: 0\r\n\r\n", {}, (ErrorType.HTTP_STATUS, 503, 0)),
        (
            b"HTTP/1.1 503 Busy\r\ncontent-length: 0\r\n\r\n",
            {"expect": {"status_codes": [503]}},
            (None, 503, 0),
        ),
        (OK, {"expect": {"headers_match": {"content-type": "^text/plain$"}}}, (None, 200, 12)),
        (OK, {"expect": {"headers_match": {"content-type": "json"}}}, (ErrorType.ASSERTION, 200, 12)),
        (OK, {"expect": {"body_match": ["netobs$"]}}, (None, 200, 12)),
        (OK, {"expect": {"body_not_match": ["hello"]}}, (ErrorType.ASSERTION, 200, 12)),
        (OK, {"max_body_bytes": 12}, (None, 200, 12)),
        (OK, {"max_body_bytes": 11}, (ErrorType.BODY_TOO_LARGE, None, 12)),
        (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", {}, (ErrorType.PROTOCOL, None, None)),
        (b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort", {}, (ErrorType.PROTOCOL, None, None)),
        (b"", {}, (ErrorType.PROTOCOL, None, None)),
    ],
)
async def test_http1_responses(
    net: FakeNet, raw: bytes, fields: dict[str, Any], expected: tuple[ErrorType | None, int | None, int | None]
) -> None:
    error, status, body_bytes = expected
    net.handlers[("192.0.2.1", 8080)] = h1(raw)
    result = await _run(net, _check("http://a.test:8080/x", **fields))
    assert result.error_type == (str(error) if error else None), result.error_message
    assert result.success is (error is None)
    assert result.http is not None
    assert result.http.status_code == status
    assert result.http.body_bytes == body_bytes
    assert result.resolved_ip == "192.0.2.1"
    assert set(result.phases_ms) >= {"dns", "connect", "ttfb"}


async def test_request_carries_method_headers_body_and_traceparent(net: FakeNet) -> None:
    seen: list[Seen] = []
    net.handlers[("192.0.2.1", 8080)] = h1(OK, seen)
    check = _check(
        "http://a.test:8080/api?q=1",
        method="POST",
        headers={"X-Api-Key": "k1", "User-Agent": "custom/1"},
        body='{"a": 1}',
    )
    result = await _run(net, check)
    assert result.success, result.error_message
    [req] = seen
    assert (req.method, req.target, req.body) == ("POST", "/api?q=1", b'{"a": 1}')
    assert req.headers["host"] == "a.test:8080"
    assert req.headers["x-api-key"] == "k1"
    assert req.headers["user-agent"] == "custom/1"
    assert req.headers["content-length"] == "8"
    assert result.http is not None
    assert req.headers["traceparent"] == result.http.traceparent
    assert result.http.traceparent is not None
    assert result.http.traceparent.split("-")[1] == result.trace_id
    assert net.connects == [("192.0.2.1", 8080)]


async def test_no_traceparent_when_disabled(net: FakeNet) -> None:
    seen: list[Seen] = []
    net.handlers[("192.0.2.1", 80)] = h1(OK, seen)
    result = await _run(net, _check("http://a.test/", inject_traceparent=False))
    assert result.success
    assert "traceparent" not in seen[0].headers
    assert result.http is not None
    assert result.http.traceparent is None


def _redirect(status: int, location: str) -> bytes:
    return f"HTTP/1.1 {status} Moved\r\nlocation: {location}\r\ncontent-length: 0\r\n\r\n".encode()


async def test_redirect_chain_accounts_every_hop(net: FakeNet) -> None:
    seen_a: list[Seen] = []
    seen_b: list[Seen] = []
    # a.test:80 -> (302) b.test:8080/two -> (301, relative) b.test:8080/three -> 200; a delay on the last
    # hop shows in its ttfb only.
    a_handler = h1(_redirect(302, "http://b.test:8080/two"), seen_a)
    responses = iter([_redirect(301, "/three"), OK])

    async def b_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raw = next(responses)
        await h1(raw, seen_b, delay_s=0.1 if raw is OK else 0.0)(reader, writer)

    net.handlers[("192.0.2.1", 80)] = a_handler
    net.handlers[("192.0.2.2", 8080)] = b_handler
    result = await _run(net, _check("http://a.test/one", method="POST", body="x"))
    assert result.success, result.error_message
    http = result.http
    assert http is not None
    assert [(h.url, h.status_code) for h in http.redirects] == [
        ("http://a.test/one", 302),
        ("http://b.test:8080/two", 301),
    ]
    assert http.final_url == "http://b.test:8080/three"
    assert http.status_code == 200
    assert net.resolved == ["a.test", "b.test", "b.test"]
    assert result.resolved_ip == "192.0.2.2"
    # a POST redirected by 302 becomes a GET without a body
    assert [(s.method, s.target, s.body) for s in seen_a + seen_b] == [
        ("POST", "/one", b"x"),
        ("GET", "/two", b""),
        ("GET", "/three", b""),
    ]
    for phase in ("dns", "connect", "ttfb", "transfer"):
        hops_total = sum(h.phases_ms[phase] for h in http.redirects)
        assert result.phases_ms[phase] >= hops_total  # the final hop adds its own share
        assert all(h.phases_ms[phase] >= 0 for h in http.redirects)
    assert result.phases_ms["ttfb"] - sum(h.phases_ms["ttfb"] for h in http.redirects) >= 100.0
    assert all(h.phases_ms["ttfb"] < 100.0 for h in http.redirects)


@pytest.mark.parametrize(
    ("fields", "error", "status", "hops"),
    [
        ({"max_redirects": 2}, ErrorType.HTTP_STATUS, 302, 2),
        ({"max_redirects": 0}, ErrorType.HTTP_STATUS, 302, 0),
        ({"follow_redirects": False}, ErrorType.HTTP_STATUS, 302, 0),
        ({"follow_redirects": False, "expect": {"status_codes": [302]}}, None, 302, 0),
    ],
)
async def test_redirect_limits(
    net: FakeNet, fields: dict[str, Any], error: ErrorType | None, status: int, hops: int
) -> None:
    async def loop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await h1(_redirect(302, "/again"))(reader, writer)

    net.handlers[("192.0.2.1", 80)] = loop
    result = await _run(net, _check("http://a.test/", **fields))
    assert result.error_type == (str(error) if error else None)
    assert result.http is not None
    assert result.http.status_code == status
    assert len(result.http.redirects) == hops
    assert len(net.connects) == hops + 1


async def test_redirect_to_unresolvable_host_fails_resolve(net: FakeNet) -> None:
    net.handlers[("192.0.2.1", 80)] = h1(_redirect(307, "http://nowhere.test/"))
    result = await _run(net, _check("http://a.test/"))
    assert result.error_type == str(ErrorType.RESOLVE)
    assert result.http is not None
    assert [h.status_code for h in result.http.redirects] == [307]


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("http://a.test:81/", ErrorType.REFUSED),  # no handler: the connector refuses
        ("http://unknown.test/", ErrorType.RESOLVE),
    ],
)
async def test_connection_errors(net: FakeNet, url: str, error: ErrorType) -> None:
    result = await _run(net, _check(url))
    assert result.error_type == str(error)
    assert not result.success


async def test_first_byte_delay_shows_in_ttfb_only(net: FakeNet) -> None:
    net.handlers[("192.0.2.1", 80)] = h1(OK, delay_s=0.2)
    result = await _run(net, _check("http://a.test/"))
    assert result.success
    assert 200.0 <= result.phases_ms["ttfb"] < 400.0
    assert result.phases_ms["transfer"] < 100.0
    assert result.phases_ms["connect"] < 100.0


async def test_server_that_never_answers_the_request_times_out(net: FakeNet) -> None:
    net.handlers[("192.0.2.1", 80)] = silent()
    check = HttpCheck(name="web", type="http", targets=["http://a.test/"], timeout_s=0.3, interval_s=10)
    result = await _run(net, check)
    assert result.error_type == str(ErrorType.TIMEOUT)
    assert 300.0 <= result.duration_ms < 600.0
    assert result.phases_ms["ttfb"] >= 250.0  # the phase that was running at the deadline
    assert "transfer" not in result.phases_ms
    assert result.http is not None
    assert result.http.traceparent is not None  # partial results survive the timeout


async def test_endless_body_stops_at_the_cap(net: FakeNet) -> None:
    net.handlers[("192.0.2.1", 80)] = h1_endless()
    result = await _run(net, _check("http://a.test/", max_body_bytes=100_000))
    assert result.error_type == str(ErrorType.BODY_TOO_LARGE)
    assert result.http is not None
    assert result.http.body_bytes is not None
    assert 100_000 < result.http.body_bytes <= 100_000 + 65536
    assert result.duration_ms < 1000.0


def answers_http() -> Handler:
    """Answers whatever arrives (a TLS ClientHello) with a plain HTTP response."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)
        writer.write(OK)
        await writer.drain()
        await reader.read(65536)

    return handler


@pytest.mark.parametrize(
    ("handler", "timeout_s"),
    [
        (silent(), 0.5),  # accepts and never answers the ClientHello: stalls until the deadline
        (answers_http(), 2.0),  # plain HTTP where TLS was expected: fails at once
    ],
)
async def test_tls_handshake_failures(net: FakeNet, handler: Handler, timeout_s: float) -> None:
    net.handlers[("192.0.2.1", 443)] = handler
    check = HttpCheck(name="web", type="http", targets=["https://a.test/"], timeout_s=timeout_s, interval_s=10)
    result = await _run(net, check)
    assert result.error_type == str(ErrorType.TLS_HANDSHAKE), result.error_message
    assert result.duration_ms < timeout_s * 1000.0 + 200.0
    assert "tls" in result.phases_ms
    assert "ttfb" not in result.phases_ms


async def test_http2_prior_knowledge(net: FakeNet) -> None:
    seen: list[dict[str, str]] = []
    net.handlers[("192.0.2.1", 80)] = h2_server(
        200, OK_BODY * 1000, [("content-type", "text/plain"), ("x-b", "1")], seen=seen
    )
    check = _check(
        "http://a.test/h2?x=1",
        http_version="2",
        method="PUT",
        body="payload",
        headers={"X-A": "v", "Host": "vhost.test:8080"},
        expect={"headers_match": {"x-b": "^1$"}, "body_match": ["netobs"]},
    )
    result = await _run(net, check)
    assert result.success, result.error_message
    assert result.http is not None
    assert result.http.http_version == "2"
    assert result.http.body_bytes == len(OK_BODY) * 1000
    [req] = seen
    assert req[":method"] == "PUT"
    assert req[":path"] == "/h2?x=1"
    assert req[":authority"] == "vhost.test:8080"  # the configured Host
    assert req["x-a"] == "v"
    assert "host" not in req  # HTTP/2 carries it as :authority only
    assert req["traceparent"] == result.http.traceparent


@pytest.mark.parametrize(
    ("handler", "max_body_bytes", "error"),
    [
        (h2_server(404), 1000, ErrorType.HTTP_STATUS),
        (h2_server(endless=True), 200_000, ErrorType.BODY_TOO_LARGE),
        (h2_server(reset=True), 1000, ErrorType.PROTOCOL),
        (h1(OK), 1000, ErrorType.PROTOCOL),  # an HTTP/1.1 answer to an HTTP/2 preface
    ],
)
async def test_http2_failures(net: FakeNet, handler: Handler, max_body_bytes: int, error: ErrorType) -> None:
    net.handlers[("192.0.2.1", 80)] = handler
    result = await _run(net, _check("http://a.test/", http_version="2", max_body_bytes=max_body_bytes))
    assert result.error_type == str(error), result.error_message


async def test_trace_has_a_span_per_phase_and_the_header_names_one(net: FakeNet) -> None:
    responses = iter([_redirect(302, "/final"), OK])

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await h1(next(responses))(reader, writer)

    net.handlers[("192.0.2.1", 80)] = serve
    tel = Telemetry.in_memory(CFG)
    result = await _run(net, _check("http://a.test/"), tel)
    assert result.success
    spans = tel.span_exporter.get_finished_spans()
    [root] = [s for s in spans if s.parent is None]
    children = [s for s in spans if s.parent is not None]
    assert root.name == "http http://a.test/"
    assert format(root.context.trace_id, "032x") == result.trace_id
    assert all(s.parent is not None and s.parent.span_id == root.context.span_id for s in children)
    # two hops, each with its four phases
    assert sorted(s.name for s in children) == sorted(["dns", "connect", "ttfb", "transfer"] * 2)
    assert result.http is not None
    assert result.http.traceparent is not None
    _, trace_hex, parent_hex, flags = result.http.traceparent.split("-")
    assert trace_hex == result.trace_id
    assert flags == "01"
    [parent] = [s for s in children if format(s.context.span_id, "016x") == parent_hex]
    assert parent.name == "ttfb"
    assert parent.attributes is not None
    assert parent.attributes["url.full"] == "http://a.test/final"  # the final hop's request
    statuses = sorted(
        s.attributes["http.response.status_code"] for s in children if s.name == "transfer" and s.attributes
    )
    assert statuses == [200, 302]
    assert root.attributes is not None
    assert root.attributes["http.response.status_code"] == 200


async def test_failed_run_marks_spans_as_errors(net: FakeNet) -> None:
    net.handlers[("192.0.2.1", 80)] = h1(b"garbage\r\n\r\n")
    tel = Telemetry.in_memory(CFG)
    result = await _run(net, _check("http://a.test/"), tel)
    assert result.error_type == str(ErrorType.PROTOCOL)
    spans = {s.name: s for s in tel.span_exporter.get_finished_spans()}
    assert spans["http http://a.test/"].status.is_ok is False
    assert spans["http http://a.test/"].attributes is not None
    assert spans["http http://a.test/"].attributes["error.type"] == "protocol_error"
    assert spans["transfer"].status.is_ok is False
    assert spans["connect"].status.is_ok


async def test_untraced_run_still_sends_a_valid_traceparent(net: FakeNet) -> None:
    seen: list[Seen] = []
    net.handlers[("192.0.2.1", 80)] = h1(OK, seen)
    probe = HttpProbe(resolver=net, connector=net.connect)
    runner = Runner("a1", "fra", {"http": probe})  # no tracer
    check = _check("http://a.test/")
    result = await runner.run(check, check.targets[0])
    assert result.success
    assert result.trace_id is None
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-00", seen[0].headers["traceparent"])


async def test_tls_contexts_are_reused(net: FakeNet) -> None:
    probe = HttpProbe(resolver=net, connector=net.connect)
    a = probe._context(_check("https://a.test/"))
    b = probe._context(_check("https://b.test/"))
    c = probe._context(_check("https://b.test/", http_version="1.1"))
    assert a is b
    assert c is not a
