"""Plain TCP and HTTP checks run by the C engine ``netobs._connect``: the scheduler hands them over, results
come back.

A plain TCP check's run is a connect and a close; in Python the machinery around it (a timer, a task and
its coroutines, a future, a deadline) cost about twice what the kernel spends on the connect itself. Jobs
that need nothing else are scheduled, issued and timed by the engine's own thread instead (see
``_connect.c``), with the same slots as ``netobs.scheduler`` (first slot from the scheduler, then every
``interval_s``; missed slots skipped; late runs shed when the engine falls behind). Everything else runs
through the scheduler and the probe as before. Plain means:

- **tcp**: no ``tls``, no ``trace_path``, a target that is an address of the check's ``ip_version``;
- **http**: an ``http://`` URL whose host is such an address, HTTP/1.1 (``http_version`` ``1.1`` or
  ``auto``, which is HTTP/1.1 in clear text), no ``trace_path``, a request that can be sent, and a tracer
  that can give spans the ids the engine drew (the agent's always can: ``probes.base.sets_ids``). The
  engine sends the request (its ``traceparent`` filled with ids drawn for the run) and reads the response
  until its framing says it is complete; Python parses and checks it with the probe's own reader
  (``_http1.parse_response``) and rules (``probes.http.settle``). A redirect to follow goes on in Python
  (``HttpProbe.follow`` under ``Runner.complete``), from the first hop's response.

When the engine signals, :meth:`NativeRuns._ready` drains its completions and turns each into what the
probe would have given for the same run: the root span and its phase children (from the run's own times),
the phases (the kernel's measures where it has them, as the probes take them), the error mapped as the
runner maps it, and the result record, built and handed to the sinks by ``Runner.finish``. The tests
compare the two paths' records and spans run for run.

The engine is optional: without the built C module (``pip install -e .`` builds it), ``load`` gives None
and every check runs in Python.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from netobs.config import split_host_port
from netobs.probes._http1 import BodyTooLarge, ProtocolViolation, parse_response
from netobs.probes._http_rules import parse_target, traceparent
from netobs.probes._http_wire import Response, http1_bytes
from netobs.probes.base import Outcome, ProbeContext, child_span, literal_ip, root_span, sets_ids
from netobs.probes.http import HttpProbe, request_body, settle
from netobs.result import ErrorType, HttpResult, TcpResult
from netobs.runner import Runner, classify_exception, timed_out_message

log = logging.getLogger(__name__)


class RunEvents(Protocol):
    """What the scheduler counts and logs for every run it starts, skips or misses (``Scheduler``)."""

    def run_started(self, check: Any, lateness_s: float) -> None: ...
    def run_skipped(self, check: Any, target: str, lateness_s: float, now: float) -> None: ...
    def slots_missed(self, check: Any, target: str, missed: int) -> None: ...


try:
    from netobs import _connect
except ImportError:  # not built: every check runs in Python
    _connect = None  # type: ignore[assignment]


def load() -> Callable[[], Any] | None:
    """The engine's constructor, or None when the C module is not built (then every run is Python's)."""
    return None if _connect is None else _connect.ConnectEngine


def plain_address(check: Any, target: str) -> tuple[str, int] | None:
    """(address, port) when ``check`` on ``target`` is a plain connect the engine can run, else None."""
    if check.type != "tcp" or check.tls or check.trace_path:
        return None
    host, port = split_host_port(target)
    return _address(host, port or check.port, check.ip_version)


def _address(host: str, port: int | None, ip_version: str) -> tuple[str, int] | None:
    try:
        ip = literal_ip(host, ip_version)
    except socket.gaierror:
        return None  # an address of the other family: Python's path reports it as a resolve failure
    return None if ip is None or port is None else (ip, port)


@dataclass(frozen=True, slots=True)
class PlainHttp:
    """What the engine needs for a plain HTTP check on one URL (``plain_http``)."""

    ip: str
    port: int
    body: bytes  # the request's
    request: bytes
    traceparent_at: int  # offset of the traceparent value in ``request``, -1 when none is sent
    attributes: dict[str, Any]  # of the ttfb span


def plain_http(check: Any, target: str, traced: bool) -> PlainHttp | None:
    """The request and address when ``check`` on ``target`` is a plain HTTP/1.1 exchange the engine can run
    (see the module's notes), else None. ``traced``: the run's traceparent is sampled."""
    if check.type != "http" or check.trace_path or check.http_version == "2":
        return None
    try:
        url = parse_target(target)
    except ValueError:
        return None
    address = _address(url.host, url.port, check.ip_version) if url.scheme == "http" else None
    if address is None:
        return None
    body = request_body(check)
    request = HttpProbe.request_of(check, url, check.method, body)
    blank = traceparent(1, 1, traced)  # the engine writes each run's ids over these
    if check.inject_traceparent:
        request.headers.append(("traceparent", blank))
    try:
        wire = http1_bytes(request)
    except ValueError:
        return None  # the probe reports it, run by run
    at = wire.find(b"\r\ntraceparent: " + blank.encode()) if check.inject_traceparent else -1
    attributes = {
        "http.request.method": check.method,
        "url.full": target,
        "server.address": url.host,
        "server.port": url.port,
        "network.protocol.version": "1.1",
    }
    return PlainHttp(*address, body, wire, at + len("\r\ntraceparent: ") if at >= 0 else -1, attributes)


@dataclass(slots=True)
class _NativeJob:
    check: Any
    target: str
    ip: str
    port: int
    handle: int
    http: PlainHttp | None
    root_attributes: dict[str, Any]  # of every run's root span, as Runner.run sets them
    peer: dict[str, Any]  # of every run's connect span
    removed: bool = False


# The completion kinds of _connect.c, and the stages of an HTTP run (unused when it is not built).
_DONE, _TIMEOUT, _SKIPPED, _MISSED, _RELEASED = (
    range(5)
    if _connect is None
    else (_connect.DONE, _connect.TIMEOUT, _connect.SKIPPED, _connect.MISSED, _connect.RELEASED)
)
_CONNECTING, _WAITING, _RECEIVING = (
    range(3) if _connect is None else (_connect.CONNECTING, _connect.WAITING, _connect.RECEIVING)
)


class NativeRuns:
    """The plain jobs of one scheduler, run by one ``ConnectEngine`` (made on the first ``add``)."""

    def __init__(self, runner: Runner, engine_factory: Callable[[], Any]) -> None:
        self._runner = runner
        self._factory = engine_factory
        self._engine: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._jobs: dict[int, _NativeJob] = {}
        self._next_id = 0
        self._events: RunEvents | None = None
        self._released: asyncio.Event | None = None
        self._redirects: set[asyncio.Task[Any]] = set()  # HTTP runs going on in Python after a redirect
        http = runner.probes.get("http")
        # HTTP goes native only with the probe it stands for, and a tracer that takes the engine's ids.
        self._http_probe = http if isinstance(http, HttpProbe) else None
        self._http_ok = self._http_probe is not None and (runner.tracer is None or sets_ids(runner.tracer))

    def bind(self, events: RunEvents) -> None:
        self._events = events

    @property
    def jobs(self) -> int:
        """Jobs whose runs may still report (scheduled ones, and removed ones with a run in flight)."""
        return len(self._jobs)

    def count(self, check_type: str) -> int:
        """Scheduled jobs of ``check_type``."""
        return sum(1 for job in self._jobs.values() if job.check.type == check_type and not job.removed)

    def add(self, check: Any, target: str, first_slot_s: float, shed_after_s: float) -> int | None:
        """Schedule ``check`` on ``target`` from ``first_slot_s`` (``time.monotonic``); the job's id, or None
        when it is not plain (the scheduler then runs it)."""
        http = plain_http(check, target, self._runner.tracer is not None) if self._http_ok else None
        address = (http.ip, http.port) if http is not None else plain_address(check, target)
        if address is None:
            return None
        ip, port = address
        if self._engine is None:
            self._loop = asyncio.get_running_loop()
            self._engine = self._factory()
            self._loop.add_reader(self._engine.fileno(), self._ready)
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        job_id = self._next_id
        self._next_id += 1
        exchange: dict[str, Any] = {}
        if http is not None:
            exchange = {
                "request": http.request,
                "traceparent_at": http.traceparent_at,
                "max_body_bytes": check.max_body_bytes,
                "head_request": check.method == "HEAD",
            }
        handle = self._engine.add(
            job_id,
            family,
            socket.inet_pton(family, ip),
            port,
            first_slot_s,
            float(check.interval_s),
            float(check.timeout_s),
            shed_after_s,
            **exchange,
        )
        root_attributes = {"netobs.check.name": check.name, "netobs.check.type": check.type, "netobs.target": target}
        peer = {"network.peer.address": ip, "network.peer.port": port}
        self._jobs[job_id] = _NativeJob(check, target, ip, port, handle, http, root_attributes, peer)
        return job_id

    def remove(self, job_id: int) -> None:
        """No more runs of ``job_id``; its run in flight, if any, still reports."""
        job = self._jobs.get(job_id)
        if job is not None and not job.removed:
            job.removed = True
            self._engine.remove(job.handle)

    async def stop(self, cancel_running: bool = False) -> None:
        """Remove every job; wait for the runs in flight (or abandon them), then stop the engine."""
        if self._engine is None:
            return
        for job_id in list(self._jobs):
            self.remove(job_id)
        if not cancel_running:
            while self._jobs:
                self._released = asyncio.Event()
                await self._released.wait()
        assert self._loop is not None
        self._loop.remove_reader(self._engine.fileno())
        self._engine.close()
        self._engine = None
        self._jobs.clear()
        if cancel_running:
            for task in self._redirects:
                task.cancel()
        await asyncio.gather(*self._redirects, return_exceptions=True)

    def _ready(self) -> None:
        jobs, events = self._jobs, self._events
        assert events is not None, "bind() the scheduler first"
        for completion in self._engine.drain():
            job_id, kind, err, slot_ns, start_mono_ns = completion[:5]
            job = jobs.get(job_id)
            if job is None:
                continue
            if kind == _RELEASED:
                del jobs[job_id]
                if self._released is not None and not jobs:
                    self._released.set()
                continue
            if kind == _MISSED:
                events.slots_missed(job.check, job.target, err)
                continue
            lateness_s = (start_mono_ns - slot_ns) / 1e9
            if kind == _SKIPPED:
                events.run_skipped(job.check, job.target, lateness_s, start_mono_ns / 1e9)
                continue
            events.run_started(job.check, lateness_s)
            try:
                if job.http is None:
                    self._finish_tcp(job, completion)
                else:
                    self._finish_http(job, completion)
            except Exception:
                log.exception("result of %s %s could not be recorded", job.check.name, job.target)

    def _finish_tcp(self, job: _NativeJob, completion: tuple[Any, ...]) -> None:
        """What ``Runner.run`` with ``TcpProbe`` gives for this run (see the module's doc)."""
        _, kind, err, _, _, wall_ns, elapsed_ns, rtt_us = completion[:8]
        runner, check, target = self._runner, job.check, job.target
        elapsed_ms = elapsed_ns / 1e6
        connect_ms = rtt_us / 1000.0 if 0 <= rtt_us <= elapsed_ns // 1000 else elapsed_ms
        ctx = ProbeContext(check=check, target=target, deadline=0.0, resolved_ip=job.ip)
        ctx.detail = TcpResult(port=job.port)
        ctx.phases_ms["connect"] = connect_ms
        outcome, failure = _ending(check, kind, err)
        span = None
        tracer = runner.tracer
        if tracer is not None:
            span = tracer.start_span(
                f"tcp {target}",
                kind=trace.SpanKind.CLIENT,
                attributes=job.root_attributes,
                start_time=wall_ns,
            )
            _phase_span(tracer, span, "connect", job.peer, start_ns=wall_ns, ms=connect_ms, failure=failure)
        runner.finish(ctx, wall_ns // 1_000_000, elapsed_ms, outcome or Outcome.ok(), span, end_ns=wall_ns + elapsed_ns)

    def _finish_http(self, job: _NativeJob, completion: tuple[Any, ...]) -> None:
        """What ``Runner.run`` with ``HttpProbe`` gives for this run's first hop, and the run's end unless it
        redirects (see the module's doc)."""
        (_, kind, err, _, start_mono_ns, wall_ns, elapsed_ns, rtt_us) = completion[:8]
        stage, connect_ns, tx_wall_ns, ttfb_ns, transfer_ns, ids, data = completion[8:]
        runner, check, target, http = self._runner, job.check, job.target, job.http
        assert http is not None
        ctx = ProbeContext(
            check=check, target=target, deadline=start_mono_ns / 1e9 + check.timeout_s, resolved_ip=job.ip
        )
        result = ctx.detail = HttpResult(method=check.method, url=target)
        trace_id, span_id = int.from_bytes(ids[:16], "big"), int.from_bytes(ids[16:], "big")
        tracer = runner.tracer
        span = None
        if tracer is not None:
            span = root_span(tracer, f"http {target}", trace_id, job.root_attributes, wall_ns)
            ctx.span, ctx.tracer = span, tracer
        connect_ms = rtt_us / 1000.0 if 0 <= rtt_us <= connect_ns // 1000 else connect_ns / 1e6
        ctx.phases_ms["connect"] = connect_ms
        outcome, failure = _ending(check, kind, err)
        response: Response | None = None
        if stage > _CONNECTING and check.inject_traceparent:
            result.traceparent = traceparent(trace_id, span_id, tracer is not None)
        if outcome is None:
            response, outcome, failure = _response(check, result, data if stage == _RECEIVING else None)
        if stage > _CONNECTING:
            ctx.phases_ms["ttfb"] = ttfb_ns / 1e6
        if stage == _RECEIVING:
            ctx.phases_ms["transfer"] = transfer_ns / 1e6
        if span is not None and tracer is not None:
            connect_failure = failure if stage == _CONNECTING else None
            _phase_span(tracer, span, "connect", job.peer, start_ns=wall_ns, ms=connect_ms, failure=connect_failure)
            if stage > _CONNECTING:
                ttfb = child_span(tracer, span, "ttfb", http.attributes, start_time=tx_wall_ns, span_id=span_id)
                _end_phase(ttfb, tx_wall_ns, ttfb_ns / 1e6, failure if stage == _WAITING else None)
            if stage == _RECEIVING:
                transfer = child_span(tracer, span, "transfer", start_time=tx_wall_ns + ttfb_ns)
                if response is not None:
                    transfer.set_attribute("http.response.status_code", response.status_code)
                _end_phase(transfer, tx_wall_ns + ttfb_ns, transfer_ns / 1e6, failure)
        if response is not None:
            step = settle(ctx, target, check.method, http.body, response, before={})
            if not isinstance(step, Outcome):
                self._follow(ctx, step, wall_ns, start_mono_ns, span)
                return
            outcome = step
        runner.finish(
            ctx, wall_ns // 1_000_000, elapsed_ns / 1e6, outcome or Outcome.ok(), span, end_ns=wall_ns + elapsed_ns
        )

    def _follow(
        self, ctx: ProbeContext, redirect: tuple[str, str, bytes], wall_ns: int, start_mono_ns: int, span: Any
    ) -> None:
        """Go on with ``redirect`` in Python: the rest of the run, as ``HttpProbe.run`` would have."""
        assert self._http_probe is not None
        work = self._http_probe.follow(ctx, *redirect)
        task = asyncio.ensure_future(self._runner.complete(ctx, work, wall_ns // 1_000_000, start_mono_ns / 1e9, span))
        self._redirects.add(task)
        task.add_done_callback(self._redirects.discard)


def _response(
    check: Any, result: HttpResult, data: bytes | tuple[str, int, list[tuple[str, str]], bytes] | None
) -> tuple[Response | None, Outcome | None, str | None]:
    """(the response, or the outcome and the name of what the probe's phase would have raised) of what the
    engine read: ``data`` (parsed by the engine already when it was plain: see ``_connect.c``), or None when
    the server closed before any byte."""
    if data is None:
        failure = Outcome.fail(ErrorType.PROTOCOL, "connection closed before any response byte")
        return None, failure, "ProtocolViolation"
    try:
        if isinstance(data, tuple):
            version, status, headers, body = data
        else:
            version, status, headers, body = parse_response(data, check.max_body_bytes, check.method == "HEAD")
    except ProtocolViolation as exc:
        return None, Outcome.fail(ErrorType.PROTOCOL, str(exc)), "ProtocolViolation"
    except BodyTooLarge as exc:
        result.body_bytes = exc.read_bytes
        return None, Outcome.fail(ErrorType.BODY_TOO_LARGE, str(exc)), "BodyTooLarge"
    result.body_bytes = len(body)
    return Response(status, "1.1", headers, body, version), None, None


def _ending(check: Any, kind: int, err: int) -> tuple[Outcome | None, str | None]:
    """(outcome, the name of what ended the phase in flight) of a run the engine ended by its deadline or an
    error; (None, None) when neither."""
    if kind == _TIMEOUT:
        # as the deadline cancels the probe's task
        return Outcome.fail(ErrorType.TIMEOUT, timed_out_message(check)), "CancelledError"
    if err:
        exc = OSError(err, os.strerror(err))  # the OSError subclass of the errno, as a socket call raises
        return Outcome.fail(*classify_exception(exc)), type(exc).__name__
    return None, None


def _phase_span(
    tracer: trace.Tracer,
    parent: Any,
    name: str,
    attributes: dict[str, Any],
    *,
    start_ns: int,
    ms: float,
    failure: str | None,
) -> None:
    _end_phase(child_span(tracer, parent, name, attributes, start_time=start_ns), start_ns, ms, failure)


def _end_phase(span: Any, start_ns: int, ms: float, failure: str | None) -> None:
    """End a phase's span ``ms`` after its start, with the error status ``failure`` names (if any)."""
    if failure is not None:
        span.set_status(Status(StatusCode.ERROR, failure))
    span.end(start_ns + round(ms * 1_000_000))
