"""``netobs.probes._connect``: non-blocking connects awaited on the loop's own epoll set, on asyncio's loop
and on uvloop (the agent's)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import socket
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest
import uvloop

from netobs.probes import _connect
from netobs.probes._connect import connect_socket

LOOPS = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
Run = Callable[[Coroutine[Any, Any, None]], None]


@pytest.fixture(params=sorted(LOOPS))
def run(request: pytest.FixtureRequest) -> Run:
    def runner(coro: Coroutine[Any, Any, None]) -> None:
        with asyncio.Runner(loop_factory=LOOPS[request.param]) as r:
            r.run(coro)

    return runner


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
        _connect._waiter(asyncio.get_running_loop())
    return len(os.listdir("/proc/self/fd"))


def _waiting() -> int:
    return sum(len(w._waiting) for w in _connect._WAITERS.values())


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


@pytest.mark.parametrize("loop_name", sorted(LOOPS))
def test_each_loop_has_its_own_waiter_which_goes_with_the_loop(loop_name: str) -> None:
    gc.collect()  # earlier tests' loops and their epoll sets
    with _listener() as server:
        port = server.getsockname()[1]
        before = _open_fds()
        loops = [LOOPS[loop_name]() for _ in range(2)]
        for loop in loops:
            loop.run_until_complete(connect_socket("127.0.0.1", port)).close()
        waiters = [_connect._WAITERS[loop] for loop in loops]
        assert waiters[0] is not waiters[1]
        for loop in loops:
            loop.close()
        del loops, waiters, loop
        gc.collect()
        assert len(_connect._WAITERS) == 0
        assert _open_fds() == before  # the loops' own descriptors and both epoll sets are closed
