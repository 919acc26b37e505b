"""One HTTP request/response exchange over an established stream, HTTP/1.1 (``_http1``) or HTTP/2 (h2).

Theory of operation: the protocol code is I/O-free (``_http1``'s request encoder and response reader, h2's
state machine); this module is the thin shell that moves bytes between it and an asyncio stream. An
exchange has two timed halves that the probe wraps in its phases:

- :meth:`Exchange.send_and_wait_first_byte` writes the request and returns when the response starts
  (HTTP/1.1: the first byte of the status line; HTTP/2: the response HEADERS of our stream) -- ``ttfb``;
- :meth:`Exchange.read_response` reads the rest until the message is complete -- ``transfer``.

Both halves are also timed by the kernel (:meth:`Exchange.first_byte_ms`, :meth:`Exchange.transfer_ms`): from
when the request was handed to the kernel (the stream's ``latest_tx_ns`` after the exchange's first write) to
the kernel's receive stamp of the read that brought the response's start (``latest_rx_ns`` then), and from
there to the stamp of the read that completed it. A busy agent that reads late does not lengthen them. Over
HTTP/2 the response's start is the HEADERS of our stream, not the first bytes back (the server's SETTINGS).

The body is counted as it arrives and reading stops as soon as it passes ``max_body_bytes``
(:class:`BodyTooLarge`). Anything the peer sends that the protocol does not allow, including closing the
connection before the response is complete, is a :class:`ProtocolViolation`. No timeouts here: the
caller's deadline bounds every await.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Protocol

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

from netobs.probes._http1 import BodyTooLarge, ProtocolViolation, ResponseReader, encode_request
from netobs.probes._sockio import elapsed_ms

READ_CHUNK_BYTES = 65536
# HTTP/2 receive window (stream and connection) we announce: big enough that flow control does not throttle
# a body of the usual sizes on a long fat path, bounded because the cap stops reading anyway.
H2_WINDOW_BYTES = 16 * 1024 * 1024
_H2_DEFAULT_WINDOW_BYTES = 65535
# Request headers that are about one HTTP/1.1 connection and are illegal in HTTP/2 (RFC 9113 8.2.2).
_H2_FORBIDDEN = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"})


__all__ = [
    "BodyTooLarge",
    "ByteStream",
    "Exchange",
    "Http1Exchange",
    "Http2Exchange",
    "ProtocolViolation",
    "Request",
    "Response",
]


@dataclass(slots=True)
class Request:
    method: str
    scheme: str  # "http" or "https"
    authority: str  # Host header / :authority: host[:port], port only when not the default
    target: str  # path and query, at least "/"
    headers: list[tuple[str, str]] = field(default_factory=list)  # without Host
    body: bytes = b""


@dataclass(slots=True)
class Response:
    status_code: int
    http_version: str  # "1.1" (also for a 1.0 peer: its version is in ``peer_version``) or "2"
    headers: list[tuple[str, str]]  # names lower-cased, values latin-1 decoded, in order
    body: bytes
    peer_version: str = ""

    def header(self, name: str) -> str | None:
        """All values of ``name`` joined with ", " (RFC 9110 5.3), or None when absent."""
        key = name.lower()
        values = [v for k, v in self.headers if k == key]
        return ", ".join(values) if values else None


class ByteStream(Protocol):
    """What an exchange needs of its connection: ``_tlsio.TlsStream`` (TLS), ``_sockio.SocketStream`` (plain).
    ``latest_tx_ns``: when the latest write was handed to the kernel (wall clock, ns); ``latest_rx_ns``: the
    kernel's stamp of the latest read that gave data (None: not stamped)."""

    latest_tx_ns: int | None
    latest_rx_ns: int | None

    async def read(self, n: int) -> bytes: ...

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...


class Exchange(Protocol):
    http_version: str

    async def send_and_wait_first_byte(self, request: Request) -> None: ...

    async def read_response(self) -> Response: ...

    def first_byte_ms(self) -> float | None: ...

    def transfer_ms(self) -> float | None: ...


class _KernelTimed:
    """An exchange's stream and the kernel's times of its request and response (see the module's notes)."""

    def __init__(self, stream: ByteStream) -> None:
        self._stream = stream
        self._sent_ns: int | None = None
        self._first_rx_ns: int | None = None
        self._last_rx_ns: int | None = None

    def _sent(self) -> None:
        """After a write: the request's time, if this was the exchange's first."""
        if self._sent_ns is None:
            self._sent_ns = self._stream.latest_tx_ns

    def first_byte_ms(self) -> float | None:
        """From the request handed to the kernel to the kernel's stamp of the response's start, or None
        (not there yet, or not stamped)."""
        return elapsed_ms(self._sent_ns, self._first_rx_ns)

    def transfer_ms(self) -> float | None:
        """From the kernel's stamp of the response's start to that of its end, or None."""
        return elapsed_ms(self._first_rx_ns, self._last_rx_ns)


class Http1Exchange(_KernelTimed):
    """One request on a fresh HTTP/1.1 connection (``Connection: close``)."""

    http_version = "1.1"

    def __init__(self, stream: ByteStream, max_body_bytes: int) -> None:
        super().__init__(stream)
        self._max_body_bytes = max_body_bytes
        self._response: ResponseReader | None = None

    async def send_and_wait_first_byte(self, request: Request) -> None:
        headers = [("host", request.authority), *request.headers]
        if request.body:
            headers.append(("content-length", str(len(request.body))))
        headers.append(("connection", "close"))
        try:
            out = encode_request(request.method, request.target, headers, request.body)
        except ValueError as exc:
            raise ValueError(f"request cannot be sent: {exc}") from exc
        self._stream.write(out)
        self._sent()
        await self._stream.drain()
        # The reader reads from the stream, not through a method of this exchange: a bound method would make
        # the exchange and its reader a reference cycle, left (socket and all) for the cyclic garbage
        # collector after every run: at 2,000 runs/s its collections paused the event loop for 10-30 ms.
        read = functools.partial(self._stream.read, READ_CHUNK_BYTES)
        self._response = ResponseReader(read, self._max_body_bytes, head_request=request.method == "HEAD")
        if not await self._response.fill():
            raise ProtocolViolation("connection closed before any response byte")
        self._first_rx_ns = self._stream.latest_rx_ns

    async def read_response(self) -> Response:
        assert self._response is not None, "send_and_wait_first_byte first"
        peer_version, status, headers, body = await self._response.read()
        self._last_rx_ns = self._stream.latest_rx_ns
        return Response(status, "1.1", headers, body, peer_version)


class Http2Exchange(_KernelTimed):
    """One request on a fresh HTTP/2 connection (after ALPN "h2", or with prior knowledge in clear text)."""

    http_version = "2"

    def __init__(self, stream: ByteStream, max_body_bytes: int) -> None:
        super().__init__(stream)
        self._max_body_bytes = max_body_bytes
        self._conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        self._stream_id = 0
        self._status: int | None = None
        self._headers: list[tuple[str, str]] = []
        self._body = bytearray()
        self._ended = False

    async def send_and_wait_first_byte(self, request: Request) -> None:
        conn = self._conn
        conn.local_settings = h2.settings.Settings(
            client=True,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: H2_WINDOW_BYTES,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 65536,
            },
        )
        conn.initiate_connection()
        conn.increment_flow_control_window(H2_WINDOW_BYTES - _H2_DEFAULT_WINDOW_BYTES)
        self._stream_id = conn.get_next_available_stream_id()
        headers = [
            (b":method", request.method.encode("ascii")),
            (b":scheme", request.scheme.encode("ascii")),
            (b":authority", request.authority.encode("idna")),
            (b":path", request.target.encode("ascii")),
        ]
        for name, value in request.headers:
            key = name.lower().encode("latin-1")
            if key not in _H2_FORBIDDEN and key != b"host":
                headers.append((key, value.encode("latin-1")))
        if request.body:
            headers.append((b"content-length", str(len(request.body)).encode("ascii")))
        conn.send_headers(self._stream_id, headers, end_stream=not request.body)
        await self._flush()
        await self._send_body(request.body)
        while self._status is None:
            await self._receive()

    async def read_response(self) -> Response:
        while not self._ended:
            await self._receive()
        assert self._status is not None
        return Response(self._status, "2", self._headers, bytes(self._body), "2")

    async def _send_body(self, body: bytes) -> None:
        view = memoryview(body)
        while view:
            window = min(self._conn.local_flow_control_window(self._stream_id), self._conn.max_outbound_frame_size)
            if window <= 0:
                await self._receive()  # wait for WINDOW_UPDATE
                continue
            chunk, view = view[:window], view[window:]
            self._conn.send_data(self._stream_id, bytes(chunk), end_stream=not view)
            await self._flush()

    async def _flush(self) -> None:
        out = self._conn.data_to_send()
        if out:
            self._stream.write(out)
            self._sent()  # the first flush carries the request's HEADERS
            await self._stream.drain()

    async def _receive(self) -> None:
        data = await self._stream.read(READ_CHUNK_BYTES)
        if not data:
            raise ProtocolViolation("connection closed before the response was complete")
        try:
            events = self._conn.receive_data(data)
        except h2.exceptions.H2Error as exc:
            raise ProtocolViolation(f"invalid HTTP/2 data: {exc}") from exc
        for event in events:
            self._handle(event)
        await self._flush()

    def _handle(self, event: h2.events.Event) -> None:
        sid = getattr(event, "stream_id", None)
        if isinstance(event, h2.events.ConnectionTerminated):
            if not self._ended:
                raise ProtocolViolation(f"server ended the connection (GOAWAY, error code {event.error_code})")
            return
        if sid != self._stream_id:
            return
        if isinstance(event, h2.events.ResponseReceived):
            headers = [(bytes(k).decode("latin-1"), bytes(v).decode("latin-1")) for k, v in event.headers]
            status = next((v for k, v in headers if k == ":status"), None)
            if status is None or not status.isdigit():
                raise ProtocolViolation(f"response without a valid :status ({status!r})")
            self._status = int(status)
            self._headers = [(k, v) for k, v in headers if not k.startswith(":")]
            self._first_rx_ns = self._stream.latest_rx_ns  # the read that brought these events
        elif isinstance(event, h2.events.DataReceived):
            self._body += event.data
            if event.flow_controlled_length:
                self._conn.acknowledge_received_data(event.flow_controlled_length, self._stream_id)
            if len(self._body) > self._max_body_bytes:
                raise BodyTooLarge(self._max_body_bytes, len(self._body))
        elif isinstance(event, h2.events.StreamEnded):
            self._ended = True
            self._last_rx_ns = self._stream.latest_rx_ns
        elif isinstance(event, h2.events.StreamReset):
            raise ProtocolViolation(f"server reset the stream (error code {event.error_code})")
