"""Socket I/O awaited on one epoll set per event loop: TCP connects, and plain (no TLS) byte streams.

Theory of operation. A probe's connection lives for one run. Awaiting a connect with the loop's
``add_writer``/``remove_writer`` costs uvloop a poll handle and five ``epoll_ctl`` calls per connect, and a
loop transport for the request and response costs more again (a libuv TCP handle, its registration and
removal, ``ioctl``/``setsockopt``/``getsockname``/``getpeername`` calls, protocol callbacks and a buffer):
at 2,000 probes/s that machinery was a large share of what a probe costs. Here every loop gets one epoll
set of its own (:class:`Waiter`), registered once with the loop as a reader. A socket waits by arming
its entry in that set for one event (``EPOLLONESHOT``: one ``epoll_ctl``; the entry goes quiet after it
fires, and the kernel drops it when the socket is closed); when the set turns readable, the loop calls
:meth:`Waiter._ready`, which collects every socket that is ready with one ``epoll_wait`` and wakes its
future. A socket is only waited for after the system call on it said it would block, so no readiness is
missed.

- :func:`connect_socket`: a non-blocking connect, its completion awaited here;
- :class:`SocketStream`: ``read``/``write``/``drain``/``abort`` straight on the socket (``recvmsg``/``send``),
  for plain HTTP and DNS over TCP, and under TLS (``_tlsio.TlsStream``, which carries its records).
  The kernel stamps what the socket receives (``SO_TIMESTAMPNS``), so the stream knows when what it read
  arrived, however late the loop read it (``SocketStream.latest_rx_ns``, :meth:`SocketStream.exchange_ms`).
- :class:`DatagramExchange`: a connected UDP socket for a request and its reply (DNS over UDP), the reply
  timed by the kernel's receive stamp in the same way (:meth:`DatagramExchange.reply_ms`).

Linux only (epoll), like the rest of the agent's probes.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import os
import select
import socket
import struct
import time
import weakref
from typing import Any

_ONE_SHOT = select.EPOLLONESHOT
_FAILED = select.EPOLLERR | select.EPOLLHUP

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # SCM_TIMESTAMPNS is the same number
_TIMESPEC = struct.Struct("=qq")
_STAMP_SPACE = socket.CMSG_SPACE(_TIMESPEC.size)


def rx_timestamp_ns(ancdata: list[tuple[int, int, bytes]]) -> int | None:
    """The kernel's receive time (``SO_TIMESTAMPNS``: CLOCK_REALTIME, Unix epoch ns) in the control messages
    of a ``recvmsg``, or None when there is none."""
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            sec, nsec = _TIMESPEC.unpack_from(data)
            return int(sec * 1_000_000_000 + nsec)
    return None


def elapsed_ms(start_ns: int | None, end_ns: int | None) -> float | None:
    """From ``start_ns`` to ``end_ns`` (wall-clock ns: ``time.time_ns`` and the kernel's stamps) in ms, or None
    when either is unknown or the end comes first (a step of the wall clock)."""
    if not start_ns or not end_ns or end_ns < start_ns:
        return None
    return (end_ns - start_ns) / 1e6


def stamp_arrivals(sock: socket.socket) -> None:
    """Have the kernel stamp every datagram or segment ``sock`` receives (``SO_TIMESTAMPNS``; read with
    :func:`rx_timestamp_ns`), with the kernel's timestamping held on for the life of the process."""
    _keep_stamping_on()
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)


@functools.cache
def _keep_stamping_on() -> None:
    """Keep the kernel's receive timestamping on for the life of the process: it is switched on while any
    socket asks for it and off with the last one, which patches kernel code each time; connections that come
    and go by the thousand would switch it on and off. One datagram socket that asks for it and is never
    closed holds it on (its descriptor only: no socket object left for the collector to warn about)."""
    keeper = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    keeper.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    keeper.detach()


class Waiter:
    """The sockets waiting on one event loop: :meth:`event` awaits a socket's next event.

    It holds no reference to its loop (the loop holds it, through its reader callback), so a loop that is
    closed and dropped takes its waiter and epoll set along."""

    __slots__ = ("_epoll", "_waiting")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._epoll = select.epoll()
        self._waiting: dict[int, asyncio.Future[int]] = {}
        loop.add_reader(self._epoll.fileno(), self._ready)

    async def event(self, loop: asyncio.AbstractEventLoop, fd: int, events: int, new: bool = False) -> int:
        """``fd``'s epoll events, once one of ``events`` (or an error) happens on it. ``new``: a socket that
        never waited here (one system call: added); otherwise its entry is re-armed, and added if it turns
        out not to be in the set (a socket from elsewhere, a connect that completed at once). Closing the
        socket drops its entry."""
        done: asyncio.Future[int] = loop.create_future()
        if new:
            self._epoll.register(fd, events | _ONE_SHOT)
        else:
            try:
                self._epoll.modify(fd, events | _ONE_SHOT)
            except FileNotFoundError:
                self._epoll.register(fd, events | _ONE_SHOT)
        self._waiting[fd] = done
        try:
            return await done
        finally:
            self._waiting.pop(fd, None)  # also when the wait was cancelled (a run's deadline)

    def _ready(self) -> None:
        waiting = self._waiting
        for fd, events in self._epoll.poll(0):
            done = waiting.pop(fd, None)
            if done is not None and not done.done():
                done.set_result(events)


_WAITERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Waiter] = weakref.WeakKeyDictionary()


def waiter_of(loop: asyncio.AbstractEventLoop) -> Waiter:
    """``loop``'s waiter (made on first use)."""
    waiter = _WAITERS.get(loop)
    if waiter is None:
        waiter = _WAITERS[loop] = Waiter(loop)
    return waiter


async def connect_socket(ip: str, port: int) -> socket.socket:
    """A connected non-blocking TCP socket to ``ip``:``port`` (an address, not a name: no DNS here).

    The connect is issued here, not with the loop's ``sock_connect`` (uvloop's passes every address,
    numeric or not, through getaddrinfo on its thread pool: a thread round trip per probe). A refusal or
    an unreachable network raises the ``OSError`` subclass of its errno, as ``sock_connect`` does."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM | socket.SOCK_NONBLOCK)
    try:
        err = sock.connect_ex((ip, port))
        if err in (errno.EINPROGRESS, errno.EAGAIN):
            loop = asyncio.get_running_loop()
            events = await waiter_of(loop).event(loop, sock.fileno(), select.EPOLLOUT, new=True)
            # Writable without an error condition is a completed connect; otherwise ask for the error.
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) if events & _FAILED else 0
        if err:
            raise OSError(err, os.strerror(err))  # OSError picks the subclass: ConnectionRefusedError...
    except BaseException:
        sock.close()
        raise
    return sock


# struct tcp_info (linux/tcp.h): tcpi_rtt (smoothed RTT, µs) at byte 68, tcpi_total_retrans at byte 100.
_TCP_INFO_BYTES = 104
_TCP_INFO_RTT_AND_RETRANS = struct.Struct("=68xI28xI")


def handshake_rtt_ms(sock: socket.socket) -> float | None:
    """The kernel's measure of a just-connected TCP socket's handshake, SYN sent to SYN-ACK received (µs
    resolution), or None: not a TCP socket, a SYN retransmitted (the connect then took the retransmission
    timeout, which only the caller's clock shows), or no RTT sample.

    Right after the handshake, ``tcpi_rtt`` is that one sample. It is taken when the SYN-ACK arrives, so
    unlike a time read when the event loop gets round to the socket it does not grow with the agent's own
    load (at 2,000 probes/s on loopback the loop's view of a ~10 µs handshake was 0.5 ms at the median)."""
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO_BYTES)
    except OSError:
        return None
    if len(info) < _TCP_INFO_BYTES:
        return None
    rtt_us, total_retrans = _TCP_INFO_RTT_AND_RETRANS.unpack_from(info)
    return rtt_us / 1000.0 if rtt_us and not total_retrans else None


class SocketStream:
    """A byte stream straight on a connected non-blocking socket (``_http_wire.ByteStream``).

    ``read`` returns what one ``recvmsg`` gives (at most ``n`` bytes; ``b""`` once the peer has closed), so
    nothing is buffered here: the reader decides how much it takes in. ``write`` sends at once and keeps
    what the socket did not take for ``drain``. A connection error (a reset) raises from the call that
    meets it. ``abort`` closes the socket.

    Timing: ``write`` notes when its bytes were handed to the kernel (``latest_tx_ns``); the socket asks the
    kernel to stamp what it receives, and ``read`` keeps the stamp of the latest read (``latest_rx_ns``),
    from which an exchange times its response (``_http_wire``). A read's stamp is the arrival of the latest
    segment it took, and segments waiting unread are merged under the latest one's stamp; so when the rest
    of a response has already arrived by the first read (the agent read late, the server sent its head and
    body apart), that read's stamp is the later arrival: the first byte's time stretches towards the last
    byte's (never beyond what the loop saw) and the transfer shrinks by as much. A response that comes in
    one go, as most answers to a probe do, is timed exactly."""

    __slots__ = (
        "_fd",
        "_loop",
        "_pending",
        "_sock",
        "_waiter",
        "latest_rx_ns",
        "latest_tx_ns",
    )

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        self._sock = sock
        self._fd = sock.fileno()
        self._loop = loop
        self._waiter = waiter_of(loop)
        self._pending = bytearray()
        self.latest_rx_ns: int | None = None  # the kernel's stamp of the latest read (None: unstamped)
        self.latest_tx_ns: int | None = None  # when the latest write handed its bytes over
        stamp_arrivals(sock)

    async def _wait(self, events: int) -> None:
        await self._waiter.event(self._loop, self._fd, events)  # in the set already, from its connect

    async def read(self, n: int) -> bytes:
        sock = self._sock
        while True:
            try:
                data, ancdata, _flags, _address = sock.recvmsg(n, _STAMP_SPACE)
            except BlockingIOError:
                await self._wait(select.EPOLLIN)
                continue
            if data:
                self.latest_rx_ns = rx_timestamp_ns(ancdata)
            return data

    def write(self, data: bytes) -> None:
        self.latest_tx_ns = time.time_ns()
        if self._pending:
            self._pending += data
            return
        try:
            sent = self._sock.send(data)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            self._pending += data[sent:]

    async def drain(self) -> None:
        pending = self._pending
        while pending:
            await self._wait(select.EPOLLOUT)
            try:
                del pending[: self._sock.send(pending)]
            except BlockingIOError:
                continue

    def exchange_ms(self) -> float | None:
        """From the latest ``write`` to the kernel's stamp of the latest read, or None (nothing read since,
        or no stamp): a request's round trip on a stream that carries several in turn (DNS over TCP)."""
        return elapsed_ms(self.latest_tx_ns, self.latest_rx_ns)

    def abort(self) -> None:
        self._sock.close()


class DatagramExchange:
    """A connected non-blocking UDP socket to ``ip``:``port`` for requests and their replies, the replies
    timed by the kernel: ``send`` notes when a request was handed to the kernel, ``recv`` awaits a datagram
    on the loop's waiter, and :meth:`reply_ms` runs from the latest send to the kernel's receive stamp of the
    latest datagram, however late the loop read it. Connected, so the kernel drops datagrams from other
    addresses and reports an ICMP port unreachable as ``ConnectionRefusedError`` on the next call."""

    __slots__ = ("_fd", "_loop", "_sock", "_waiter", "received_ns", "sent_ns")

    def __init__(self, ip: str, port: int, loop: asyncio.AbstractEventLoop) -> None:
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_NONBLOCK)
        try:
            stamp_arrivals(sock)
            sock.connect((ip, port))
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._fd = sock.fileno()
        self._loop = loop
        self._waiter = waiter_of(loop)
        self.sent_ns: int | None = None
        self.received_ns: int | None = None

    @property
    def family(self) -> int:
        return int(self._sock.family)

    def getsockname(self) -> Any:
        return self._sock.getsockname()

    def send(self, data: bytes) -> int:
        self.sent_ns = time.time_ns()
        return self._sock.send(data)

    async def recv(self, n: int) -> tuple[bytes, Any]:
        """The next datagram (at most ``n`` bytes) and the address it came from."""
        while True:
            try:
                data, ancdata, _flags, address = self._sock.recvmsg(n, _STAMP_SPACE)
            except BlockingIOError:
                await self._waiter.event(self._loop, self._fd, select.EPOLLIN)  # added on the first wait
                continue
            self.received_ns = rx_timestamp_ns(ancdata)
            return data, address

    def reply_ms(self) -> float | None:
        """From the latest ``send`` to the kernel's stamp of the latest datagram received, or None."""
        return elapsed_ms(self.sent_ns, self.received_ns)

    def close(self) -> None:
        self._sock.close()
