"""Shared ICMP echo sockets, demultiplexed by (identifier, sequence).

Theory of operation
-------------------
Opening a socket per probe run costs several system calls and a loop registration, and a thread per
run would cost far more; at thousands of runs per second both dominate the agent's CPU. So every run
of every ICMP check shares a small pool of sockets, one per (address family, socket kind, TTL,
don't-fragment): TTL and DF are socket options, so runs that want different ones cannot share.

Each socket is registered once with the event loop (``loop.add_reader``). A run hands a *listener*
(the run's in-flight state) to :meth:`EchoSocket.send`; the socket picks a free sequence number, notes
``seq -> (listener, packet index)`` and sends. The reader callback drains the socket and calls the
listener back with the RTT, or with an error when an ICMP error names that request. Anything that
matches no outstanding request (late replies, duplicates, other processes' pings seen by a raw
socket, our own echo requests looped back to a raw socket) is dropped.

Socket kinds:
- ``dgram``: the unprivileged ICMP socket (``SOCK_DGRAM``/``IPPROTO_ICMP``), allowed when the
  process's group is in ``net.ipv4.ping_group_range`` (for IPv6 too). The kernel sets the identifier
  (the socket's "port") and computes checksums, and delivers only this socket's replies. ICMP errors
  arrive on the error queue (``IP_RECVERR``), carrying the original request's header.
- ``raw``: ``SOCK_RAW`` needs CAP_NET_RAW. It sees every ICMP packet of the host (IPv4 with its IP
  header), so it filters by type and by its own identifier (random per socket); ICMP errors arrive
  as ordinary packets quoting the original request. IPv4 checksums are ours to compute.

Timestamps: ``SO_TIMESTAMPNS`` makes the kernel stamp each received packet (CLOCK_REALTIME, ns), so
the RTT is the kernel's receive time minus the wall-clock time taken just before ``sendto``: a busy
event loop that reads the reply late adds nothing. When the kernel gives no stamp, or the stamp is not
plausible (a clock step), the RTT falls back to the user-space monotonic clock at read time.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import random
import socket
import struct
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

log = logging.getLogger(__name__)

# Linux values; Python's socket module does not export all of them.
SOL_IP = 0
SOL_IPV6 = 41
SO_TIMESTAMP = 29
SO_TIMESTAMPNS = 35
SO_RCVBUFFORCE = 33
IP_TTL = 2
IP_MTU_DISCOVER = 10
IP_RECVERR = 11
IP_RECVTTL = 12
IP_PMTUDISC_DONT = 0
IP_PMTUDISC_DO = 2
IPV6_UNICAST_HOPS = 16
IPV6_MTU_DISCOVER = 23
IPV6_RECVERR = 25
IPV6_RECVHOPLIMIT = 51
IPV6_HOPLIMIT = 52
ICMP6_FILTER = 1
SO_EE_ORIGIN_ICMP = 2
SO_EE_ORIGIN_ICMP6 = 3

ICMP_ECHO_REPLY = 0
ICMP_DEST_UNREACH = 3
ICMP_ECHO_REQUEST = 8
ICMP_TIME_EXCEEDED = 11
ICMP6_DEST_UNREACH = 1
ICMP6_PACKET_TOO_BIG = 2
ICMP6_TIME_EXCEEDED = 3
ICMP6_ECHO_REQUEST = 128
ICMP6_ECHO_REPLY = 129

KIND_DGRAM = "dgram"
KIND_RAW = "raw"

RECV_BYTES = 256  # enough for an error quoting IP + ICMP headers; echo payloads are truncated away
ANC_BYTES = 256
RCVBUF_BYTES = 4 << 20
MAX_READS_PER_WAKEUP = 512
# A kernel RTT may exceed the user-space one only by clock granularity; beyond this it is a clock step.
PLAUSIBLE_SLACK_NS = 2_000_000

_HEADER = struct.Struct("!BBHHH")  # type, code, checksum, identifier, sequence
_IDENT_SEQ = struct.Struct("!HH")
_TIMESPEC = struct.Struct("@qq")
_TIMEVAL = struct.Struct("@qq")
_INT = struct.Struct("@i")
_EXT_ERR = struct.Struct("@IBBBBII")  # sock_extended_err


# -- the pure part: packets --------------------------------------------------------------------------


def ones_complement_sum(data: bytes) -> int:
    """The 16-bit words of ``data`` (big-endian, odd length zero-padded) added, not yet folded."""
    if len(data) % 2:
        data += b"\0"
    return sum(struct.unpack(f"!{len(data) // 2}H", data))


def fold_checksum(total: int) -> int:
    """Fold a one's-complement sum to 16 bits and complement it: the Internet checksum."""
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def internet_checksum(data: bytes) -> int:
    """RFC 1071 checksum of ``data``."""
    return fold_checksum(ones_complement_sum(data))


def echo_payload(size_bytes: int) -> bytes:
    """A recognisable payload of ``size_bytes`` (the pattern is arbitrary)."""
    pattern = b"netobs-icmp-echo-"
    return (pattern * (size_bytes // len(pattern) + 1))[:size_bytes]


def echo_request(
    family: int, ident: int, seq: int, payload: bytes, *, payload_sum: int | None = None, checksum: bool = True
) -> bytes:
    """An ICMP (IPv4) or ICMPv6 echo request. The checksum is computed only for IPv4 with ``checksum``
    (the kernel computes ICMPv6 checksums, and IPv4 ones on datagram sockets). ``payload_sum`` is
    ``ones_complement_sum(payload)``, passed in when the caller has it cached."""
    icmp_type = ICMP_ECHO_REQUEST if family == socket.AF_INET else ICMP6_ECHO_REQUEST
    csum = 0
    if checksum and family == socket.AF_INET:
        if payload_sum is None:
            payload_sum = ones_complement_sum(payload)
        csum = fold_checksum((icmp_type << 8) + ident + seq + payload_sum)
    return _HEADER.pack(icmp_type, 0, csum, ident, seq) + payload


@dataclass(frozen=True, slots=True)
class Parsed:
    """What one received ICMP packet says about our requests."""

    ident: int
    seq: int
    is_reply: bool  # an echo reply; else an ICMP error quoting our echo request
    icmp_type: int = 0
    icmp_code: int = 0
    ttl: int | None = None  # IPv4 raw: from the IP header
    info: int = 0  # MTU of "packet too big" / "fragmentation needed"


def parse_raw_v4(data: bytes) -> Parsed | None:
    """An IPv4 packet (IP header first) as read from a raw ICMP socket."""
    if len(data) < 28:
        return None
    ihl = (data[0] & 0x0F) * 4
    icmp_type = data[ihl]
    if icmp_type == ICMP_ECHO_REPLY:
        ident, seq = _IDENT_SEQ.unpack_from(data, ihl + 4)
        return Parsed(ident, seq, True, ttl=data[8])
    if icmp_type in (ICMP_DEST_UNREACH, ICMP_TIME_EXCEEDED):
        inner = ihl + 8
        if len(data) < inner + 20 or data[inner + 9] != socket.IPPROTO_ICMP:
            return None
        quoted = inner + (data[inner] & 0x0F) * 4
        if len(data) < quoted + 8 or data[quoted] != ICMP_ECHO_REQUEST:
            return None
        ident, seq = _IDENT_SEQ.unpack_from(data, quoted + 4)
        mtu = struct.unpack_from("!H", data, ihl + 6)[0] if icmp_type == ICMP_DEST_UNREACH else 0
        return Parsed(ident, seq, False, icmp_type, data[ihl + 1], info=mtu)
    return None


def parse_raw_v6(data: bytes) -> Parsed | None:
    """An ICMPv6 message as read from a raw ICMPv6 socket (no IPv6 header)."""
    if len(data) < 8:
        return None
    icmp_type = data[0]
    if icmp_type == ICMP6_ECHO_REPLY:
        ident, seq = _IDENT_SEQ.unpack_from(data, 4)
        return Parsed(ident, seq, True)
    if icmp_type in (ICMP6_DEST_UNREACH, ICMP6_PACKET_TOO_BIG, ICMP6_TIME_EXCEEDED):
        # 8-byte error header, the quoted IPv6 header (40 bytes), then our echo request.
        if len(data) < 56 or data[8 + 6] != socket.IPPROTO_ICMPV6 or data[48] != ICMP6_ECHO_REQUEST:
            return None
        ident, seq = _IDENT_SEQ.unpack_from(data, 52)
        mtu = struct.unpack_from("!I", data, 4)[0] if icmp_type == ICMP6_PACKET_TOO_BIG else 0
        return Parsed(ident, seq, False, icmp_type, data[1], info=mtu)
    return None


def parse_dgram(data: bytes) -> Parsed | None:
    """An echo reply as read from a datagram ICMP socket (ICMP header first, either family)."""
    if len(data) < 8 or data[0] not in (ICMP_ECHO_REPLY, ICMP6_ECHO_REPLY):
        return None
    ident, seq = _IDENT_SEQ.unpack_from(data, 4)
    return Parsed(ident, seq, True)


def parse_errqueue(data: bytes, ancdata: list[tuple[int, int, bytes]]) -> tuple[Parsed, str | None] | None:
    """An error-queue entry of a datagram socket: our original request plus a ``sock_extended_err``.
    Returns the parsed error and the address of the node that sent it; None for anything else (local
    errors, which ``sendto`` already reported)."""
    for level, kind, cdata in ancdata:
        if (level, kind) not in ((SOL_IP, IP_RECVERR), (SOL_IPV6, IPV6_RECVERR)):
            continue
        if len(cdata) < _EXT_ERR.size:
            return None
        _errno, origin, icmp_type, code, _pad, info, _data = _EXT_ERR.unpack_from(cdata)
        if origin not in (SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6):
            return None
        if len(data) < 8 or data[0] not in (ICMP_ECHO_REQUEST, ICMP6_ECHO_REQUEST):
            return None
        ident, seq = _IDENT_SEQ.unpack_from(data, 4)
        return Parsed(ident, seq, False, icmp_type, code, info=info), _offender(cdata[_EXT_ERR.size :])
    return None


def _offender(sockaddr: bytes) -> str | None:
    if len(sockaddr) >= 8 and int.from_bytes(sockaddr[:2], "little") == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, sockaddr[4:8])
    if len(sockaddr) >= 24 and int.from_bytes(sockaddr[:2], "little") == socket.AF_INET6:
        return socket.inet_ntop(socket.AF_INET6, sockaddr[8:24])
    return None


_V4_UNREACH = {
    0: "network unreachable",
    1: "host unreachable",
    2: "protocol unreachable",
    3: "port unreachable",
    5: "source route failed",
    6: "destination network unknown",
    7: "destination host unknown",
    9: "network administratively prohibited",
    10: "host administratively prohibited",
    11: "network unreachable for TOS",
    12: "host unreachable for TOS",
    13: "communication administratively prohibited",
}
_V6_UNREACH = {
    0: "no route to destination",
    1: "communication administratively prohibited",
    2: "beyond scope of source address",
    3: "address unreachable",
    4: "port unreachable",
    5: "source address failed ingress/egress policy",
    6: "reject route to destination",
}


def describe_icmp_error(family: int, icmp_type: int, code: int, info: int, source: str | None) -> tuple[bool, str]:
    """(is_unreachable, message) for an ICMP error about one of our requests. ``is_unreachable`` is
    False for size problems (fragmentation needed, packet too big), which are not about the route."""
    where = f" from {source}" if source else ""
    if family == socket.AF_INET:
        if icmp_type == ICMP_DEST_UNREACH and code == 4:
            return False, f"fragmentation needed (next-hop MTU {info}) and dont_fragment is set{where}"
        if icmp_type == ICMP_DEST_UNREACH:
            return True, f"ICMP destination unreachable: {_V4_UNREACH.get(code, f'code {code}')}{where}"
        if icmp_type == ICMP_TIME_EXCEEDED:
            return True, f"ICMP time exceeded (TTL expired in transit){where}"
    else:
        if icmp_type == ICMP6_PACKET_TOO_BIG:
            return False, f"ICMPv6 packet too big (MTU {info}){where}"
        if icmp_type == ICMP6_DEST_UNREACH:
            return True, f"ICMPv6 destination unreachable: {_V6_UNREACH.get(code, f'code {code}')}{where}"
        if icmp_type == ICMP6_TIME_EXCEEDED:
            return True, f"ICMPv6 time exceeded (hop limit expired in transit){where}"
    return True, f"ICMP error type {icmp_type} code {code}{where}"


# -- the I/O shell -----------------------------------------------------------------------------------


class SocketLike(Protocol):
    """The part of ``socket.socket`` the echo sockets use (unit tests pass a fake)."""

    def fileno(self) -> int: ...
    def setblocking(self, flag: bool, /) -> None: ...
    def setsockopt(self, level: int, optname: int, value: int | bytes, /) -> None: ...
    def bind(self, address: Any, /) -> None: ...
    def getsockname(self) -> Any: ...
    def sendto(self, data: bytes, address: Any, /) -> int: ...
    def recvmsg(
        self, bufsize: int, ancbufsize: int = ..., flags: int = ..., /
    ) -> tuple[bytes, list[Any], int, Any]: ...
    def close(self) -> None: ...


SocketFactory = Callable[[int, int, int], SocketLike]


class EchoListener(Protocol):
    """A run's in-flight state, called back by the socket."""

    def on_reply(self, index: int, rtt_ns: int, kernel_stamp: bool, ttl: int | None) -> None: ...
    def on_error(self, index: int, unreachable: bool, message: str) -> None: ...


class EchoSocket:
    """One ICMP socket shared by every run with the same (family, kind, ttl, dont_fragment)."""

    def __init__(
        self,
        sock: SocketLike,
        family: int,
        kind: str,
        ident: int,
        loop: asyncio.AbstractEventLoop,
        *,
        wall_clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.sock = sock
        self._wall_clock_ns = wall_clock_ns
        self.family = family
        self.kind = kind
        self.ident = ident
        self.loop = loop
        self.closed = False
        # seq -> (listener, packet index, wall-clock ns at send, monotonic ns at send)
        self._pending: dict[int, tuple[EchoListener, int, int, int]] = {}
        self._seq = random.randrange(0x10000)
        self._checksum = family == socket.AF_INET and kind == KIND_RAW
        self._payloads: dict[int, tuple[bytes, int]] = {}
        if kind == KIND_DGRAM:
            self._parse: Callable[[bytes], Parsed | None] = parse_dgram
        else:
            self._parse = parse_raw_v4 if family == socket.AF_INET else parse_raw_v6
        self._ttl_cmsg = (SOL_IP, IP_TTL) if family == socket.AF_INET else (SOL_IPV6, IPV6_HOPLIMIT)
        loop.add_reader(sock.fileno(), self._on_readable)
        # The pool's sockets live as long as the agent; one dropped without close() (its loop ended)
        # is closed when collected rather than left to the socket's "unclosed" warning.
        self._finalizer = weakref.finalize(self, sock.close)

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def send(self, listener: EchoListener, index: int, address: str, size_bytes: int) -> int:
        """Send echo request ``index`` of ``listener``'s run to ``address``; returns its sequence
        number. Raises ``OSError`` when the kernel refuses it (no route, message too long, ...);
        nothing stays pending then."""
        payload = self._payloads.get(size_bytes)
        if payload is None:
            data = echo_payload(size_bytes)
            payload = self._payloads[size_bytes] = (data, ones_complement_sum(data))
        pending = self._pending
        if len(pending) >= 0xFFFF:
            raise OSError(errno.ENOBUFS, "too many ICMP echo requests in flight on one socket")
        seq = (self._seq + 1) & 0xFFFF
        while seq in pending:
            seq = (seq + 1) & 0xFFFF
        self._seq = seq
        packet = echo_request(self.family, self.ident, seq, payload[0], payload_sum=payload[1], checksum=self._checksum)
        pending[seq] = (listener, index, self._wall_clock_ns(), time.perf_counter_ns())
        try:
            self.sock.sendto(packet, (address, 0))
        except BlockingIOError:
            del pending[seq]
            raise OSError(errno.ENOBUFS, "ICMP socket send buffer full") from None
        except BaseException:
            del pending[seq]
            raise
        return seq

    def forget(self, listener: EchoListener, seqs: list[int]) -> None:
        """Drop what is still pending of ``listener``'s requests (its run is over): late replies to
        them are then ignored."""
        pending = self._pending
        for seq in seqs:
            entry = pending.get(seq)
            if entry is not None and entry[0] is listener:
                del pending[seq]

    def _on_readable(self) -> None:
        sock = self.sock
        pending = self._pending
        parse = self._parse
        ident = self.ident
        ttl_cmsg = self._ttl_cmsg
        for i in range(MAX_READS_PER_WAKEUP):
            try:
                data, ancdata, _flags, address = sock.recvmsg(RECV_BYTES, ANC_BYTES)
            except BlockingIOError:
                if i == 0 and self.kind == KIND_DGRAM:
                    self._drain_errqueue()  # woken with nothing to read: an error is queued
                return
            except InterruptedError:
                continue
            except OSError:
                # A pending socket error (sk_err) set by an ICMP error: a datagram socket has the
                # details on its error queue; a raw socket also receives the ICMP error itself.
                if self.kind == KIND_DGRAM:
                    self._drain_errqueue()
                continue
            now_mono = time.perf_counter_ns()
            parsed = parse(data)
            if parsed is None or parsed.ident != ident:
                continue
            entry = pending.pop(parsed.seq, None)
            if entry is None:
                continue
            listener, index, sent_wall, sent_mono = entry
            if not parsed.is_reply:
                source = address[0] if isinstance(address, tuple) and address else None
                unreachable, message = describe_icmp_error(
                    self.family, parsed.icmp_type, parsed.icmp_code, parsed.info, source
                )
                listener.on_error(index, unreachable, message)
                continue
            user_rtt = now_mono - sent_mono
            rtt = user_rtt
            kernel = False
            ttl = parsed.ttl
            for level, kind, cdata in ancdata:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = _TIMESPEC.unpack(cdata)
                    krtt = sec * 1_000_000_000 + nsec - sent_wall
                    if 0 <= krtt <= user_rtt + PLAUSIBLE_SLACK_NS:
                        rtt = krtt
                        kernel = True
                elif (level, kind) == ttl_cmsg:
                    ttl = _INT.unpack(cdata)[0]
            listener.on_reply(index, rtt, kernel, ttl)

    def _drain_errqueue(self) -> None:
        pending = self._pending
        for _ in range(MAX_READS_PER_WAKEUP):
            try:
                data, ancdata, _flags, _address = self.sock.recvmsg(RECV_BYTES, ANC_BYTES, socket.MSG_ERRQUEUE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            found = parse_errqueue(data, ancdata)
            if found is None:
                continue
            parsed, source = found
            entry = pending.pop(parsed.seq, None) if parsed.ident == self.ident else None
            if entry is None:
                continue
            unreachable, message = describe_icmp_error(
                self.family, parsed.icmp_type, parsed.icmp_code, parsed.info, source
            )
            entry[0].on_error(entry[1], unreachable, message)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if not self.loop.is_closed():
            self.loop.remove_reader(self.sock.fileno())
        self._finalizer()
        self._pending.clear()


class IcmpPermissionError(PermissionError):
    """Neither a datagram nor a raw ICMP socket may be opened; the message says how to allow one."""


def _ping_group_range() -> str:
    try:
        with open("/proc/sys/net/ipv4/ping_group_range", encoding="ascii") as fh:
            return " ".join(fh.read().split())
    except OSError:
        return "unknown"


class EchoSocketPool:
    """The echo sockets of one agent: opened on first use, one per (family, kind, ttl, df).

    ``kind`` "auto" means a datagram socket when allowed, else raw; the choice is made once per
    address family and logged once."""

    def __init__(
        self, socket_factory: SocketFactory | None = None, wall_clock_ns: Callable[[], int] | None = None
    ) -> None:
        """``socket_factory`` opens sockets (``socket.socket``); ``wall_clock_ns`` reads the clock the
        kernel's receive stamps use, CLOCK_REALTIME (``time.time_ns``). Tests pass fakes of both."""
        self._factory: SocketFactory = socket_factory or socket.socket
        self._wall_clock_ns = wall_clock_ns or time.time_ns
        self._sockets: dict[tuple[int, str, int | None, bool], EchoSocket] = {}
        self._auto_kind: dict[int, str] = {}
        self._raw_idents: set[int] = set()
        self._warned_denied: set[tuple[int, str]] = set()

    def get(self, family: int, kind: str, ttl: int | None, dont_fragment: bool) -> EchoSocket:
        """The shared socket for these settings; raises :class:`IcmpPermissionError` (or another
        ``OSError``) when it cannot be opened."""
        if kind == "auto":
            kind = self._auto_kind.get(family, "auto")
        key = (family, kind, ttl, dont_fragment)
        echo = self._sockets.get(key)
        loop = asyncio.get_running_loop()
        if echo is not None and echo.loop is loop and not echo.closed:
            return echo
        if echo is not None:
            echo.close()
        if kind == "auto":
            echo = self._open_auto(family, ttl, dont_fragment, loop)
            kind = echo.kind
        else:
            echo = self._open(family, kind, ttl, dont_fragment, loop)
        self._sockets[(family, kind, ttl, dont_fragment)] = echo
        return echo

    def _open_auto(self, family: int, ttl: int | None, df: bool, loop: asyncio.AbstractEventLoop) -> EchoSocket:
        name = "IPv4" if family == socket.AF_INET else "IPv6"
        try:
            echo = self._open(family, KIND_DGRAM, ttl, df, loop)
            log.info("ICMP over %s: unprivileged datagram sockets (net.ipv4.ping_group_range allows us)", name)
        except IcmpPermissionError as dgram_exc:
            try:
                echo = self._open(family, KIND_RAW, ttl, df, loop)
            except IcmpPermissionError:
                raise IcmpPermissionError(
                    errno.EPERM,
                    f"no permission for ICMP sockets over {name}: datagram ICMP needs the agent's group in "
                    f"net.ipv4.ping_group_range (now '{_ping_group_range()}'), raw ICMP needs CAP_NET_RAW",
                ) from None
            log.info("ICMP over %s: raw sockets (%s)", name, dgram_exc.strerror)
        self._auto_kind[family] = echo.kind
        return echo

    def _open(self, family: int, kind: str, ttl: int | None, df: bool, loop: asyncio.AbstractEventLoop) -> EchoSocket:
        v4 = family == socket.AF_INET
        proto = socket.IPPROTO_ICMP if v4 else socket.IPPROTO_ICMPV6
        sock_type = socket.SOCK_DGRAM if kind == KIND_DGRAM else socket.SOCK_RAW
        try:
            sock = self._factory(family, sock_type, proto)
        except (PermissionError, OSError) as exc:
            if exc.errno not in (errno.EACCES, errno.EPERM, errno.EPROTONOSUPPORT, errno.ESOCKTNOSUPPORT):
                raise
            if kind == KIND_DGRAM:
                why = f"datagram ICMP is not allowed (net.ipv4.ping_group_range is '{_ping_group_range()}')"
            else:
                why = "raw ICMP sockets need CAP_NET_RAW"
            if (family, kind) not in self._warned_denied:
                self._warned_denied.add((family, kind))
                log.debug("cannot open %s ICMP socket: %s", kind, why)
            raise IcmpPermissionError(errno.EPERM, why) from None
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            # Thousands of runs share this socket, and a raw one also receives every echo request the
            # host sends: a small buffer overflows while the loop is busy, and replies are lost. Root may
            # go past net.core.rmem_max (SO_RCVBUFFORCE); others get what the cap allows.
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF_BYTES)
            except OSError:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)
            if v4:
                sock.setsockopt(SOL_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DO if df else IP_PMTUDISC_DONT)
                if ttl is not None:
                    sock.setsockopt(SOL_IP, IP_TTL, ttl)
                if kind == KIND_DGRAM:
                    sock.setsockopt(SOL_IP, IP_RECVTTL, 1)
                    sock.setsockopt(SOL_IP, IP_RECVERR, 1)
            else:
                sock.setsockopt(SOL_IPV6, IPV6_MTU_DISCOVER, IP_PMTUDISC_DO if df else IP_PMTUDISC_DONT)
                if ttl is not None:
                    sock.setsockopt(SOL_IPV6, IPV6_UNICAST_HOPS, ttl)
                sock.setsockopt(SOL_IPV6, IPV6_RECVHOPLIMIT, 1)
                if kind == KIND_DGRAM:
                    sock.setsockopt(SOL_IPV6, IPV6_RECVERR, 1)
                else:
                    sock.setsockopt(socket.IPPROTO_ICMPV6, ICMP6_FILTER, icmp6_filter())
            if kind == KIND_DGRAM:
                sock.bind(("0.0.0.0", 0) if v4 else ("::", 0))
                ident = int(sock.getsockname()[1])
            else:
                ident = self._new_raw_ident()
            return EchoSocket(sock, family, kind, ident, loop, wall_clock_ns=self._wall_clock_ns)
        except BaseException:
            sock.close()
            raise

    def _new_raw_ident(self) -> int:
        base = os.getpid() & 0xFFFF
        while True:
            ident = (base ^ random.randrange(1, 0x10000)) & 0xFFFF
            if ident not in self._raw_idents:
                self._raw_idents.add(ident)
                return ident

    def close(self) -> None:
        for echo in self._sockets.values():
            echo.close()
        self._sockets.clear()


def icmp6_filter() -> bytes:
    """An ICMP6_FILTER letting through echo replies and the errors that quote a request."""
    blocked = [0xFFFFFFFF] * 8  # a set bit blocks the type
    for icmp_type in (ICMP6_ECHO_REPLY, ICMP6_DEST_UNREACH, ICMP6_PACKET_TOO_BIG, ICMP6_TIME_EXCEEDED):
        blocked[icmp_type >> 5] &= ~(1 << (icmp_type & 31))
    return struct.pack("@8I", *blocked)
