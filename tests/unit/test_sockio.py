"""``netobs.probes._sockio``: connects and plain streams awaited on the loop's own epoll set, on asyncio's
loop and on uvloop (the agent's)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import socket
import struct
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from netobs.probes import _sockio
from netobs.probes._sockio import SocketStream, connect_socket, elapsed_ms
from tests.loops import LOOP_NAMES, Run, new_loop


@contextlib.contextmanager
def _listener(backlog: int = 128) -> Iterator[socket.socket]:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(backlog)
    try:
        yield server
    finally:
        server.close()


def _open_fds() -> int:
    """Descriptors open in this process, with this loop's waiter (its epoll set) already made."""
    with contextlib.suppress(RuntimeError):
        _sockio.waiter_of(asyncio.get_running_loop())
    return len(os.listdir("/proc/self/fd"))


def _waiting() -> int:
    return sum(len(w._waiting) for w in _sockio._WAITERS.values())


def test_connects_many_at_once_each_to_its_own_connection(run: Run) -> None:
    async def main() -> None:
        with _listener() as server:
            port = server.getsockname()[1]
            socks = await asyncio.gather(*(connect_socket("127.0.0.1", port) for _ in range(100)))
            try:
                server.settimeout(5)
                accepted = [server.accept() for _ in range(100)]
                for conn, _ in accepted:
                    conn.close()
                assert sorted(s.getsockname() for s in socks) == sorted(peer for _, peer in accepted)
                assert all(s.getpeername() == ("127.0.0.1", port) for s in socks)
                assert all(not s.getblocking() for s in socks)
            finally:
                for s in socks:
                    s.close()
            assert _waiting() == 0

    run(main())


def test_a_refused_connect_raises_and_closes_its_socket(run: Run) -> None:
    async def main() -> None:
        with _listener() as server:
            port = server.getsockname()[1]
        before = _open_fds()
        for _ in range(3):
            with pytest.raises(ConnectionRefusedError) as info:
                await connect_socket("127.0.0.1", port)
            assert info.value.errno == 111
        assert _open_fds() == before
        assert _waiting() == 0

    run(main())


def test_a_cancelled_connect_leaves_nothing_behind_and_its_descriptor_is_reused(run: Run) -> None:
    # A listener with a full accept queue drops further SYNs: those connects stay pending.
    with _listener(backlog=0) as server:
        port = server.getsockname()[1]
        fillers = []
        for _ in range(3):
            filler = socket.socket()
            filler.settimeout(0.2)
            with contextlib.suppress(OSError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)

        async def main() -> None:
            before = _open_fds()
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(connect_socket("127.0.0.1", port), 0.2)
            assert _open_fds() == before
            assert _waiting() == 0
            with _listener() as other:  # the next connect may get the same descriptor number: it completes
                sock = await asyncio.wait_for(connect_socket("127.0.0.1", other.getsockname()[1]), 5)
                sock.close()

        try:
            run(main())
        finally:
            for filler in fillers:
                filler.close()


def test_ipv6_connect(run: Run) -> None:
    async def main() -> None:
        server = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        server.bind(("::1", 0))
        server.listen(4)
        try:
            sock = await connect_socket("::1", server.getsockname()[1])
            assert sock.family == socket.AF_INET6
            assert sock.getpeername()[:2] == ("::1", server.getsockname()[1])
            sock.close()
        finally:
            server.close()

    run(main())


@pytest.mark.parametrize("loop_name", LOOP_NAMES)
def test_each_loop_has_its_own_waiter_which_goes_with_the_loop(loop_name: str) -> None:
    gc.collect()  # earlier tests' loops and their epoll sets
    with _listener() as server:
        port = server.getsockname()[1]
        before = _open_fds()
        loops = [new_loop(loop_name) for _ in range(2)]
        for loop in loops:
            loop.run_until_complete(connect_socket("127.0.0.1", port)).close()
        waiters = [_sockio._WAITERS[loop] for loop in loops]
        assert waiters[0] is not waiters[1]
        for loop in loops:
            loop.close()
        del loops, waiters, loop
        gc.collect()
        assert len(_sockio._WAITERS) == 0
        assert _open_fds() == before  # the loops' own descriptors and both epoll sets are closed


# -- SocketStream -------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _stream_pair(via_connect: bool) -> AsyncIterator[tuple[SocketStream, socket.socket]]:
    """A stream and its peer (blocking). ``via_connect``: the stream's socket comes from connect_socket
    (already in the loop's epoll set); else from a socket pair (not in it)."""
    loop = asyncio.get_running_loop()
    if via_connect:
        with _listener() as server:
            sock = await connect_socket("127.0.0.1", server.getsockname()[1])
            server.settimeout(5)
            peer, _ = server.accept()
    else:
        sock, peer = socket.socketpair()
        sock.setblocking(False)
    stream = SocketStream(sock, loop)
    try:
        yield stream, peer
    finally:
        stream.abort()
        peer.close()


@pytest.mark.parametrize("via_connect", [True, False], ids=["connected", "socketpair"])
def test_stream_reads_what_the_peer_sent_then_the_end(run: Run, via_connect: bool) -> None:
    async def main() -> None:
        async with _stream_pair(via_connect) as (stream, peer):
            loop = asyncio.get_running_loop()
            loop.call_later(0.05, peer.sendall, b"hello, netobs")  # the first read has to wait for it
            assert await stream.read(7) == b"hello, "
            assert await stream.read(100) == b"netobs"
            loop.call_later(0.05, peer.shutdown, socket.SHUT_WR)
            assert await stream.read(100) == b""
            assert await stream.read(100) == b""
            assert _waiting() == 0

    run(main())


def test_stream_stamps_each_read_by_the_kernel(run: Run) -> None:
    """Read as the bytes come: the answer's time is from the write to the first read's stamp, and the gap
    to the rest is between the two reads' stamps."""

    async def main() -> None:
        async with _stream_pair(via_connect=True) as (stream, peer):
            assert stream.exchange_ms() is None  # nothing sent or read
            assert stream.latest_tx_ns is None and stream.latest_rx_ns is None
            loop = asyncio.get_running_loop()
            stream.write(b"GET / HTTP/1.1\r\n\r\n")
            await stream.drain()
            assert peer.recv(100).startswith(b"GET")
            loop.call_later(0.03, peer.sendall, b"HTTP/1.1 200 OK\r\n")
            assert await stream.read(100) == b"HTTP/1.1 200 OK\r\n"
            first, first_rx_ns = stream.exchange_ms(), stream.latest_rx_ns
            loop.call_later(0.04, peer.sendall, b"x" * 1000)
            assert await stream.read(2000) == b"x" * 1000
            transfer = elapsed_ms(first_rx_ns, stream.latest_rx_ns)
            assert first is not None and transfer is not None
            assert 29 <= first < 29 + 25
            assert 39 <= transfer < 39 + 25

    run(main())


def _hold_the_loop(seconds: float) -> None:
    time.sleep(seconds)  # on purpose: the loop does nothing else meanwhile


def test_stream_first_byte_is_not_delayed_by_a_busy_loop(run: Run) -> None:
    """The answer arrives 30 ms after the request while the loop is held for 150 ms (an agent with more to
    do than CPU): the first byte's time is the kernel's, not the read's."""

    async def main() -> None:
        async with _stream_pair(via_connect=True) as (stream, peer):
            stream.write(b"ping")
            await stream.drain()
            assert peer.recv(100) == b"ping"
            sent = time.monotonic()
            _hold_the_loop(0.03)
            peer.sendall(b"pong")
            _hold_the_loop(0.12)
            assert await stream.read(100) == b"pong"
            read_ms = (time.monotonic() - sent) * 1000
            first = stream.exchange_ms()
            assert first is not None
            assert 29 <= first < 29 + 40 and read_ms >= 150

    run(main())


@pytest.mark.parametrize("via_connect", [True, False], ids=["connected", "socketpair"])
def test_stream_write_more_than_the_socket_takes_then_drain(run: Run, via_connect: bool) -> None:
    payload = bytes(range(256)) * 16384  # 4 MiB: far more than the socket buffers hold

    async def main() -> None:
        async with _stream_pair(via_connect) as (stream, peer):
            received = bytearray()

            def drain_peer() -> None:
                peer.settimeout(5)
                while len(received) < len(payload):
                    chunk = peer.recv(65536)
                    if not chunk:
                        return
                    received.extend(chunk)

            stream.write(payload[:1000])
            stream.write(payload[1000:])  # queued behind what the socket did not take
            reader = asyncio.get_running_loop().run_in_executor(None, drain_peer)
            await asyncio.wait_for(stream.drain(), 10)
            await asyncio.wait_for(reader, 10)
            assert received == payload

    run(main())


def test_stream_read_raises_a_reset(run: Run) -> None:
    async def main() -> None:
        async with _stream_pair(via_connect=True) as (stream, peer):
            peer.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            asyncio.get_running_loop().call_later(0.05, peer.close)  # closing with linger 0 sends RST
            with pytest.raises(ConnectionResetError):
                await stream.read(100)

    run(main())


def test_stream_read_cancelled_then_read_again(run: Run) -> None:
    async def main() -> None:
        async with _stream_pair(via_connect=True) as (stream, peer):
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(stream.read(100), 0.05)
            assert _waiting() == 0
            peer.sendall(b"late")
            assert await asyncio.wait_for(stream.read(100), 5) == b"late"

    run(main())


def test_stream_abort_closes_the_socket(run: Run) -> None:
    async def main() -> None:
        async with _stream_pair(via_connect=True) as (stream, peer):
            stream.abort()
            peer.settimeout(5)
            assert peer.recv(10) == b""  # the peer sees the connection end

    run(main())


class _InfoSocket:
    """A socket whose TCP_INFO is what the test says."""

    def __init__(self, rtt_us: int, total_retrans: int, size: int = 104) -> None:
        info = bytearray(size)
        if size >= 104:
            struct.pack_into("=I", info, 68, rtt_us)
            struct.pack_into("=I", info, 100, total_retrans)
        self.info = bytes(info)

    def getsockopt(self, level: int, option: int, size: int) -> bytes:
        assert (level, option, size) == (socket.IPPROTO_TCP, socket.TCP_INFO, 104)
        return self.info


@pytest.mark.parametrize(
    ("rtt_us", "total_retrans", "size", "expected"),
    [
        (20_000, 0, 104, 20.0),  # the handshake's RTT sample, in ms
        (7, 0, 104, 0.007),
        (20_000, 1, 104, None),  # a SYN was retransmitted: the caller's clock tells the connect time
        (0, 0, 104, None),  # no RTT sample
        (20_000, 0, 92, None),  # an old kernel's shorter struct: no total_retrans to check
    ],
)
def test_handshake_rtt_reads_the_kernels_sample(
    rtt_us: int, total_retrans: int, size: int, expected: float | None
) -> None:
    sock: Any = _InfoSocket(rtt_us, total_retrans, size)
    assert _sockio.handshake_rtt_ms(sock) == expected


def test_handshake_rtt_of_a_real_connect_is_within_the_connects_own_time(run: Run) -> None:
    async def main() -> None:
        with _listener() as server:
            port = server.getsockname()[1]
            loop = asyncio.get_running_loop()
            for _ in range(5):
                start = loop.time()
                sock = await connect_socket("127.0.0.1", port)
                took_ms = (loop.time() - start) * 1000.0
                rtt_ms = _sockio.handshake_rtt_ms(sock)
                sock.close()
                assert rtt_ms is not None
                assert 0 < rtt_ms <= took_ms + 1.0  # loop.time() is uvloop's whole milliseconds

    run(main())


def test_handshake_rtt_of_a_socket_that_is_not_tcp_is_none() -> None:
    a, b = socket.socketpair()
    with a, b:
        assert _sockio.handshake_rtt_ms(a) is None
