"""ICMP echo probe: RTT distribution, loss and jitter to a host, over IPv4 or IPv6.

A run sends ``count`` echo requests ``packet_interval_ms`` apart on a socket shared with every other
run (see ``_icmp_socket`` for the design), then waits for the replies until shortly before the run's
deadline. Success means at least one reply; when none came, the run fails with the ICMP error that
named a request (``unreachable``), a send error, or ``packet_loss``. Every packet's RTT is in
``IcmpResult.rtts_ms`` (None when lost), and the result is kept up to date in ``ctx.detail`` while the
run goes on, so a run cut by the deadline still reports what it measured.
"""

from __future__ import annotations

import asyncio
import errno
import itertools
import math
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from netobs.config import IcmpCheck
from netobs.probes._icmp_socket import EchoSocket, EchoSocketPool, IcmpPermissionError
from netobs.probes.base import Outcome, ProbeContext, Resolver, SystemResolver, literal_ip
from netobs.result import ErrorType, IcmpResult

# The probe stops waiting this long (at most a fifth of timeout_s) before the run's deadline, so that it,
# not the runner's timeout, decides the outcome (packet_loss with the figures rather than a timeout) even
# when the event loop runs late.
WAIT_MARGIN_S = 0.1

_UNREACHABLE_ERRNOS = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN}


# -- the maths: pure functions -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RttSummary:
    min_ms: float
    avg_ms: float
    max_ms: float
    stddev_ms: float  # population standard deviation (ping's "mdev")


def loss_ratio(sent: int, received: int) -> float:
    """Share of requests left unanswered, 0..1; 0 when nothing was sent."""
    if sent <= 0:
        return 0.0
    return max(0.0, min(1.0, (sent - received) / sent))


def rtt_summary(rtts_ms: Sequence[float | None]) -> RttSummary | None:
    """min/avg/max/stddev of the answered packets; None when none was answered."""
    answered = [r for r in rtts_ms if r is not None]
    if not answered:
        return None
    n = len(answered)
    mean = sum(answered) / n
    variance = sum((r - mean) ** 2 for r in answered) / n
    return RttSummary(min(answered), mean, max(answered), math.sqrt(variance))


def jitter_ms(rtts_ms: Sequence[float | None]) -> float | None:
    """Mean absolute difference of consecutive answered RTTs (lost packets are skipped, not zeros);
    None with fewer than two replies."""
    answered = [r for r in rtts_ms if r is not None]
    if len(answered) < 2:
        return None
    return sum(abs(b - a) for a, b in itertools.pairwise(answered)) / (len(answered) - 1)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def fill_statistics(detail: IcmpResult) -> None:
    """Set the summary fields of ``detail`` from its ``rtts_ms``."""
    if len(detail.rtts_ms) == 1:  # the common single-packet run, without the general sums
        rtt = detail.rtts_ms[0]
        detail.sent = 1
        detail.received = 0 if rtt is None else 1
        detail.loss_ratio = 1.0 if rtt is None else 0.0
        detail.rtt_min_ms = detail.rtt_avg_ms = detail.rtt_max_ms = None if rtt is None else round(rtt, 3)
        detail.rtt_stddev_ms = None if rtt is None else 0.0
        detail.jitter_ms = None
        return
    detail.sent = len(detail.rtts_ms)
    detail.received = sum(1 for r in detail.rtts_ms if r is not None)
    detail.loss_ratio = round(loss_ratio(detail.sent, detail.received), 6)
    summary = rtt_summary(detail.rtts_ms)
    if summary is None:
        detail.rtt_min_ms = detail.rtt_avg_ms = detail.rtt_max_ms = detail.rtt_stddev_ms = None
    else:
        detail.rtt_min_ms = _round(summary.min_ms)
        detail.rtt_avg_ms = _round(summary.avg_ms)
        detail.rtt_max_ms = _round(summary.max_ms)
        detail.rtt_stddev_ms = _round(summary.stddev_ms)
    detail.jitter_ms = _round(jitter_ms(detail.rtts_ms))


# -- one run's requests in flight --------------------------------------------------------------------


class _Flight:
    """The listener the shared socket calls back; writes straight into the run's IcmpResult."""

    __slots__ = ("all_sent", "detail", "error", "outstanding", "seqs", "user_stamps", "waiter")

    def __init__(self, detail: IcmpResult, waiter: asyncio.Future[None]) -> None:
        self.detail = detail
        self.waiter = waiter
        self.seqs: list[int] = []
        self.outstanding = 0
        self.all_sent = False
        self.user_stamps = 0
        self.error: tuple[ErrorType, str] | None = None  # the first error that named a request

    def on_reply(self, index: int, rtt_ns: int, kernel_stamp: bool, ttl: int | None) -> None:
        self.detail.rtts_ms[index] = round(rtt_ns / 1_000_000, 3)
        if not kernel_stamp:
            self.user_stamps += 1
        if ttl is not None:
            self.detail.ttl = ttl
        self._resolved()

    def on_error(self, index: int, unreachable: bool, message: str) -> None:
        if self.error is None:
            self.error = (ErrorType.UNREACHABLE if unreachable else ErrorType.NETWORK, message)
        self._resolved()

    def send_failed(self, exc: OSError, size_bytes: int) -> None:
        if self.error is None:
            self.error = _send_error(exc, size_bytes)

    def _resolved(self) -> None:
        self.outstanding -= 1
        if self.outstanding <= 0 and self.all_sent and not self.waiter.done():
            self.waiter.set_result(None)

    def expire(self) -> None:
        if not self.waiter.done():
            self.waiter.set_result(None)


def _send_error(exc: OSError, size_bytes: int) -> tuple[ErrorType, str]:
    reason = exc.strerror or str(exc)
    if exc.errno in _UNREACHABLE_ERRNOS:
        return ErrorType.UNREACHABLE, f"sending the echo request failed: {reason}"
    if exc.errno == errno.EMSGSIZE:
        return ErrorType.NETWORK, (
            f"echo request with a {size_bytes}-byte payload exceeds the path MTU and dont_fragment is set"
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return ErrorType.PERMISSION, f"sending the echo request was refused: {reason}"
    return ErrorType.NETWORK, f"sending the echo request failed: {reason}"


def _family_of(ip: str) -> int:
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


class IcmpProbe:
    check_type: ClassVar[str] = "icmp"
    traced: ClassVar[bool] = False  # a run is one exchange of datagrams: metrics and the record say it all

    def __init__(self, resolver: Resolver | None = None, sockets: EchoSocketPool | None = None) -> None:
        self.resolver = resolver or SystemResolver()
        self.sockets = sockets or EchoSocketPool()

    def close(self) -> None:
        """Close the shared sockets (they are reopened on the next run)."""
        self.sockets.close()

    async def run(self, ctx: ProbeContext) -> Outcome:
        check: IcmpCheck = ctx.check
        host = ctx.target.removeprefix("[").removesuffix("]")
        ip = literal_ip(host, check.ip_version)
        if ip is None:
            with ctx.phase("dns"):
                ip = (await self.resolver.resolve(host, check.ip_version))[0]
        ctx.resolved_ip = ip
        family = _family_of(ip)
        detail = IcmpResult(
            sent=0,
            received=0,
            loss_ratio=0.0,
            ip_version=6 if family == socket.AF_INET6 else 4,
            packet_size_bytes=check.size_bytes,
        )
        ctx.detail = detail
        try:
            echo = self.sockets.get(family, check.socket, check.ttl, check.dont_fragment)
        except IcmpPermissionError as exc:
            return Outcome.fail(ErrorType.PERMISSION, exc.strerror or str(exc))
        detail.socket_kind = echo.kind
        loop = asyncio.get_running_loop()
        flight = _Flight(detail, loop.create_future())
        # The loop's clock may differ from time.monotonic() (uvloop): convert via the time left.
        started = loop.time()
        wait_until = started + ctx.remaining_s() - min(WAIT_MARGIN_S, check.timeout_s * 0.2)
        timer = loop.call_at(wait_until, flight.expire)
        try:
            await self._send_all(echo, flight, ip, check, loop)
            flight.all_sent = True
            if flight.outstanding > 0:
                await flight.waiter
        finally:
            timer.cancel()
            echo.forget(flight, flight.seqs)
            fill_statistics(detail)
            detail.timestamp_source = "user" if flight.user_stamps else "kernel"
        if detail.received > 0:
            return Outcome.ok()
        if flight.error is not None:
            return Outcome.fail(*flight.error)
        return Outcome.fail(
            ErrorType.PACKET_LOSS,
            f"no echo reply from {ip} to {detail.sent} request(s) within {wait_until - started:.3g} s",
        )

    @staticmethod
    async def _send_all(
        echo: EchoSocket, flight: _Flight, ip: str, check: IcmpCheck, loop: asyncio.AbstractEventLoop
    ) -> None:
        rtts = flight.detail.rtts_ms
        interval_s = check.packet_interval_ms / 1000.0
        start = loop.time()
        for index in range(check.count):
            if index:
                delay = start + index * interval_s - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            rtts.append(None)
            flight.outstanding += 1
            try:
                flight.seqs.append(echo.send(flight, index, ip, check.size_bytes))
            except OSError as exc:
                flight.outstanding -= 1
                flight.send_failed(exc, check.size_bytes)
