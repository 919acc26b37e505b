"""Traceroute probe: the network path to a target as a trace (Paris-style, ECMP-aware, hop spans).

A run traces ``flows`` flow identifiers (each keeps its 5-tuple constant, so a per-flow load balancer
keeps it on one path; see ``_traceroute_net``), folds each flow's probes into hops, hashes each path,
and reports the distinct paths. Each hop is a child span of the run's root span (under one span per flow
when there are several). Hops get a reverse DNS name (asynchronous, cached, optional) and an ASN and
prefix from an offline table (optional).

``path_trace(ctx, ip, port)`` lets the TCP and HTTP probes trace the TCP path to the server they talk
to, in the same run and trace.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from netobs.config import TracerouteCheck
from netobs.probes._asn import AsnTableCache
from netobs.probes._traceroute_core import (
    ProbeReply,
    fold_hops,
    hop_count,
    path_hash,
    paths_hash,
    trim_replies,
)
from netobs.probes._traceroute_net import IcmpFlow, RawSockets, TcpFlow, UdpFlow, preferred_port
from netobs.probes.base import Outcome, ProbeContext, Resolver, SystemResolver, child_span
from netobs.result import ErrorType, TracerouteHop, TraceroutePath, TracerouteResult

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"udp": 33434, "tcp": 443}


class Flow(Protocol):
    """One flow identifier (see ``_traceroute_net``); probes may be in flight concurrently."""

    method: str
    socket_kind: str  # "dgram" or "raw"
    description: str

    async def probe(self, ttl: int, index: int, timeout_s: float) -> ProbeReply: ...

    def close(self) -> None: ...


FlowFactory = Callable[[str, str, int | None, int], Flow]  # (method, ip, port, flow index) -> Flow
ReverseLookup = Callable[[str], Awaitable[str | None]]


@dataclass(frozen=True, slots=True)
class TraceParams:
    method: str = "udp"
    port: int | None = None
    first_hop: int = 1
    max_hops: int = 30
    probes_per_hop: int = 3
    hop_timeout_s: float = 1.0
    stop_after_silent_hops: int = 5
    flows: int = 1
    reverse_dns: bool = False
    asn_table: str | None = None

    @classmethod
    def of(cls, check: TracerouteCheck) -> TraceParams:
        return cls(
            method=check.method,
            port=check.port or DEFAULT_PORTS.get(check.method),
            first_hop=check.first_hop,
            max_hops=check.max_hops,
            probes_per_hop=check.probes_per_hop,
            hop_timeout_s=check.hop_timeout_s,
            stop_after_silent_hops=check.stop_after_silent_hops,
            flows=check.flows,
            reverse_dns=check.reverse_dns,
            asn_table=check.asn_table,
        )


class NetFlows:
    """The production flow factory: real sockets; raw ones shared by every flow of the factory."""

    def __init__(self) -> None:
        self.raw = RawSockets()
        self._logged: set[str] = set()

    def __call__(self, method: str, ip: str, port: int | None, index: int) -> Flow:
        flow: Flow
        # The same flow identifier for the same (method, target, port, flow index) run after run.
        preferred = preferred_port(f"{method}|{ip}|{port}|{index}")
        if method == "udp":
            flow = UdpFlow(ip, port or DEFAULT_PORTS["udp"], source_port=preferred)
        elif method == "tcp":
            flow = TcpFlow(ip, port or DEFAULT_PORTS["tcp"], self.raw, source_port=preferred)
        else:
            ident = preferred
            while self.raw.registered(("icmp", ident)):
                ident = secrets.randbelow(0xFFFF) + 1
            flow = IcmpFlow(ip, self.raw, ident=ident)
        if method not in self._logged:
            self._logged.add(method)
            how = (
                "an unprivileged UDP socket reading ICMP errors from its error queue (IP_RECVERR)"
                if flow.socket_kind == "dgram"
                else "raw sockets (CAP_NET_RAW)"
            )
            log.info("traceroute: %s probes use %s", method, how)
        return flow


class ReverseDns:
    """Asynchronous, cached PTR look-ups through the system resolver (getnameinfo, NI_NAMEREQD).

    Answers (names and failures alike) are kept ``ttl_s``; concurrent look-ups of one address share one
    query; a look-up that takes longer than ``timeout_s`` counts as no name."""

    def __init__(self, ttl_s: float = 3600.0, timeout_s: float = 2.0, max_entries: int = 65536) -> None:
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self.max_entries = max_entries
        self._cache: dict[str, tuple[float, str | None]] = {}
        self._inflight: dict[str, asyncio.Future[str | None]] = {}
        self.queries = 0

    async def __call__(self, address: str) -> str | None:
        now = time.monotonic()
        cached = self._cache.get(address)
        if cached is not None and cached[0] > now:
            return cached[1]
        inflight = self._inflight.get(address)
        if inflight is not None:
            return await asyncio.shield(inflight)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str | None] = loop.create_future()
        self._inflight[address] = future
        name: str | None = None
        try:
            self.queries += 1
            async with asyncio.timeout(self.timeout_s):
                host, _ = await loop.getnameinfo((address, 0), socket.NI_NAMEREQD)
            name = host if host != address else None
        except (OSError, TimeoutError):
            name = None
        finally:
            del self._inflight[address]
            future.set_result(name)
        if len(self._cache) >= self.max_entries:
            self._cache.clear()
        self._cache[address] = (now + self.ttl_s, name)
        return name


async def trace_flow(
    flow: Flow,
    params: TraceParams,
    window_hops: int,
    progress: Callable[[list[ProbeReply]], None] | None = None,
) -> tuple[list[ProbeReply], bool]:
    """Probe ``flow`` TTL by TTL, ``window_hops`` TTLs at a time (all their probes at once), until the
    destination answers, a router says it is unreachable, ``stop_after_silent_hops`` TTLs in a row stay
    silent, or ``max_hops``. Returns (the replies up to where the trace ended, reached)."""
    replies: list[ProbeReply] = []
    ttl = params.first_hop
    while ttl <= params.max_hops:
        last = min(ttl + window_hops - 1, params.max_hops)
        batch = await asyncio.gather(
            *(
                flow.probe(t, i, params.hop_timeout_s)
                for t in range(ttl, last + 1)
                for i in range(params.probes_per_hop)
            )
        )
        replies.extend(batch)
        kept, reached, done = trim_replies(replies, params.first_hop, params.stop_after_silent_hops)
        if progress is not None:
            progress(kept)
        if done:
            return kept, reached
        ttl = last + 1
    return replies, False


def build_result(method: str, flows: Sequence[tuple[str, list[ProbeReply], bool]]) -> TracerouteResult:
    """The record of a trace from each flow's (description, replies, reached)."""
    paths = []
    for i, (_desc, replies, reached) in enumerate(flows):
        hops = fold_hops(replies)
        paths.append(TraceroutePath(flow_id=i, path_hash=path_hash(hops), reached=reached, hops=hops))
    main = next((p for p in paths if p.reached), paths[0] if paths else None)
    hops = main.hops if main else []
    return TracerouteResult(
        method=method,
        reached=any(p.reached for p in paths),
        hop_count=hop_count(hops),
        path_hash=paths_hash(paths) if len(paths) > 1 else (paths[0].path_hash if paths else ""),
        hops=hops,
        paths=paths if len(paths) > 1 else [],
        distinct_paths=len({p.path_hash for p in paths if p.path_hash}),
    )


class TracerouteProbe:
    check_type: ClassVar[str] = "traceroute"
    traced: ClassVar[bool] = True

    def __init__(
        self,
        resolver: Resolver | None = None,
        flows: FlowFactory | None = None,
        reverse_dns: ReverseLookup | None = None,
        asn_tables: AsnTableCache | None = None,
        window_hops: int = 8,
    ) -> None:
        self.resolver = resolver or SystemResolver()
        self.flows: FlowFactory = flows or NetFlows()
        self.reverse_dns: ReverseLookup = reverse_dns or ReverseDns()
        self.asn_tables = asn_tables or AsnTableCache()
        self.window_hops = window_hops

    async def run(self, ctx: ProbeContext) -> Outcome:
        check: TracerouteCheck = ctx.check
        with ctx.phase("dns"):
            ips = await self.resolver.resolve(ctx.target, check.ip_version)
        ip = ips[0]
        ctx.resolved_ip = ip
        result = await self.trace(ctx, ip, TraceParams.of(check), parent=ctx.span)
        if result.reached:
            return Outcome.ok()
        last = next((h for h in reversed(result.hops) if h.address is not None), None)
        where = f"last answer from {last.address} at ttl {last.ttl}" if last else "no hop answered"
        return Outcome.fail(ErrorType.UNREACHABLE, f"{ip} not reached within {check.max_hops} hops; {where}")

    async def trace(self, ctx: ProbeContext, ip: str, params: TraceParams, parent: Span | None) -> TracerouteResult:
        """Trace ``ip``; keeps the partial record in ``ctx.detail`` as it goes (a run cut by its deadline
        still reports what it measured) and makes the hop spans under ``parent`` (if tracing)."""
        opened: list[Flow] = []
        replies: list[list[ProbeReply]] = []
        reached: list[bool] = []
        method = params.method

        def progress() -> None:
            ctx.detail = build_result(
                method, [(f.description, r, ok) for f, r, ok in zip(opened, replies, reached, strict=True)]
            )

        async def one(i: int) -> None:
            def on_progress(kept: list[ProbeReply]) -> None:
                replies[i] = kept
                progress()

            kept, ok = await trace_flow(opened[i], params, self.window_hops, on_progress)
            replies[i], reached[i] = kept, ok
            progress()

        try:
            for i in range(params.flows):
                opened.append(self.flows(method, ip, params.port, i))
                replies.append([])
                reached.append(False)
            progress()
            await asyncio.gather(*(one(i) for i in range(params.flows)))
            result: TracerouteResult = ctx.detail
            await self._enrich(result, params, ctx.remaining_s())
            return result
        finally:
            for flow in opened:
                flow.close()
            if ctx.detail is not None and parent is not None and ctx.tracer is not None:
                _spans(ctx.tracer, parent, ctx.detail, opened, replies, params)

    async def _enrich(self, result: TracerouteResult, params: TraceParams, budget_s: float) -> None:
        every = [h for h in result.hops] + [h for p in result.paths for h in p.hops]
        addresses = sorted({h.address for h in every if h.address is not None})
        if params.asn_table:
            table = self.asn_tables.get(params.asn_table)
            for hop in every:
                match = table.lookup(hop.address) if hop.address else None
                if match is not None:
                    hop.asn, hop.prefix = match.asn, match.prefix
        if params.reverse_dns and addresses and budget_s > 0:
            names: dict[str, str | None] = {}

            async def lookup(address: str) -> None:
                names[address] = await self.reverse_dns(address)

            try:
                async with asyncio.timeout(min(budget_s, 5.0)):
                    await asyncio.gather(*(lookup(a) for a in addresses))
            except TimeoutError:
                log.debug("reverse DNS of %d hop addresses did not finish in time", len(addresses))
            for hop in every:
                if hop.address is not None:
                    hop.hostname = names.get(hop.address)


def _hop_span_attributes(hop: TracerouteHop) -> dict[str, Any]:
    rtts = [r for r in hop.rtts_ms if r is not None]
    attrs: dict[str, Any] = {
        "netobs.traceroute.hop.ttl": hop.ttl,
        "netobs.traceroute.hop.loss": hop.loss,
        "netobs.traceroute.hop.probes": len(hop.rtts_ms),
    }
    if hop.address is not None:
        attrs["network.peer.address"] = hop.address
    if len(hop.addresses) > 1:
        attrs["netobs.traceroute.hop.addresses"] = list(hop.addresses)
    if rtts:
        attrs["netobs.traceroute.hop.rtt_ms"] = hop.rtt_ms
        attrs["netobs.traceroute.hop.rtt_min_ms"] = min(rtts)
        attrs["netobs.traceroute.hop.rtt_max_ms"] = max(rtts)
    optional = {
        "netobs.traceroute.hop.hostname": hop.hostname,
        "netobs.traceroute.hop.asn": hop.asn,
        "netobs.traceroute.hop.prefix": hop.prefix,
        "netobs.traceroute.hop.icmp.type": hop.icmp_type,
        "netobs.traceroute.hop.icmp.code": hop.icmp_code,
    }
    attrs.update({k: v for k, v in optional.items() if v is not None})
    return attrs


def _spans(  # noqa: PLR0917
    tracer: trace.Tracer,
    parent: Span,
    result: TracerouteResult,
    flows: Sequence[Flow],
    replies: Sequence[list[ProbeReply]],
    params: TraceParams,
) -> None:
    """Hop spans, timed by their probes: from the first send to the last answer (or timeout)."""
    parent.set_attribute("netobs.traceroute.method", result.method)
    if flows:
        parent.set_attribute("netobs.traceroute.socket_kind", flows[0].socket_kind)
    parent.set_attribute("netobs.traceroute.reached", result.reached)
    parent.set_attribute("netobs.traceroute.hop_count", result.hop_count)
    parent.set_attribute("netobs.traceroute.path.hash", result.path_hash)
    parent.set_attribute("netobs.traceroute.distinct_paths", result.distinct_paths)
    paths = result.paths or [
        TraceroutePath(flow_id=0, path_hash=result.path_hash, reached=result.reached, hops=result.hops)
    ]
    timeout_ns = int(params.hop_timeout_s * 1e9)
    for path, flow, flow_replies in zip(paths, flows, replies, strict=False):
        window: dict[int, tuple[int, int]] = {}
        for r in flow_replies:
            end = r.sent_at_ns + (int(r.rtt_ms * 1e6) if r.rtt_ms is not None else timeout_ns)
            start0, end0 = window.get(r.ttl, (r.sent_at_ns, end))
            window[r.ttl] = (min(start0, r.sent_at_ns), max(end0, end))
        hop_parent = parent
        flow_span = None
        if len(flows) > 1:
            starts = [w[0] for w in window.values()] or [time.time_ns()]
            flow_span = tracer.start_span(
                f"flow {path.flow_id}",
                context=trace.set_span_in_context(parent),
                start_time=min(starts),
                attributes={
                    "netobs.traceroute.flow": flow.description,
                    "netobs.traceroute.flow.id": path.flow_id,
                    "netobs.traceroute.path.hash": path.path_hash,
                    "netobs.traceroute.reached": path.reached,
                },
            )
            hop_parent = flow_span
        for hop in path.hops:
            start, end = window.get(hop.ttl, (time.time_ns(), time.time_ns()))
            span = tracer.start_span(
                f"hop {hop.ttl}",
                context=trace.set_span_in_context(hop_parent),
                start_time=start,
                attributes=_hop_span_attributes(hop),
            )
            if hop.address is None:
                span.set_status(Status(StatusCode.ERROR, "no answer"))
            span.end(end_time=end)
        if flow_span is not None:
            flow_span.end(end_time=max([w[1] for w in window.values()] or [time.time_ns()]))


# -- the path of another probe's connection ---------------------------------------------------------
_PATH_PROBE: TracerouteProbe | None = None


def _path_probe() -> TracerouteProbe:
    global _PATH_PROBE  # noqa: PLW0603 - one shared set of raw sockets for every in-session trace
    if _PATH_PROBE is None:
        _PATH_PROBE = TracerouteProbe()
    return _PATH_PROBE


async def trace_path(
    ctx: ProbeContext,
    ip: str,
    port: int,
    params: TraceParams | None = None,
    probe: TracerouteProbe | None = None,
) -> TracerouteResult | None:
    """Trace the TCP path to ``ip``:``port`` inside another probe's run: a ``traceroute ip:port`` span
    under the run's root span, with the hop spans under it. Never fails the calling run: a trace that
    cannot be done (no CAP_NET_RAW, say) marks its span as an error and returns None. The trace is
    bounded by the run's deadline. Cancellation propagates."""
    params = params or TraceParams(
        method="tcp", port=port, probes_per_hop=2, hop_timeout_s=1.0, stop_after_silent_hops=3
    )
    probe = probe or _path_probe()
    sub = ProbeContext(check=ctx.check, target=f"{ip}:{port}", deadline=ctx.deadline, tracer=ctx.tracer)
    span = None
    if ctx.tracer is not None and ctx.span is not None:
        span = child_span(
            ctx.tracer, ctx.span, f"traceroute {ip}:{port}", {"network.peer.address": ip, "network.peer.port": port}
        )
    sub.span = span
    try:
        async with asyncio.timeout(max(0.0, ctx.remaining_s() - 0.05)):
            return await probe.trace(sub, ip, params, parent=span)
    except Exception as exc:
        if isinstance(exc, OSError | TimeoutError):
            log.debug("path trace to %s:%d: %s", ip, port, exc)
        else:
            log.exception("path trace to %s:%d failed", ip, port)
        if span is not None:
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        return sub.detail if isinstance(sub.detail, TracerouteResult) else None
    finally:
        if span is not None:
            span.end()


_NOT_TRACED: AbstractAsyncContextManager[None] = nullcontext()


def path_trace(ctx: ProbeContext, ip: str, port: int, enabled: bool = True) -> AbstractAsyncContextManager[None]:
    """Trace the TCP path to ``ip``:``port`` while the block runs (e.g. around a connect):

        async with path_trace(ctx, ip, port, enabled=check.trace_path):
            sock = await connect_socket(ip, port)

    On leaving the block normally or with an error the trace is awaited (it ends by the run's deadline
    at the latest), so a failed connect still gets its path; on cancellation it is cancelled too.
    The path found is stored in the run's record (``ctx.detail.path``) when the record has that field.
    Not enabled (most runs), it is a shared no-op context manager."""
    return _path_trace(ctx, ip, port) if enabled else _NOT_TRACED


@asynccontextmanager
async def _path_trace(ctx: ProbeContext, ip: str, port: int) -> AsyncIterator[None]:
    task = asyncio.create_task(trace_path(ctx, ip, port))
    try:
        yield
    except asyncio.CancelledError:
        task.cancel()
        raise
    except BaseException:
        _store_path(ctx, await task)
        raise
    _store_path(ctx, await task)


def _store_path(ctx: ProbeContext, path: TracerouteResult | None) -> None:
    if path is not None and hasattr(ctx.detail, "path"):
        ctx.detail.path = path
