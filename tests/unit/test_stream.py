"""``netobs.probes._stream``: the HTTP probe's byte stream, on asyncio's loop and on uvloop (the agent's)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
import uvloop

from netobs.probes import _stream
from netobs.probes._stream import Stream, open_stream
from tests.real.dnsbed import LOOPBACK, TLS_NAME, make_certificate

LOOPS = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.fixture(params=sorted(LOOPS))
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, None]], None]:
    def runner(coro: Coroutine[Any, Any, None]) -> None:
        with asyncio.Runner(loop_factory=LOOPS[request.param]) as r:
            r.run(coro)

    return runner


@contextlib.asynccontextmanager
async def _connected() -> AsyncIterator[tuple[Stream, socket.socket]]:
    """A stream over one end of a socket pair, and the other end (blocking)."""
    client, server = socket.socketpair()
    client.setblocking(False)
    stream = await open_stream(client)
    try:
        yield stream, server
    finally:
        stream.abort()
        client.close()
        server.close()


Run = Callable[[Coroutine[Any, Any, None]], None]


def test_reads_what_the_peer_sent_then_the_end(run: Run) -> None:
    async def main() -> None:
        async with _connected() as (stream, server):
            server.sendall(b"hello, ")
            assert await stream.read(100) == b"hello, "
            server.sendall(b"netobs")
            server.shutdown(socket.SHUT_WR)
            assert await stream.read(3) == b"net"  # at most n bytes; the rest stays for the next read
            assert await stream.read(100) == b"obs"
            assert await stream.read(100) == b""
            assert await stream.read(100) == b""

    run(main())


def test_writes_reach_the_peer(run: Run) -> None:
    async def main() -> None:
        async with _connected() as (stream, server):
            stream.write(b"GET / HTTP/1.1\r\n\r\n")
            await stream.drain()
            server.settimeout(2)
            assert server.recv(100) == b"GET / HTTP/1.1\r\n\r\n"

    run(main())


def test_a_reset_connection_raises_once_the_buffer_is_read(run: Run) -> None:
    async def main() -> None:
        listener = socket.create_server(("127.0.0.1", 0))
        client = socket.create_connection(listener.getsockname())
        client.setblocking(False)
        server, _ = listener.accept()
        stream = await open_stream(client)
        try:
            server.sendall(b"partial")
            await asyncio.sleep(0.05)
            server.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            server.close()  # an RST
            assert await stream.read(100) == b"partial"
            with pytest.raises(ConnectionResetError):
                await stream.read(100)
            with pytest.raises(ConnectionResetError):
                await stream.drain()
        finally:
            stream.abort()
            client.close()
            listener.close()

    run(main())


def test_a_fast_peer_is_paused_not_buffered_without_bound(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_stream, "READ_HIGH_WATER_BYTES", 64 * 1024)

    async def main() -> None:
        async with _connected() as (stream, server):
            server.setblocking(False)
            payload = bytes(range(256)) * 8192  # 2 MiB
            sent = 0
            for _ in range(200):  # the peer writes as long as the socket takes it; we read nothing
                with contextlib.suppress(BlockingIOError):
                    sent += server.send(payload[sent:])
                await asyncio.sleep(0.005)
                if sent == len(payload):
                    break
            assert stream._read_paused  # the transport stopped reading...
            assert len(stream._buf) < 64 * 1024 + 512 * 1024  # ...soon after the high-water mark
            assert sent < len(payload)  # so the peer was held back by the kernel's buffers
            got = bytearray()
            while len(got) < len(payload):
                got += await stream.read(65536)
                if sent < len(payload):
                    with contextlib.suppress(BlockingIOError):
                        sent += server.send(payload[sent:])
            assert bytes(got) == payload
            assert not stream._read_paused

    run(main())


def test_drain_waits_while_the_transport_is_paused(run: Run) -> None:
    async def main() -> None:
        async with _connected() as (stream, server):
            assert stream.transport is not None
            stream.transport.set_write_buffer_limits(high=1024)
            stream.write(b"x" * 4 * 1024 * 1024)  # more than the socket buffers: the transport pauses
            drained = asyncio.ensure_future(stream.drain())
            await asyncio.sleep(0.05)
            assert not drained.done()
            server.setblocking(False)
            got = 0
            while not drained.done():
                with contextlib.suppress(BlockingIOError):
                    got += len(server.recv(1 << 20))
                await asyncio.sleep(0.001)
            await drained
            assert got > 0

    run(main())


def test_the_stream_is_the_protocol_of_its_transport(run: Run) -> None:
    async def main() -> None:
        async with _connected() as (stream, _):
            assert isinstance(stream, Stream)
            assert stream.transport is not None and stream.transport.get_protocol() is stream
            assert stream.get_extra_info("ssl_object") is None  # plain: no TLS
            stream.abort()
            assert stream.transport.is_closing()

    run(main())


def test_start_tls_upgrades_the_stream(run: Run, tmp_path: Path) -> None:
    """What the TCP probe (tls: true) and DNS over TLS do: connect, then the handshake as its own step."""
    cert, key = make_certificate(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=str(cert))

    async def main() -> None:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(await reader.read(100))
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, LOOPBACK, 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        try:
            for name, ok in ((TLS_NAME, True), ("other.test", False)):
                sock = socket.create_connection((LOOPBACK, port))
                sock.setblocking(False)
                stream = await open_stream(sock)
                try:
                    assert stream.get_extra_info("ssl_object") is None
                    if not ok:
                        with pytest.raises(ssl.SSLCertVerificationError):
                            await stream.start_tls(client_ctx, server_hostname=name)
                        continue
                    await stream.start_tls(client_ctx, server_hostname=name)
                    assert stream.get_extra_info("ssl_object").version() in ("TLSv1.2", "TLSv1.3")
                    stream.write(b"ping over tls")
                    await stream.drain()
                    got = b""
                    while len(got) < len(b"ping over tls"):
                        chunk = await stream.read(100)
                        assert chunk, got
                        got += chunk
                    assert got == b"ping over tls"
                finally:
                    stream.abort()
                    sock.close()
        finally:
            server.close()
            await server.wait_closed()

    run(main())
