"""One HTTP request/response exchange over an established stream, HTTP/1.1 (``_http1``) or HTTP/2 (``_h2``).

Theory of operation: the protocol code is I/O-free (``_http1``'s request encoder and response reader,
``_h2``'s client); this module is the thin shell that moves bytes between it and an asyncio stream. An
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

from netobs.probes._h2 import H2Client
from netobs.probes._http1 import BodyTooLarge, ProtocolViolation, ResponseReader, check_request, encode_request
from netobs.probes._sockio import elapsed_ms

READ_CHUNK_BYTES = 65536
# HTTP/2 receive window (stream and connection) we announce: big enough that flow control does not throttle
# a body of the usual sizes on a long fat path, bounded because the cap stops reading anyway.
H2_WINDOW_BYTES = 16 * 1024 * 1024
# Request fields about one HTTP/1.1 connection, illegal in HTTP/2 (RFC 9113 8.2.2), and Host (``:authority``).
_H2_LEFT_OUT = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade", b"host"})


__all__ = [
    "BodyTooLarge",
    "ByteStream",
    "Exchange",
    "Http1Exchange",
    "Http2Exchange",
    "ProtocolViolation",
    "Request",
    "Response",
    "http1_bytes",
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


def http1_bytes(request: Request) -> bytes:
    """``request`` on the wire in HTTP/1.1, on a connection of its own: Host first, its headers, the body's
    length, ``Connection: close``. ValueError naming the part that cannot be sent."""
    headers = [("host", request.authority), *request.headers]
    if request.body:
        headers.append(("content-length", str(len(request.body))))
    headers.append(("connection", "close"))
    try:
        return encode_request(request.method, request.target, headers, request.body)
    except ValueError as exc:
        raise ValueError(f"request cannot be sent: {exc}") from exc


class Http1Exchange(_KernelTimed):
    """One request on a fresh HTTP/1.1 connection (``Connection: close``)."""

    http_version = "1.1"

    def __init__(self, stream: ByteStream, max_body_bytes: int) -> None:
        super().__init__(stream)
        self._max_body_bytes = max_body_bytes
        self._response: ResponseReader | None = None

    async def send_and_wait_first_byte(self, request: Request) -> None:
        self._stream.write(http1_bytes(request))
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
        self._conn = H2Client(max_body_bytes, H2_WINDOW_BYTES)

    async def send_and_wait_first_byte(self, request: Request) -> None:
        try:
            fields = _h2_fields(request)
        except ValueError as exc:
            raise ValueError(f"request cannot be sent: {exc}") from exc
        self._stream.write(self._conn.start(fields, request.body))
        self._sent()  # the first write carries the request's HEADERS
        await self._stream.drain()
        while self._conn.status is None:
            await self._receive()

    async def read_response(self) -> Response:
        conn = self._conn
        while not conn.ended:
            await self._receive()
        assert conn.status is not None
        return Response(conn.status, "2", conn.headers, bytes(conn.body), "2")

    async def _receive(self) -> None:
        data = await self._stream.read(READ_CHUNK_BYTES)
        if not data:
            raise ProtocolViolation("connection closed before the response was complete")
        conn = self._conn
        started = conn.status is not None
        conn.receive(data)
        # The read that brought the response's HEADERS, and the one that ended it: the kernel's stamps.
        if not started and conn.status is not None:
            self._first_rx_ns = self._stream.latest_rx_ns
        if conn.ended:
            self._last_rx_ns = self._stream.latest_rx_ns
        out = conn.data_to_send()  # acknowledgements, window updates, more of the request's body
        if out:
            self._stream.write(out)
            await self._stream.drain()


def _h2_fields(request: Request) -> list[tuple[bytes, bytes]]:
    """The request's header fields for HTTP/2: the pseudo-header fields, then its headers with lower-case
    names, without those HTTP/2 leaves out. ValueError naming the part that cannot be sent."""
    check_request(request.method, request.target, request.headers)
    fields = [
        (b":method", request.method.encode("ascii")),
        (b":scheme", request.scheme.encode("ascii")),
        (b":authority", request.authority.encode("idna")),
        (b":path", request.target.encode("ascii")),
    ]
    for name, value in request.headers:
        key = name.lower().encode("ascii")
        if key not in _H2_LEFT_OUT:
            fields.append((key, value.encode("ascii")))
    if request.body:
        fields.append((b"content-length", str(len(request.body)).encode("ascii")))
    return fields
