"""Traceroute on the wire: flows that send TTL-limited probes and match the answers to them.

Theory of operation. A *flow* is one flow identifier: every probe it sends has the same 5-tuple (and for
ICMP the same identifier and checksum), so a per-flow load balancer keeps all of them on one path (the
Paris traceroute idea). Probes of one flow differ only in fields no load balancer hashes on, and those
fields tell the answers apart:

- ``udp`` (unprivileged): an (unconnected) UDP socket with ``IP_RECVERR``; the kernel queues each ICMP error
  on the socket's error queue with the offender's address and the quoted UDP payload, which carries a
  probe number (as tracepath does). Source and destination ports are fixed for the flow.
- ``tcp`` (raw, CAP_NET_RAW): a SYN from a port reserved by binding a TCP socket; the sequence number is
  the probe number; the destination answers SYN-ACK or RST (``ack - 1`` = probe), routers answer ICMP
  time-exceeded quoting the SYN's ports and sequence number.
- ``icmp`` (raw): echo requests with a fixed identifier; the sequence number is the probe number and two
  payload bytes compensate it so the ICMP checksum stays constant too.

Raw sockets (one for ICMP, one for TCP) are shared by every flow of a :class:`RawSockets`; answers are
dispatched by key. Receive times come from the kernel (``SO_TIMESTAMPNS``) when it gives them.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import logging
import os
import socket
import struct
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from netobs.probes._sockio import rx_timestamp_ns, stamp_arrivals
from netobs.probes._traceroute_core import ProbeReply

log = logging.getLogger(__name__)

IP_RECVERR = getattr(socket, "IP_RECVERR", 11)
IPV6_RECVERR = getattr(socket, "IPV6_RECVERR", 25)
MSG_ERRQUEUE = getattr(socket, "MSG_ERRQUEUE", 0x2000)
SO_EE_ORIGIN_ICMP = 2
SO_EE_ORIGIN_ICMP6 = 3
_EXT_ERR = struct.Struct("=IBBBBII")
_MAGIC = b"NOBS"

ICMP_ECHO_REPLY = 0
ICMP_UNREACH = 3
ICMP_ECHO = 8
ICMP_TIME_EXCEEDED = 11
ICMP6_UNREACH = 1
ICMP6_TIME_EXCEEDED = 3


@dataclass(frozen=True, slots=True)
class Answer:
    """An answer to some probe, before it is matched: who, ICMP type/code (None: not ICMP), when."""

    address: str
    icmp_type: int | None
    icmp_code: int | None
    received_ns: int  # Unix epoch ns


def classify(answer: Answer, destination: str, v6: bool = False) -> tuple[bool, bool]:
    """(final, stop) of an answer: final when the destination itself answered; stop when a router says
    the destination cannot be reached (unreachable other than from the destination)."""
    if answer.icmp_type is None:  # TCP SYN-ACK/RST or a UDP reply: only the destination sends those
        return answer.address == destination, False
    exceeded = ICMP6_TIME_EXCEEDED if v6 else ICMP_TIME_EXCEEDED
    unreach = ICMP6_UNREACH if v6 else ICMP_UNREACH
    if answer.icmp_type == exceeded:
        return False, False
    if (answer.icmp_type == ICMP_ECHO_REPLY and not v6) or (v6 and answer.icmp_type == 129):
        return answer.address == destination, False
    if answer.icmp_type == unreach:
        if answer.address == destination:
            return True, False
        return False, True
    return False, False


def parse_recverr(ancdata: list[tuple[int, int, bytes]]) -> tuple[Answer | None, int | None]:
    """The ICMP answer in the control messages of an error-queue read (None for a local error), and the
    kernel receive timestamp (Unix epoch ns) when present."""
    stamp = rx_timestamp_ns(ancdata)
    err: tuple[int, int, int, str] | None = None
    for level, kind, data in ancdata:
        if (level, kind) in ((socket.IPPROTO_IP, IP_RECVERR), (socket.IPPROTO_IPV6, IPV6_RECVERR)):
            if len(data) < _EXT_ERR.size:
                continue
            _errno, origin, icmp_type, icmp_code, _pad, _info, _data = _EXT_ERR.unpack_from(data)
            if origin not in (SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6):
                continue
            offender = data[_EXT_ERR.size :]
            family = struct.unpack_from("=H", offender)[0] if len(offender) >= 2 else 0
            if family == socket.AF_INET and len(offender) >= 8:
                address = socket.inet_ntop(socket.AF_INET, offender[4:8])
            elif family == socket.AF_INET6 and len(offender) >= 24:
                address = socket.inet_ntop(socket.AF_INET6, offender[8:24])
            else:
                continue
            err = (origin, icmp_type, icmp_code, address)
    if err is None:
        return None, stamp
    return Answer(err[3], err[1], err[2], stamp or time.time_ns()), stamp


def _timestamp(ancdata: list[tuple[int, int, bytes]]) -> int:
    return rx_timestamp_ns(ancdata) or time.time_ns()


# -- packets (pure) ---------------------------------------------------------------------------------
def inet_checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def icmp_echo(ident: int, seq: int, size_bytes: int = 32) -> bytes:
    """An ICMP echo request whose checksum does not depend on ``seq``: the first two payload bytes are
    the one's complement of ``seq``, so their sum in the checksum is constant."""
    payload = struct.pack("!H", ~seq & 0xFFFF) + _MAGIC + bytes(max(0, size_bytes - 6))
    header = struct.pack("!BBHHH", ICMP_ECHO, 0, 0, ident, seq)
    csum = inet_checksum(header + payload)
    return struct.pack("!BBHHH", ICMP_ECHO, 0, csum, ident, seq) + payload


def tcp_syn(src: str, dst: str, sport: int, dport: int, seq: int) -> bytes:
    """A TCP SYN segment (20-byte header, no options) with its checksum over the IPv4 pseudo-header."""
    header = struct.pack("!HHIIBBHHH", sport, dport, seq, 0, 5 << 4, 0x02, 64240, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, socket.IPPROTO_TCP, 20)
    csum = inet_checksum(pseudo + header)
    return header[:16] + struct.pack("!H", csum) + header[18:]


def parse_ipv4_icmp(packet: bytes) -> tuple[str, int, int, tuple[object, ...] | None] | None:
    """(source, type, code, key) of an IPv4 packet carrying ICMP, as a raw ICMP socket reads it.

    ``key`` names the probe answered: ``("icmp", id, seq)`` for an echo reply or a quoted echo request,
    ``("tcp", sport, dport, seq)`` for a quoted TCP segment, ``("udp", sport, dport)`` for quoted UDP;
    None when it cannot be told. Returns None for what is not an ICMP packet."""
    if len(packet) < 20 or packet[0] >> 4 != 4 or packet[9] != socket.IPPROTO_ICMP:
        return None
    ihl = (packet[0] & 0x0F) * 4
    icmp = packet[ihl:]
    if len(icmp) < 8:
        return None
    src = socket.inet_ntoa(packet[12:16])
    icmp_type, icmp_code = icmp[0], icmp[1]
    if icmp_type == ICMP_ECHO_REPLY:
        ident, seq = struct.unpack_from("!HH", icmp, 4)
        return src, icmp_type, icmp_code, ("icmp", ident, seq)
    if icmp_type not in (ICMP_UNREACH, ICMP_TIME_EXCEEDED):
        return src, icmp_type, icmp_code, None
    inner = icmp[8:]
    if len(inner) < 20 or inner[0] >> 4 != 4:
        return src, icmp_type, icmp_code, None
    inner_ihl = (inner[0] & 0x0F) * 4
    proto = inner[9]
    l4 = inner[inner_ihl:]
    key: tuple[object, ...] | None = None
    if proto == socket.IPPROTO_ICMP and len(l4) >= 8 and l4[0] == ICMP_ECHO:
        key = ("icmp", *struct.unpack_from("!HH", l4, 4))
    elif proto == socket.IPPROTO_TCP and len(l4) >= 8:
        key = ("tcp", *struct.unpack_from("!HHI", l4, 0))
    elif proto == socket.IPPROTO_UDP and len(l4) >= 4:
        key = ("udp", *struct.unpack_from("!HH", l4, 0))
    return src, icmp_type, icmp_code, key


def parse_ipv4_tcp(packet: bytes) -> tuple[str, int, int, int, int] | None:
    """(source, sport, dport, flags, ack) of an IPv4 TCP segment as a raw TCP socket reads it."""
    if len(packet) < 20 or packet[0] >> 4 != 4 or packet[9] != socket.IPPROTO_TCP:
        return None
    ihl = (packet[0] & 0x0F) * 4
    tcp = packet[ihl:]
    if len(tcp) < 14:
        return None
    sport, dport, _seq, ack = struct.unpack_from("!HHII", tcp)
    return socket.inet_ntoa(packet[12:16]), sport, dport, tcp[13], ack


# -- flows ------------------------------------------------------------------------------------------
@dataclass(slots=True)
class _Pending:
    ttl: int
    index: int
    sent_ns: int
    future: asyncio.Future[ProbeReply]


class _Flow:
    """What every flow shares: pending probes keyed by probe number, timeouts, answer matching."""

    method = ""
    socket_kind = ""

    def __init__(self, destination: str) -> None:
        self.destination = destination
        self.v6 = ":" in destination
        self._pending: dict[int, _Pending] = {}
        self._numbers = itertools.count(1)
        self.description = ""

    def _send(self, number: int, ttl: int) -> None:
        raise NotImplementedError

    async def probe(self, ttl: int, index: int, timeout_s: float) -> ProbeReply:
        """Send one probe with ``ttl``; its reply, or an unanswered one after ``timeout_s``."""
        loop = asyncio.get_running_loop()
        number = self._next_number()
        pending = _Pending(ttl, index, time.time_ns(), loop.create_future())
        self._pending[number] = pending
        try:
            self._send(number, ttl)
            try:
                async with asyncio.timeout(timeout_s):
                    return await pending.future
            except TimeoutError:
                return ProbeReply(ttl, index, None, sent_at_ns=pending.sent_ns)
        finally:
            self._pending.pop(number, None)

    def _next_number(self) -> int:
        return next(self._numbers) & 0xFFFF or next(self._numbers) & 0xFFFF

    def _answer(self, number: int | None, answer: Answer) -> None:
        if number is None:
            # An answer that does not say which probe it is for (a router that quotes too little):
            # attributable only when one probe is in flight.
            if len(self._pending) != 1:
                return
            number = next(iter(self._pending))
        pending = self._pending.get(number)
        if pending is None or pending.future.done():
            return
        final, stop = classify(answer, self.destination, self.v6)
        rtt_ms = max(0.0, (answer.received_ns - pending.sent_ns) / 1e6)
        pending.future.set_result(
            ProbeReply(
                ttl=pending.ttl,
                index=pending.index,
                address=answer.address,
                rtt_ms=rtt_ms,
                icmp_type=answer.icmp_type,
                icmp_code=answer.icmp_code,
                final=final,
                stop=stop,
                sent_at_ns=pending.sent_ns,
            )
        )

    def close(self) -> None:
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.cancel()


class UdpFlow(_Flow):
    """Unprivileged UDP probes read back through the socket's error queue (``IP_RECVERR``)."""

    method = "udp"
    socket_kind = "dgram"

    def __init__(self, destination: str, port: int, payload_bytes: int = 24, source_port: int = 0) -> None:
        super().__init__(destination)
        family = socket.AF_INET6 if self.v6 else socket.AF_INET
        self._address = (destination, port)
        # Unconnected on purpose: connecting gives the socket a random flow hash that the kernel attaches
        # to every packet (sk_txhash); across veth links Linux routers then balance on that hash instead
        # of the 5-tuple. Unconnected, the 5-tuple alone decides, as on any real router.
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self._sock.setblocking(False)
            if self.v6:
                self._sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
            else:
                self._sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
            stamp_arrivals(self._sock)
            bind_preferred(self._sock, source_address(destination, port), source_port)
        except BaseException:
            self._sock.close()
            raise
        self._payload_pad = bytes(max(0, payload_bytes - 6))
        local = self._sock.getsockname()
        self.description = f"udp {local[0]}:{local[1]} > {destination}:{port}"
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._sock.fileno(), self._on_readable)

    def _send(self, number: int, ttl: int) -> None:
        if self.v6:
            self._sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
        else:
            self._sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
        payload = _MAGIC + struct.pack("!H", number) + self._payload_pad
        for _ in range(4):
            try:
                self._sock.sendto(payload, self._address)
                return
            except OSError as exc:
                # The socket reports the last ICMP error once on the next call (its copy on the error
                # queue stays): that is an answer to an earlier probe, not a failure of this send.
                if exc.errno not in (errno.EHOSTUNREACH, errno.ECONNREFUSED, errno.ENETUNREACH, errno.EPROTO):
                    raise
        self._sock.sendto(payload, self._address)

    def _on_readable(self) -> None:
        while True:
            try:
                data, ancdata, _flags, _addr = self._sock.recvmsg(512, 1024, MSG_ERRQUEUE | socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            except OSError:
                continue
            answer, _stamp = parse_recverr(ancdata)
            if answer is not None:
                self._answer(_probe_number(data), answer)
        while True:  # the destination answered with UDP data (a service listens on the port)
            try:
                data, ancdata, _flags, addr = self._sock.recvmsg(512, 1024, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            except OSError:
                break  # a pending ICMP error reported once; its copy is on the error queue
            if addr[0] == self.destination and addr[1] == self._address[1]:
                self._answer(_probe_number(data), Answer(addr[0], None, None, _timestamp(ancdata)))

    def close(self) -> None:
        super().close()
        self._loop.remove_reader(self._sock.fileno())
        self._sock.close()


def bind_preferred(sock: socket.socket, address: str, port: int) -> None:
    """Bind to ``port`` when it is free, else to any free port."""
    if port:
        try:
            sock.bind((address, port))
            return
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
    sock.bind((address, 0))


def preferred_port(key: str) -> int:
    """A source port that depends only on ``key`` (in 40000..59999): the same flow identifier run after
    run, so a per-flow load balancer keeps a check on the same path and its path hash stays put."""
    return 40000 + zlib.crc32(key.encode()) % 20000


def source_address(destination: str, port: int) -> str:
    """The local address the kernel would send from to ``destination`` (a UDP connect sends nothing)."""
    family = socket.AF_INET6 if ":" in destination else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.connect((destination, port))
        return str(sock.getsockname()[0])


def _probe_number(quoted_payload: bytes) -> int | None:
    if len(quoted_payload) >= 6 and quoted_payload[:4] == _MAGIC:
        return int(struct.unpack_from("!H", quoted_payload, 4)[0])
    return None


class RawSockets:
    """The raw ICMP and TCP sockets shared by every raw flow of a probe (needs CAP_NET_RAW)."""

    def __init__(self) -> None:
        self._icmp: socket.socket | None = None
        self._tcp: socket.socket | None = None
        self._handlers: dict[tuple[object, ...], Callable[[int, Answer], None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._users = 0

    def acquire(self, need_tcp: bool) -> None:
        """Open the sockets (raises PermissionError without CAP_NET_RAW)."""
        loop = asyncio.get_running_loop()
        if self._loop is not None and self._loop is not loop:
            self._close_sockets()
        self._loop = loop
        if self._icmp is None:
            self._icmp = self._open(socket.IPPROTO_ICMP, self._on_icmp)
        if need_tcp and self._tcp is None:
            self._tcp = self._open(socket.IPPROTO_TCP, self._on_tcp)
        self._users += 1

    def release(self) -> None:
        self._users -= 1
        if self._users <= 0:
            self._users = 0
            self._close_sockets()

    def _open(self, proto: int, callback: Callable[[], None]) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, proto)
        sock.setblocking(False)
        stamp_arrivals(sock)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        assert self._loop is not None
        self._loop.add_reader(sock.fileno(), callback)
        return sock

    def _close_sockets(self) -> None:
        for sock in (self._icmp, self._tcp):
            if sock is not None:
                if self._loop is not None and not self._loop.is_closed():
                    self._loop.remove_reader(sock.fileno())
                sock.close()
        self._icmp = self._tcp = None

    def register(self, key: tuple[object, ...], handler: Callable[[int, Answer], None]) -> None:
        self._handlers[key] = handler

    def registered(self, key: tuple[object, ...]) -> bool:
        return key in self._handlers

    def unregister(self, key: tuple[object, ...]) -> None:
        self._handlers.pop(key, None)

    def send(self, proto: int, packet: bytes, destination: str, ttl: int) -> None:
        sock = self._icmp if proto == socket.IPPROTO_ICMP else self._tcp
        assert sock is not None
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
        sock.sendto(packet, (destination, 0))

    def _on_icmp(self) -> None:
        assert self._icmp is not None
        while True:
            try:
                data, ancdata, _flags, _addr = self._icmp.recvmsg(1500, 1024)
            except (BlockingIOError, InterruptedError):
                return
            parsed = parse_ipv4_icmp(data)
            if parsed is None or parsed[3] is None:
                continue
            src, icmp_type, icmp_code, key = parsed
            assert key is not None
            self._dispatch(key, Answer(src, icmp_type, icmp_code, _timestamp(ancdata)))

    def _on_tcp(self) -> None:
        assert self._tcp is not None
        while True:
            try:
                data, ancdata, _flags, _addr = self._tcp.recvmsg(1500, 1024)
            except (BlockingIOError, InterruptedError):
                return
            parsed = parse_ipv4_tcp(data)
            if parsed is None:
                continue
            src, sport, dport, flags, ack = parsed
            if flags & 0x04 or flags & 0x12 == 0x12:  # RST, or SYN-ACK
                # Our SYN went dport -> sport here; it carried seq = ack - 1.
                key = ("tcp", dport, sport, (ack - 1) & 0xFFFFFFFF)
                self._dispatch(key, Answer(src, None, None, _timestamp(ancdata)))

    def _dispatch(self, key: tuple[object, ...], answer: Answer) -> None:
        # key = (protocol, flow fields..., probe number field): the flow's handler gets the last one.
        handler = self._handlers.get(key[:-1])
        if handler is not None:
            handler(int(key[-1]), answer)  # type: ignore[call-overload]


class _RawFlow(_Flow):
    socket_kind = "raw"

    def __init__(self, destination: str, raw: RawSockets) -> None:
        super().__init__(destination)
        if self.v6:
            raise OSError(errno.EAFNOSUPPORT, f"{self.method} traceroute supports IPv4 only")
        self._raw = raw
        self._key: tuple[object, ...] = ()


class IcmpFlow(_RawFlow):
    """ICMP echo requests with a fixed identifier and a constant checksum."""

    method = "icmp"

    def __init__(self, destination: str, raw: RawSockets, ident: int) -> None:
        super().__init__(destination, raw)
        raw.acquire(need_tcp=False)
        self._ident = ident
        self._key = ("icmp", ident)
        raw.register(self._key, self._on_answer)
        self.description = f"icmp id={ident} > {destination}"

    def _send(self, number: int, ttl: int) -> None:
        self._raw.send(socket.IPPROTO_ICMP, icmp_echo(self._ident, number), self.destination, ttl)

    def _on_answer(self, seq: int, answer: Answer) -> None:
        self._answer(seq, answer)

    def close(self) -> None:
        super().close()
        self._raw.unregister(self._key)
        self._raw.release()


class TcpFlow(_RawFlow):
    """TCP SYNs from a reserved source port to a fixed destination port."""

    method = "tcp"

    def __init__(self, destination: str, port: int, raw: RawSockets, source_port: int = 0) -> None:
        super().__init__(destination, raw)
        self._port = port
        # The source address the kernel would use, and a source port nobody else can take meanwhile.
        self._src = source_address(destination, port)
        self._reserved = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            bind_preferred(self._reserved, self._src, source_port)
            raw.acquire(need_tcp=True)
        except BaseException:
            self._reserved.close()
            raise
        self._sport = self._reserved.getsockname()[1]
        self._seq_base = int.from_bytes(os.urandom(4), "big") & 0xFFFF0000
        self._key = ("tcp", self._sport, port)
        raw.register(self._key, self._on_answer)
        self.description = f"tcp {self._src}:{self._sport} > {destination}:{port}"

    def _send(self, number: int, ttl: int) -> None:
        seq = (self._seq_base + number) & 0xFFFFFFFF
        segment = tcp_syn(self._src, self.destination, self._sport, self._port, seq)
        self._raw.send(socket.IPPROTO_TCP, segment, self.destination, ttl)

    def _on_answer(self, seq: int, answer: Answer) -> None:
        self._answer((seq - self._seq_base) & 0xFFFFFFFF, answer)

    def close(self) -> None:
        super().close()
        self._raw.unregister(self._key)
        self._raw.release()
        self._reserved.close()
