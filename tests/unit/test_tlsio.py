"""``netobs.probes._tlsio``: TLS over memory BIOs on the agent's own socket stream, against an asyncio TLS
server on loopback (TLS 1.2 and 1.3), on asyncio's loop and on uvloop."""

from __future__ import annotations

import asyncio
import ssl
import time
from pathlib import Path

import pytest

from netobs.probes._sockio import SocketStream, connect_socket
from netobs.probes._tlsio import TlsStream
from tests.certs import self_signed
from tests.loops import Run

ECHO_DELAY_S = 0.2  # the server answers a line this long after it came


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    return self_signed(directory / "c.pem", directory / "c.key", "tls.test", dns_names=["tls.test"], ca=True)


def _server_context(cert: tuple[Path, Path], version: ssl.TLSVersion) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*cert)
    ctx.minimum_version = ctx.maximum_version = version
    return ctx


def _client_context(cert: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert[0]))


async def _echo_late_then_drop(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Echoes one line ECHO_DELAY_S after it came, then drops the connection without a close_notify."""
    line = await reader.readline()
    await asyncio.sleep(ECHO_DELAY_S)
    writer.write(line)
    await writer.drain()
    writer.transport.abort()


async def _connect(server: asyncio.Server, cert: tuple[Path, Path]) -> TlsStream:
    port = server.sockets[0].getsockname()[1]
    sock = await connect_socket("127.0.0.1", port)
    return TlsStream(SocketStream(sock, asyncio.get_running_loop()), _client_context(cert), "tls.test")


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_handshake_exchange_and_a_close_without_close_notify(
    run: Run, cert: tuple[Path, Path], version: ssl.TLSVersion
) -> None:
    async def main() -> None:
        server = await asyncio.start_server(_echo_late_then_drop, "127.0.0.1", 0, ssl=_server_context(cert, version))
        async with server:
            stream = await _connect(server, cert)
            try:
                started = time.perf_counter()
                await stream.handshake()
                took_ms = (time.perf_counter() - started) * 1000
                assert stream.ssl_object.version() == version.name.replace("_", ".")
                assert stream.handshake_ms is not None
                assert 0 < stream.handshake_ms <= took_ms
                stream.write(b"ping\n")
                await stream.drain()
                # Over TLS 1.3 the server's session tickets come first: records with no data are no answer.
                assert await stream.read(100) == b"ping\n"
                answer_ms = stream.exchange_ms()
                assert answer_ms is not None
                assert ECHO_DELAY_S * 1000 - 2 <= answer_ms < ECHO_DELAY_S * 1000 + 150
                assert await stream.read(100) == b""  # the peer dropped the connection: the end of the stream
            finally:
                stream.abort()

    run(main())


def test_a_peer_that_closes_during_the_handshake(run: Run, cert: tuple[Path, Path]) -> None:
    async def close_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)  # the ClientHello has come
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(close_at_once, "127.0.0.1", 0)
        async with server:
            stream = await _connect(server, cert)
            try:
                with pytest.raises(ConnectionError):
                    await stream.handshake()
                assert stream.handshake_ms is None
            finally:
                stream.abort()

    run(main())


def test_a_certificate_that_fails_verification(run: Run, cert: tuple[Path, Path], tmp_path: Path) -> None:
    other = self_signed(tmp_path / "o.pem", tmp_path / "o.key", "other.test", dns_names=["other.test"], ca=True)

    async def main() -> None:
        ctx = _server_context(cert, ssl.TLSVersion.TLSv1_3)
        server = await asyncio.start_server(_echo_late_then_drop, "127.0.0.1", 0, ssl=ctx)
        async with server:
            stream = await _connect(server, other)  # trusts only the other certificate
            try:
                with pytest.raises(ssl.SSLCertVerificationError):
                    await stream.handshake()
            finally:
                stream.abort()

    run(main())


def test_records_without_application_data_are_no_answer(run: Run, cert: tuple[Path, Path]) -> None:
    """TLS 1.3 servers send session tickets right after the handshake: reading them gives the caller nothing
    and leaves ``latest_rx_ns`` alone, so an exchange's answer is not timed by a ticket's arrival."""

    async def main() -> None:
        server = await asyncio.start_server(
            _echo_late_then_drop, "127.0.0.1", 0, ssl=_server_context(cert, ssl.TLSVersion.TLSv1_3)
        )
        async with server:
            port = server.sockets[0].getsockname()[1]
            raw = SocketStream(await connect_socket("127.0.0.1", port), asyncio.get_running_loop())
            stream = TlsStream(raw, _client_context(cert), "tls.test")
            try:
                await stream.handshake()
                handshake_rx_ns = raw.latest_rx_ns
                stream.write(b"ping\n")
                await stream.drain()
                with pytest.raises(TimeoutError):  # the echo comes ECHO_DELAY_S later
                    await asyncio.wait_for(stream.read(100), ECHO_DELAY_S / 4)
                assert raw.latest_rx_ns != handshake_rx_ns  # the tickets were read...
                assert stream.latest_rx_ns is None  # ...and are no application data
                assert await stream.read(100) == b"ping\n"
                answer_ms = stream.exchange_ms()
                assert answer_ms is not None
                assert ECHO_DELAY_S * 1000 - 2 <= answer_ms < ECHO_DELAY_S * 1000 + 150
            finally:
                stream.abort()

    run(main())
