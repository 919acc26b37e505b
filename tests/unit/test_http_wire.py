"""The exchanges' own timing (``_http_wire``): ttfb and transfer from the stream's kernel stamps.

A scripted stream stands in for the socket: each chunk the server sends is read with the stamp the test
gives it (as the kernel would have stamped its arrival), whenever the exchange gets round to reading it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import h2.config
import h2.connection
import h2.events
import pytest

from netobs.probes._http_wire import Exchange, Http1Exchange, Http2Exchange, Request

MS = 1_000_000  # ns
SENT_NS = 1_700_000_000_000_000_000


class ScriptedStream:
    """A ``ByteStream`` whose peer is ``answer``: given what the client wrote, the chunks it sends back, each
    with its arrival time (ns after the request went out)."""

    def __init__(self, answer: Callable[[bytes], list[tuple[bytes, int]]]) -> None:
        self._answer = answer
        self._chunks: list[tuple[bytes, int]] = []
        self.latest_tx_ns: int | None = None
        self.latest_rx_ns: int | None = None
        self.writes = 0

    def write(self, data: bytes) -> None:
        # The request goes out at SENT_NS; what the client writes later (acknowledgements) goes out later.
        self.latest_tx_ns = SENT_NS + self.writes * 500 * MS
        self.writes += 1
        self._chunks += self._answer(data)

    async def drain(self) -> None:
        pass

    async def read(self, n: int) -> bytes:
        await asyncio.sleep(0)
        if not self._chunks:
            return b""
        data, after_ns = self._chunks.pop(0)
        assert len(data) <= n
        self.latest_rx_ns = SENT_NS + after_ns
        return data


def _request() -> Request:
    return Request("GET", "http", "a.test", "/", [], b"")


async def _exchange(exchange: Exchange) -> tuple[float | None, float | None]:
    await exchange.send_and_wait_first_byte(_request())
    first = exchange.first_byte_ms()
    await exchange.read_response()
    return first, exchange.transfer_ms()


async def test_http1_ttfb_from_the_request_to_the_first_bytes_stamp_and_transfer_to_the_last() -> None:
    def answer(data: bytes) -> list[tuple[bytes, int]]:
        assert data.startswith(b"GET / HTTP/1.1\r\n")
        head = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n"
        return [(head, 30 * MS), (b"0123456789", 70 * MS)]

    stream = ScriptedStream(answer)
    assert await _exchange(Http1Exchange(stream, max_body_bytes=1000)) == (30.0, 40.0)


def _h2_server(settings_after_ns: int, headers_after_ns: int, end_after_ns: int) -> Callable[[bytes], list]:
    """An HTTP/2 server that sends its SETTINGS, the response HEADERS and the DATA that ends the stream as
    three chunks arriving at the given times."""
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
    server.initiate_connection()

    def answer(data: bytes) -> list[tuple[bytes, int]]:
        chunks: list[tuple[bytes, int]] = []
        for event in server.receive_data(data):
            if isinstance(event, h2.events.RequestReceived):
                chunks.append((server.data_to_send(), settings_after_ns))  # SETTINGS and their ACK
                server.send_headers(event.stream_id, [(":status", "200")])
                chunks.append((server.data_to_send(), headers_after_ns))
                server.send_data(event.stream_id, b"hello", end_stream=True)
                chunks.append((server.data_to_send(), end_after_ns))
        return chunks

    return answer


async def test_http2_ttfb_runs_to_the_response_headers_not_the_servers_settings() -> None:
    """The server's SETTINGS arrive 1 ms after the request, its response HEADERS at 30 ms and the end of the
    stream at 70 ms: ttfb is 30 ms (the first bytes back are not the response), transfer 40."""
    stream = ScriptedStream(_h2_server(1 * MS, 30 * MS, 70 * MS))
    assert await _exchange(Http2Exchange(stream, max_body_bytes=1000)) == (30.0, 40.0)
    assert stream.writes > 1  # the client wrote again after its request (SETTINGS ACK): not the request's time


@pytest.mark.parametrize("cls", [Http1Exchange, Http2Exchange])
async def test_no_kernel_stamps_no_kernel_times(cls: type[Http1Exchange] | type[Http2Exchange]) -> None:
    """A stream that has no stamps (a Unix socket) gives None: the probe then keeps its own clock's time."""

    class Unstamped(ScriptedStream):
        async def read(self, n: int) -> bytes:
            data = await super().read(n)
            self.latest_rx_ns = None
            return data

    if cls is Http1Exchange:
        stream = Unstamped(lambda _data: [(b"HTTP/1.1 204 No Content\r\n\r\n", 5 * MS)])
    else:
        stream = Unstamped(_h2_server(1 * MS, 5 * MS, 9 * MS))
    assert await _exchange(cls(stream, max_body_bytes=1000)) == (None, None)
