"""The ICMP probe against a fake socket layer: no network, the kernel's behaviour played by FakeNet."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from netobs.config import IcmpCheck
from netobs.probes import _icmp_socket as ks
from netobs.probes._icmp_socket import EchoSocketPool
from netobs.probes.base import ProbeContext
from netobs.probes.icmp import IcmpProbe
from netobs.result import ErrorType, IcmpResult, ProbeResult
from netobs.runner import Runner

# Kernel-stamped RTTs are exact here (the fake stamps replies relative to the probe's own clock reading);
# the tolerance covers the rounding to microseconds.
RTT_TOLERANCE_MS = 0.002


@dataclass
class Path:
    """How the fake network treats echo requests to one address, packet by packet (by send order)."""

    rtts_ms: list[float | None] = field(default_factory=lambda: [1.0])  # None: lost; cycles when short
    deliver_after_ms: float | None = None  # when the reply reaches the socket (default: its RTT)
    kernel_stamp: bool = True
    stamp_offset_ns: int = 0  # added to the kernel stamp (a clock step makes it implausible)
    send_errno: int | None = None
    icmp_error: tuple[int, int] | None = None  # (type, code) sent back instead of a reply
    reply_ttl: int = 60


class FakeSocket:
    """An ICMP socket: readiness through a real socketpair, data from the fake network."""

    def __init__(self, net: FakeNet, family: int, kind: int) -> None:
        self.net = net
        self.family = family
        self.kind = kind
        self._r, self._w = socket.socketpair()
        self._r.setblocking(False)
        self.options: dict[tuple[int, int], int | bytes] = {}
        self.port = 0
        self.queue: list[tuple[bytes, list[tuple[int, int, bytes]], Any]] = []
        self.errqueue: list[tuple[bytes, list[tuple[int, int, bytes]]]] = []
        self.sk_err: int | None = None
        self.sent: list[tuple[bytes, Any]] = []
        self.closed = False

    # -- the socket API used by the probe --
    def fileno(self) -> int:
        return self._r.fileno()

    def setblocking(self, flag: bool, /) -> None:
        assert flag is False

    def setsockopt(self, level: int, optname: int, value: int | bytes, /) -> None:
        self.options[(level, optname)] = value

    def bind(self, address: Any, /) -> None:
        self.port = self.net.next_port
        self.net.next_port += 1

    def getsockname(self) -> Any:
        return ("0.0.0.0", self.port)

    def sendto(self, data: bytes, address: Any, /) -> int:
        path = self.net.paths.get(address[0], Path(rtts_ms=[None]))
        if path.send_errno is not None:
            raise OSError(path.send_errno, os.strerror(path.send_errno))
        self.sent.append((data, address))
        self.net.deliver(self, data, address[0], path)
        return len(data)

    def recvmsg(self, bufsize: int, ancbufsize: int = 0, flags: int = 0, /) -> tuple[bytes, list[Any], int, Any]:
        if flags & socket.MSG_ERRQUEUE:
            if not self.errqueue:
                raise BlockingIOError(errno.EAGAIN, "empty")
            data, anc = self.errqueue.pop(0)
            self._sync()
            return data[:bufsize], anc, 0, None
        if self.sk_err is not None:
            err, self.sk_err = self.sk_err, None
            raise OSError(err, errno.errorcode[err])
        if not self.queue:
            self._sync()
            raise BlockingIOError(errno.EAGAIN, "empty")
        data, anc, address = self.queue.pop(0)
        self._sync()
        return data[:bufsize], anc, 0, address

    def close(self) -> None:
        self.closed = True
        self._r.close()
        self._w.close()

    # -- the fake kernel's side --
    def push(self, data: bytes, anc: list[tuple[int, int, bytes]], address: Any) -> None:
        if not self.closed:
            self.queue.append((data, anc, address))
            self._sync()

    def push_error(self, data: bytes, anc: list[tuple[int, int, bytes]], err: int) -> None:
        if not self.closed:
            self.errqueue.append((data, anc))
            self.sk_err = err
            self._sync()

    def _sync(self) -> None:
        """Readable exactly while something is queued (level-triggered, like the kernel)."""
        try:
            while self._r.recv(4096):
                pass
        except BlockingIOError:
            pass
        if self.queue or self.errqueue or self.sk_err is not None:
            self._w.send(b"!")


def _ipv4(proto: int, ttl: int, payload: bytes) -> bytes:
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, ttl, proto, 0, b"\0" * 4, b"\0" * 4)
    return header + payload


class FakeNet:
    """Plays the kernel and the network: answers each request according to the target's Path."""

    def __init__(self) -> None:
        self.paths: dict[str, Path] = {}
        self.allowed = {"dgram": True, "raw": True}
        self.sockets: list[FakeSocket] = []
        self.next_port = 4000
        self.counts: dict[str, int] = {}
        self.last_wall_ns = 0

    def wall_clock_ns(self) -> int:
        """The probe's wall clock; the fake kernel stamps replies relative to its last reading."""
        self.last_wall_ns = time.time_ns()
        return self.last_wall_ns

    def factory(self, family: int, sock_type: int, proto: int) -> FakeSocket:
        kind = "dgram" if sock_type == socket.SOCK_DGRAM else "raw"
        if not self.allowed[kind]:
            raise PermissionError(errno.EACCES if kind == "dgram" else errno.EPERM, "denied")
        assert proto == (socket.IPPROTO_ICMP if family == socket.AF_INET else socket.IPPROTO_ICMPV6)
        sock = FakeSocket(self, family, sock_type)
        self.sockets.append(sock)
        return sock

    def deliver(self, sock: FakeSocket, request: bytes, dest: str, path: Path) -> None:
        n = self.counts.get(dest, 0)
        self.counts[dest] = n + 1
        rtt_ms = path.rtts_ms[n % len(path.rtts_ms)]
        sent_wall = self.last_wall_ns
        ident, seq = struct.unpack_from("!HH", request, 4)
        dgram = sock.kind == socket.SOCK_DGRAM
        if dgram:
            ident = sock.port  # the kernel sets the identifier of datagram ICMP sockets
        v4 = sock.family == socket.AF_INET
        loop = asyncio.get_running_loop()
        if not dgram and v4:  # a raw IPv4 socket also sees our own request on loopback
            loop.call_soon(sock.push, _ipv4(1, 64, request), [], (dest, 0))
        if path.icmp_error is not None:
            icmp_type, code = path.icmp_error
            quoted = struct.pack("!BBHHH", request[0], 0, 0, ident, seq) + request[8:]
            if dgram:
                ee = struct.pack("@IBBBBII", errno.EHOSTUNREACH, 2 if v4 else 3, icmp_type, code, 0, 0, 0)
                offender = struct.pack("<H", socket.AF_INET) + b"\0\0" + socket.inet_aton("192.0.2.1") + b"\0" * 8
                level, name = (ks.SOL_IP, ks.IP_RECVERR) if v4 else (ks.SOL_IPV6, ks.IPV6_RECVERR)
                loop.call_later(0.001, sock.push_error, quoted, [(level, name, ee + offender)], errno.EHOSTUNREACH)
            else:
                body = struct.pack("!BBHI", icmp_type, code, 0, 0) + _ipv4(1, 1, quoted)
                loop.call_later(0.001, sock.push, _ipv4(1, 64, body), [], ("192.0.2.1", 0))
            return
        if rtt_ms is None:
            return
        reply_type = 0 if v4 else 129
        reply = struct.pack("!BBHHH", reply_type, 0, 0, ident, seq) + request[8:]
        anc: list[tuple[int, int, bytes]] = []
        if path.kernel_stamp:
            stamp = sent_wall + int(rtt_ms * 1_000_000) + path.stamp_offset_ns
            anc.append((socket.SOL_SOCKET, ks.SO_TIMESTAMPNS, struct.pack("@qq", *divmod(stamp, 1_000_000_000))))
        if dgram or not v4:
            level, name = (ks.SOL_IP, ks.IP_TTL) if v4 else (ks.SOL_IPV6, ks.IPV6_HOPLIMIT)
            anc.append((level, name, struct.pack("@i", path.reply_ttl)))
        else:
            reply = _ipv4(1, path.reply_ttl, reply)
        delay_ms = path.deliver_after_ms if path.deliver_after_ms is not None else rtt_ms
        loop.call_later(delay_ms / 1000, sock.push, reply, anc, (dest, 0))


class FakeResolver:
    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, str]] = []

    async def resolve(self, host: str, ip_version: str) -> list[str]:
        self.asked.append((host, ip_version))
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.answers[host]


@pytest.fixture
def net() -> Iterator[FakeNet]:
    fake = FakeNet()
    yield fake
    for sock in fake.sockets:
        if not sock.closed:
            sock.close()


def _probe(net: FakeNet, answers: dict[str, list[str]] | None = None) -> IcmpProbe:
    return IcmpProbe(resolver=FakeResolver(answers or {}), sockets=EchoSocketPool(net.factory, net.wall_clock_ns))


def _check(target: str, **kw: Any) -> IcmpCheck:
    kw.setdefault("count", 1)
    kw.setdefault("timeout_s", 0.5)
    kw.setdefault("packet_interval_ms", 20)
    return IcmpCheck(type="icmp", name="ping", targets=[target], **kw)


async def _run(probe: IcmpProbe, check: IcmpCheck, target: str | None = None) -> ProbeResult:
    runner = Runner("agent", "pop", {"icmp": probe})
    return await runner.run(check, target or check.targets[0])


def _icmp(result: ProbeResult) -> IcmpResult:
    assert result.icmp is not None
    return result.icmp


@pytest.mark.parametrize(
    ("path", "count", "expected"),
    [
        (Path(rtts_ms=[3.0]), 1, (True, [3.0], 0.0, None)),
        (Path(rtts_ms=[2.0, 4.0, 3.0]), 3, (True, [2.0, 4.0, 3.0], 0.0, None)),
        (Path(rtts_ms=[2.0, None, 3.0, 5.0]), 4, (True, [2.0, None, 3.0, 5.0], 0.25, None)),
        (Path(rtts_ms=[None]), 2, (False, [None, None], 1.0, ErrorType.PACKET_LOSS)),
    ],
)
async def test_rtts_and_loss_per_packet(
    net: FakeNet, path: Path, count: int, expected: tuple[bool, list[float | None], float, ErrorType | None]
) -> None:
    success, rtts, loss, error_type = expected
    net.paths["192.0.2.10"] = path
    result = await _run(_probe(net), _check("192.0.2.10", count=count))
    icmp = _icmp(result)
    assert result.success is success
    assert result.error_type == (None if error_type is None else str(error_type))
    assert icmp.sent == count
    assert icmp.received == sum(r is not None for r in rtts)
    assert icmp.loss_ratio == loss
    assert icmp.rtts_ms == pytest.approx(rtts, abs=RTT_TOLERANCE_MS)
    assert result.resolved_ip == "192.0.2.10"
    assert "dns" not in result.phases_ms  # an IP literal is not resolved
    if error_type is ErrorType.PACKET_LOSS:
        assert result.error_message is not None
        assert "no echo reply from 192.0.2.10 to 2 request(s)" in result.error_message
        assert result.duration_ms >= 350  # it waited for the replies until shortly before the deadline


async def test_kernel_stamp_is_used_not_the_time_the_loop_read_the_reply(net: FakeNet) -> None:
    # The reply reaches the socket 80 ms after sending, but the kernel stamped it at 2 ms: a busy agent
    # reading late must not add its delay.
    net.paths["192.0.2.1"] = Path(rtts_ms=[2.0], deliver_after_ms=80)
    icmp = _icmp(await _run(_probe(net), _check("192.0.2.1")))
    assert icmp.timestamp_source == "kernel"
    assert icmp.rtts_ms[0] == pytest.approx(2.0, abs=RTT_TOLERANCE_MS)


@pytest.mark.parametrize(
    "path",
    [
        Path(rtts_ms=[2.0], deliver_after_ms=30, kernel_stamp=False),  # no stamp from the kernel
        Path(rtts_ms=[2.0], deliver_after_ms=30, stamp_offset_ns=-(10**12)),  # wall clock stepped back
        Path(rtts_ms=[2.0], deliver_after_ms=30, stamp_offset_ns=10**12),  # stepped forward
    ],
)
async def test_user_clock_fallback(net: FakeNet, path: Path) -> None:
    net.paths["192.0.2.1"] = path
    icmp = _icmp(await _run(_probe(net), _check("192.0.2.1")))
    assert icmp.timestamp_source == "user"
    assert icmp.rtts_ms[0] is not None and 29 <= icmp.rtts_ms[0] < 200


@pytest.mark.parametrize(
    ("allowed", "wanted", "kind"),
    [
        ({"dgram": True, "raw": True}, "auto", "dgram"),
        ({"dgram": False, "raw": True}, "auto", "raw"),
        ({"dgram": True, "raw": True}, "raw", "raw"),
    ],
)
async def test_socket_kind_choice(net: FakeNet, allowed: dict[str, bool], wanted: str, kind: str) -> None:
    net.allowed = allowed
    net.paths["192.0.2.1"] = Path(rtts_ms=[1.0])
    result = await _run(_probe(net), _check("192.0.2.1", socket=wanted))
    assert result.success, result.error_message
    assert _icmp(result).socket_kind == kind
    assert _icmp(result).ttl == 60


@pytest.mark.parametrize(
    ("allowed", "wanted", "fragments"),
    [
        ({"dgram": False, "raw": False}, "auto", ["ping_group_range", "CAP_NET_RAW"]),
        ({"dgram": False, "raw": True}, "dgram", ["ping_group_range"]),
        ({"dgram": True, "raw": False}, "raw", ["CAP_NET_RAW"]),
    ],
)
async def test_no_permission(net: FakeNet, allowed: dict[str, bool], wanted: str, fragments: list[str]) -> None:
    net.allowed = allowed
    result = await _run(_probe(net), _check("192.0.2.1", socket=wanted))
    assert result.error_type == ErrorType.PERMISSION
    assert result.error_message is not None
    for fragment in fragments:
        assert fragment in result.error_message


async def test_one_shared_socket_demultiplexes_many_concurrent_runs(net: FakeNet) -> None:
    targets = [f"192.0.2.{i}" for i in range(1, 101)]
    for i, t in enumerate(targets):
        net.paths[t] = Path(rtts_ms=[10.0 * (1 + i % 10)])  # each target its own RTT
    probe = _probe(net)
    runner = Runner("agent", "pop", {"icmp": probe})
    check = IcmpCheck(type="icmp", name="many", targets=targets, count=2, packet_interval_ms=5, timeout_s=1)
    results = await asyncio.gather(*(runner.run(check, t) for t in targets))
    assert len(net.sockets) == 1
    for i, r in enumerate(results):
        assert r.success, r.error_message
        assert _icmp(r).rtts_ms == pytest.approx([10.0 * (1 + i % 10)] * 2, abs=RTT_TOLERANCE_MS)


async def test_foreign_and_duplicate_replies_are_ignored(net: FakeNet) -> None:
    net.allowed["dgram"] = False  # raw: sees everything, so must filter
    net.paths["192.0.2.1"] = Path(rtts_ms=[20.0])
    probe = _probe(net)
    task = asyncio.create_task(_run(probe, _check("192.0.2.1", count=1)))
    await asyncio.sleep(0.001)
    sock = net.sockets[0]
    ((request, _),) = sock.sent
    ident, seq = struct.unpack_from("!HH", request, 4)
    stamp = struct.pack("@qq", *divmod(time.time_ns(), 1_000_000_000))
    anc = [(socket.SOL_SOCKET, ks.SO_TIMESTAMPNS, stamp)]
    # Another process's ping with the same sequence, and a reply to a sequence we never sent.
    sock.push(_ipv4(1, 64, struct.pack("!BBHHH", 0, 0, 0, ident ^ 0xFFFF, seq)), anc, ("192.0.2.1", 0))
    sock.push(_ipv4(1, 64, struct.pack("!BBHHH", 0, 0, 0, ident, (seq + 5) & 0xFFFF)), anc, ("192.0.2.1", 0))
    result = await task
    # The real reply's RTT, not that of the early foreign one.
    assert _icmp(result).rtts_ms == pytest.approx([20.0], abs=RTT_TOLERANCE_MS)
    assert probe.sockets.get(socket.AF_INET, "raw", None, False).in_flight == 0


@pytest.mark.parametrize(
    ("allowed", "icmp_error", "message"),
    [
        ({"dgram": True, "raw": True}, (3, 1), "ICMP destination unreachable: host unreachable from 192.0.2.1"),
        ({"dgram": False, "raw": True}, (3, 1), "ICMP destination unreachable: host unreachable from 192.0.2.1"),
        ({"dgram": True, "raw": True}, (11, 0), "time exceeded"),
        ({"dgram": False, "raw": True}, (3, 13), "administratively prohibited"),
    ],
)
async def test_icmp_errors_fail_fast_with_unreachable(
    net: FakeNet, allowed: dict[str, bool], icmp_error: tuple[int, int], message: str
) -> None:
    net.allowed = allowed
    net.paths["198.51.100.7"] = Path(icmp_error=icmp_error)
    start = time.perf_counter()
    result = await _run(_probe(net), _check("198.51.100.7", count=2, timeout_s=2))
    assert time.perf_counter() - start < 1.0  # every request answered by an error: no waiting for the deadline
    assert result.error_type == ErrorType.UNREACHABLE
    assert result.error_message is not None and message in result.error_message
    assert _icmp(result).rtts_ms == [None, None]


@pytest.mark.parametrize(
    ("send_errno", "error_type", "fragment"),
    [
        (errno.EHOSTUNREACH, ErrorType.UNREACHABLE, "No route to host"),
        (errno.ENETUNREACH, ErrorType.UNREACHABLE, "Network is unreachable"),
        (errno.EMSGSIZE, ErrorType.NETWORK, "1400-byte payload exceeds the path MTU"),
        (errno.EACCES, ErrorType.PERMISSION, "refused"),
    ],
)
async def test_send_errors(net: FakeNet, send_errno: int, error_type: ErrorType, fragment: str) -> None:
    net.paths["192.0.2.9"] = Path(send_errno=send_errno)
    result = await _run(_probe(net), _check("192.0.2.9", size_bytes=1400, dont_fragment=True))
    assert result.error_type == error_type
    assert result.error_message is not None and fragment in result.error_message


@pytest.mark.parametrize(
    ("ttl", "dont_fragment", "family", "expected"),
    [
        (5, True, socket.AF_INET, {(ks.SOL_IP, ks.IP_TTL): 5, (ks.SOL_IP, ks.IP_MTU_DISCOVER): ks.IP_PMTUDISC_DO}),
        (None, False, socket.AF_INET, {(ks.SOL_IP, ks.IP_MTU_DISCOVER): ks.IP_PMTUDISC_DONT}),
        (9, True, socket.AF_INET6, {(ks.SOL_IPV6, ks.IPV6_UNICAST_HOPS): 9, (ks.SOL_IPV6, ks.IPV6_MTU_DISCOVER): 2}),
    ],
)
async def test_ttl_and_dont_fragment_are_socket_options(
    net: FakeNet, ttl: int | None, dont_fragment: bool, family: int, expected: dict[tuple[int, int], int]
) -> None:
    target = "192.0.2.1" if family == socket.AF_INET else "2001:db8::1"
    net.paths[target] = Path()
    result = await _run(_probe(net), _check(target, ttl=ttl, dont_fragment=dont_fragment))
    assert result.success, result.error_message
    (sock,) = net.sockets
    assert sock.family == family
    for key, value in expected.items():
        assert sock.options[key] == value
    if ttl is None:
        assert (ks.SOL_IP, ks.IP_TTL) not in sock.options


async def test_different_ttl_gets_its_own_socket_and_same_settings_share(net: FakeNet) -> None:
    net.paths["192.0.2.1"] = Path()
    probe = _probe(net)
    for ttl in (3, 4, 3, None, 4):
        assert (await _run(probe, _check("192.0.2.1", ttl=ttl))).success
    assert len(net.sockets) == 3


async def test_ipv6_and_name_resolution(net: FakeNet) -> None:
    net.paths["2001:db8::5"] = Path(rtts_ms=[7.0])
    probe = _probe(net, {"v6.example": ["2001:db8::5", "2001:db8::6"]})
    result = await _run(probe, _check("v6.example", ip_version="6"))
    assert result.success, result.error_message
    assert result.resolved_ip == "2001:db8::5"
    assert "dns" in result.phases_ms
    assert isinstance(probe.resolver, FakeResolver) and probe.resolver.asked == [("v6.example", "6")]
    icmp = _icmp(result)
    assert (icmp.ip_version, icmp.ttl) == (6, 60)
    assert icmp.rtts_ms == pytest.approx([7.0], abs=RTT_TOLERANCE_MS)
    request = net.sockets[0].sent[0][0]
    assert request[0] == 128


@pytest.mark.parametrize(
    ("target", "ip_version", "error_type"),
    [
        ("nowhere.example", "auto", ErrorType.RESOLVE),
        ("2001:db8::1", "4", ErrorType.RESOLVE),
        ("[2001:db8::1]", "6", ErrorType.PACKET_LOSS),  # brackets accepted; nothing answers there
    ],
)
async def test_target_problems(net: FakeNet, target: str, ip_version: str, error_type: ErrorType) -> None:
    result = await _run(_probe(net), _check(target, ip_version=ip_version, timeout_s=0.5))
    assert result.error_type == error_type


async def test_cut_by_the_deadline_keeps_what_was_measured(net: FakeNet) -> None:
    net.paths["192.0.2.1"] = Path(rtts_ms=[1.0, None, None, None])
    probe = _probe(net)
    check = _check("192.0.2.1", count=4, packet_interval_ms=200, timeout_s=5)
    ctx = ProbeContext(check=check, target="192.0.2.1", deadline=time.monotonic() + 5)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):  # the runner's deadline, earlier than the probe expects
            await probe.run(ctx)
    detail = ctx.detail
    assert isinstance(detail, IcmpResult)
    # Normally two requests are out by then (at 0 and 200 ms); a loaded machine may delay the second.
    assert detail.sent in (1, 2, 3)
    assert detail.rtts_ms == pytest.approx([1.0] + [None] * (detail.sent - 1), abs=RTT_TOLERANCE_MS)
    assert (detail.received, detail.loss_ratio) == (1, round((detail.sent - 1) / detail.sent, 6))
    assert detail.rtt_avg_ms == detail.rtts_ms[0]
    assert probe.sockets.get(socket.AF_INET, "auto", None, False).in_flight == 0


async def test_late_reply_after_the_run_is_ignored(net: FakeNet) -> None:
    net.paths["192.0.2.1"] = Path(rtts_ms=[500.0])
    probe = _probe(net)
    result = await _run(probe, _check("192.0.2.1", timeout_s=0.4))
    assert result.error_type == ErrorType.PACKET_LOSS
    await asyncio.sleep(0.2)  # the reply arrives now; nobody waits for it
    assert probe.sockets.get(socket.AF_INET, "auto", None, False).in_flight == 0


async def test_socket_kind_is_logged_once(net: FakeNet, caplog: pytest.LogCaptureFixture) -> None:
    net.allowed["dgram"] = False
    net.paths["192.0.2.1"] = Path()
    probe = _probe(net)
    with caplog.at_level(logging.INFO, logger="netobs.probes._icmp_socket"):
        for _ in range(3):
            assert (await _run(probe, _check("192.0.2.1"))).success
    lines = [r.getMessage() for r in caplog.records if "ICMP over IPv4" in r.getMessage()]
    assert len(lines) == 1
    assert "raw sockets" in lines[0] and "ping_group_range" in lines[0]


def test_icmp_is_a_default_probe() -> None:
    from netobs.probes import default_probes

    assert isinstance(default_probes()["icmp"], IcmpProbe)
