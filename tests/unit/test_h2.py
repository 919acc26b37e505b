"""``netobs.probes._h2``: the probe's HTTP/2 client against the h2 library's server (an independent
implementation), in memory, and against hand-made frames for what a well-behaved server never sends."""

from __future__ import annotations

import re
from collections.abc import Callable

import h2.config
import h2.connection
import h2.events
import h2.settings
import hpack
import pytest

from netobs.probes import _h2
from netobs.probes._h2 import H2Client, encode_headers, frame
from netobs.probes._http1 import BodyTooLarge, ProtocolViolation

WINDOW_BYTES = 16 * 1024 * 1024
GET = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"a.test"), (b":path", b"/")]

Respond = Callable[["Server", h2.events.Event], None]


class Server:
    """The h2 library's server side, sending bodies as its flow-control windows allow."""

    def __init__(self, max_header_list_bytes: int | None = None) -> None:
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        if max_header_list_bytes is not None:
            self.conn.local_settings = h2.settings.Settings(
                client=False, initial_values={h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: max_header_list_bytes}
            )
        self.conn.initiate_connection()
        self.pending: dict[int, bytes] = {}

    def send_body(self, stream_id: int, body: bytes) -> None:
        conn = self.conn
        while True:
            window = min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
            if window <= 0 and body:
                self.pending[stream_id] = body
                return
            conn.send_data(stream_id, body[:window], end_stream=len(body) <= window)
            body = body[window:]
            if not body:
                self.pending.pop(stream_id, None)
                return

    def take(self, data: bytes, respond: Respond) -> list[h2.events.Event]:
        """What the client sent: answers a complete request with ``respond``, goes on with bodies."""
        events = self.conn.receive_data(data)
        for event in events:
            if isinstance(event, h2.events.StreamEnded):  # the request is complete (headers, body)
                respond(self, event)
            elif isinstance(event, h2.events.DataReceived):
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.WindowUpdated):
                for stream_id, rest in list(self.pending.items()):
                    self.send_body(stream_id, rest)
        return events


def _exchange(
    respond: Respond,
    fields: list[tuple[bytes, bytes]] = GET,
    body: bytes = b"",
    *,
    max_body_bytes: int = 1_000_000,
    window_bytes: int = WINDOW_BYTES,
    server: Server | None = None,
) -> tuple[H2Client, list[h2.events.Event]]:
    """Runs the client against the server until the response ended or nothing moves any more."""
    server = server or Server()
    client = H2Client(max_body_bytes, window_bytes)
    seen: list[h2.events.Event] = []
    to_server = client.start(fields, body)
    while True:
        seen += server.take(to_server, respond)
        to_client = server.conn.data_to_send()
        if to_client:
            client.receive(to_client)
        to_server = client.data_to_send()
        if client.ended or not (to_client or to_server):
            seen += server.take(to_server, respond)  # what the client answered last (acknowledgements)
            return client, seen


def _ok(body: bytes = b"hello", headers: list[tuple[str, str]] | None = None) -> Respond:
    def respond(server: Server, event: h2.events.Event) -> None:
        server.conn.send_headers(event.stream_id, [(":status", "200"), *(headers or [])], end_stream=not body)
        if body:
            server.send_body(event.stream_id, body)

    return respond


def test_a_get_and_its_response() -> None:
    client, seen = _exchange(_ok(b"hello", [("content-type", "text/plain"), ("x-b", "1")]))
    assert client.ended and client.status == 200
    assert client.headers == [("content-type", "text/plain"), ("x-b", "1")]
    assert bytes(client.body) == b"hello"
    [request] = [e for e in seen if isinstance(e, h2.events.RequestReceived)]
    assert request.headers == [(":method", "GET"), (":scheme", "https"), (":authority", "a.test"), (":path", "/")]
    settings = next(e for e in seen if isinstance(e, h2.events.RemoteSettingsChanged))
    assert settings.changed_settings[h2.settings.SettingCodes.ENABLE_PUSH].new_value == 0
    assert settings.changed_settings[h2.settings.SettingCodes.INITIAL_WINDOW_SIZE].new_value == WINDOW_BYTES


def test_request_fields_of_every_length_and_a_block_over_one_frame() -> None:
    """Literal fields with lengths past HPACK's 7-bit prefix, and a header block of ~40 KiB, which goes out as
    HEADERS and CONTINUATION frames of at most 16 KiB."""
    fields = [
        (b":method", b"PUT"),
        (b":scheme", b"http"),
        (b":authority", b"vhost.test:8080"),
        (b":path", b"/a?x=1"),
        (b"x-short", b"v"),
        (b"x-126", b"y" * 126),
        (b"x-127", b"y" * 127),
        (b"x-300", b"z" * 300),
        (b"x-big", b"b" * 40_000),
    ]
    block = encode_headers(fields)
    assert hpack.Decoder(max_header_list_size=1 << 20).decode(block, raw=True) == fields
    client, seen = _exchange(_ok(), fields, b"payload", server=Server(max_header_list_bytes=1 << 20))
    assert client.status == 200
    [request] = [e for e in seen if isinstance(e, h2.events.RequestReceived)]
    assert [(k.encode(), v.encode()) for k, v in request.headers] == fields
    assert b"".join(e.data for e in seen if isinstance(e, h2.events.DataReceived)) == b"payload"


def test_a_request_body_larger_than_the_servers_window_waits_for_its_window_updates() -> None:
    body = bytes(range(256)) * 1000  # 256 kB: four times the default window
    client, seen = _exchange(_ok(b"done"), [*GET[:3], (b":path", b"/upload")], body)
    assert client.status == 200 and bytes(client.body) == b"done"
    assert b"".join(e.data for e in seen if isinstance(e, h2.events.DataReceived)) == body


def test_a_response_body_larger_than_the_window_is_acknowledged_as_it_comes() -> None:
    """With a 64 KiB window the server can send a 300 kB body only as the client gives the window back."""
    body = bytes(range(250)) * 1200
    client, _seen = _exchange(_ok(body), window_bytes=65535)
    assert client.ended and bytes(client.body) == body


def test_response_body_over_the_cap() -> None:
    with pytest.raises(BodyTooLarge) as caught:
        _exchange(_ok(b"y" * 50_000), max_body_bytes=10_000)
    assert caught.value.limit_bytes == 10_000 and caught.value.read_bytes > 10_000


def test_interim_responses_continuations_padding_and_trailers() -> None:
    """A 103 first, a final response whose header block needs CONTINUATION frames, padded DATA, then
    trailers that end the stream: the status and headers are the final response's, the body unpadded."""
    big = "v" * 20_000

    def respond(server: Server, event: h2.events.Event) -> None:
        conn = server.conn
        conn.send_headers(event.stream_id, [(":status", "103"), ("link", "</a.css>; rel=preload")])
        conn.send_headers(event.stream_id, [(":status", "200"), ("x-big", big)])
        conn.send_data(event.stream_id, b"padded body", pad_length=20)
        conn.send_headers(event.stream_id, [("x-checksum", "abc")], end_stream=True)

    client, _seen = _exchange(respond)
    assert client.ended and client.status == 200
    assert client.headers == [("x-big", big)]
    assert bytes(client.body) == b"padded body"


def test_ping_is_answered_and_settings_acknowledged() -> None:
    def respond(server: Server, event: h2.events.Event) -> None:
        server.conn.ping(b"12345678")
        server.conn.send_headers(event.stream_id, [(":status", "204")], end_stream=True)

    client, seen = _exchange(respond)
    assert client.status == 204
    assert any(isinstance(e, h2.events.PingAckReceived) and e.ping_data == b"12345678" for e in seen)
    assert any(isinstance(e, h2.events.SettingsAcknowledged) for e in seen)


def _settings_frame() -> bytes:
    return frame(_h2.SETTINGS, 0, 0)


def _response_headers(*fields: tuple[bytes, bytes], end_stream: bool = False) -> bytes:
    return frame(_h2.HEADERS, 0x4 | (0x1 if end_stream else 0), 1, encode_headers(list(fields)))


def _goaway(last_stream_id: int, error_code: int) -> bytes:
    return frame(_h2.GOAWAY, 0, 0, last_stream_id.to_bytes(4, "big") + error_code.to_bytes(4, "big"))


def test_a_graceful_goaway_that_keeps_the_stream_is_no_error() -> None:
    """nginx closes a connection it is done with by a GOAWAY (no error) that names the last stream it
    serves; when that is ours, its response still completes."""
    client = H2Client(1000, WINDOW_BYTES)
    client.start(GET, b"")
    client.receive(_settings_frame() + _response_headers((b":status", b"200")) + _goaway(1, 0))
    client.receive(frame(_h2.DATA, 0x1, 1, b"ok"))
    assert client.ended and client.status == 200 and bytes(client.body) == b"ok"


def test_a_complete_response_then_a_reset_of_the_rest_of_the_request_is_no_error() -> None:
    """A server may answer before the request's body is all sent and reset the stream (NO_ERROR) to stop
    the upload: the response stands."""
    client = H2Client(1000, WINDOW_BYTES)
    client.start([(b":method", b"POST"), *GET[1:]], b"x" * 200_000)  # more than the default window takes
    client.receive(_settings_frame() + _response_headers((b":status", b"413"), end_stream=True))
    client.receive(frame(_h2.RST_STREAM, 0, 1, bytes(4)))
    assert client.ended and client.status == 413


@pytest.mark.parametrize(
    ("respond", "message"),
    [
        (lambda s, e: s.conn.reset_stream(e.stream_id, error_code=2), "server reset the stream (error code 2)"),
        (lambda s, e: s.conn.close_connection(error_code=11), "GOAWAY, error code 11"),
    ],
    ids=["reset", "goaway"],
)
def test_servers_that_leave_no_response(respond: Respond, message: str) -> None:
    with pytest.raises(ProtocolViolation, match=re.escape(message)):
        _exchange(respond)


@pytest.mark.parametrize(
    ("frames", "message"),
    [
        (b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", "not an HTTP/2 server"),
        (frame(_h2.PING, 0, 0, b"12345678"), "not an HTTP/2 server"),
        (_settings_frame() + frame(_h2.DATA, 0, 1, b"x" * 20_000), "over the 16384 allowed"),
        (_settings_frame() + frame(_h2.HEADERS, 0x4, 1, b"\xff\xff\xff\xff"), "invalid HTTP/2 header block"),
        (_settings_frame() + frame(_h2.DATA, 0x1, 1, b"early"), "DATA on stream 1 where none may come"),
        (_settings_frame() + frame(_h2.PUSH_PROMISE, 0x4, 1, b"\x00\x00\x00\x02\x82"), "server push"),
        (_settings_frame() + frame(_h2.CONTINUATION, 0x4, 1, b"\x88"), "CONTINUATION without a header block"),
        (_settings_frame() + frame(_h2.HEADERS, 0, 1, b"\x88") + frame(_h2.PING, 0, 0, bytes(8)), "interrupted"),
        (_settings_frame() + frame(_h2.HEADERS, 0x4 | 0x8, 1, b"\x09\x88"), "padding longer than the frame"),
        (_settings_frame() + frame(_h2.SETTINGS, 0, 0, b"\x00\x05\x00\x00\x00\x01"), "MAX_FRAME_SIZE 1 out of range"),
        (_settings_frame() + frame(_h2.WINDOW_UPDATE, 0, 0, bytes(4)), "WINDOW_UPDATE of 0"),
        (_settings_frame() + _response_headers((b"x-no-status", b"1"), end_stream=True), "valid :status"),
        (_settings_frame() + _response_headers((b":status", b"103"), end_stream=True), "interim response"),
        (_settings_frame() + _response_headers((b":status", b"200")) + _goaway(0, 0), "GOAWAY, error code 0"),
        (_settings_frame() + frame(_h2.HEADERS, 0x4, 3, encode_headers([(b":status", b"200")])), "stream 3"),
    ],
    ids=[
        "http1",
        "ping-first",
        "frame-too-large",
        "bad-hpack",
        "data-before-headers",
        "push",
        "stray-continuation",
        "interrupted-block",
        "bad-padding",
        "bad-settings",
        "zero-window-update",
        "no-status",
        "ends-with-interim",
        "goaway-without-our-stream",
        "other-stream",
    ],
)
def test_malformed_frames(frames: bytes, message: str) -> None:
    client = H2Client(1000, WINDOW_BYTES)
    client.start(GET, b"")
    with pytest.raises(ProtocolViolation, match=message):
        client.receive(frames)


def test_frames_split_anywhere_and_unknown_types_ignored() -> None:
    """The same response byte by byte, with a frame of an unknown type and a PRIORITY frame among them."""
    server = Server().conn
    client = H2Client(1000, WINDOW_BYTES)
    server.receive_data(client.start(GET, b""))
    server.send_headers(1, [(":status", "200"), ("content-type", "text/plain")])
    answer = server.data_to_send() + frame(0xFA, 0, 0, b"extension") + frame(_h2.PRIORITY, 0, 1, bytes(5))
    server.send_data(1, b"bytes", end_stream=True)
    answer += server.data_to_send()
    for i in range(len(answer)):
        client.receive(answer[i : i + 1])
    assert client.ended and client.status == 200 and bytes(client.body) == b"bytes"
    assert client.headers == [("content-type", "text/plain")]
