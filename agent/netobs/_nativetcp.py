"""Plain TCP checks run by the C engine ``netobs._connect``: the scheduler hands them over, results come back.

A plain TCP check's run is a connect and a close; in Python the machinery around it (a timer, a task and
its coroutines, a future, a deadline) cost about twice what the kernel spends on the connect itself. Jobs
that need nothing else (type ``tcp``, no ``tls``, no ``trace_path``, a target that is an address of the
check's ``ip_version``) are scheduled, issued and timed by the engine's own thread instead (see
``_connect.c``), with the same slots as ``netobs.scheduler`` (first slot from the scheduler, then every
``interval_s``; missed slots skipped; late runs shed when the engine falls behind). Everything else runs
through the scheduler and the probe as before.

When the engine signals, :meth:`NativeTcpRuns._ready` drains its completions and turns each into what
``TcpProbe`` would have given for the same run: the root span and its ``connect`` child (from the run's
own start and end), the connect phase (the kernel's handshake round trip, or the time the connect took
when there is none, as ``TcpProbe`` measures it), the error mapped as the runner maps it, and the result
record, built and handed to the sinks by ``Runner.finish``. The tests compare the two paths' records
and spans run for run.

The engine is optional: without the built C module (``pip install -e .`` builds it), ``load`` gives None
and every TCP check runs in Python.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from opentelemetry.trace import SpanKind, Status, StatusCode

from netobs.config import split_host_port
from netobs.probes.base import Outcome, ProbeContext, child_span, literal_ip
from netobs.result import ErrorType, TcpResult
from netobs.runner import Runner, classify_exception, timed_out_message

log = logging.getLogger(__name__)


class RunEvents(Protocol):
    """What the scheduler counts and logs for every run it starts, skips or misses (``Scheduler``)."""

    def run_started(self, check: Any, lateness_s: float) -> None: ...
    def run_skipped(self, check: Any, target: str, lateness_s: float, now: float) -> None: ...
    def slots_missed(self, check: Any, target: str, missed: int) -> None: ...


try:
    from netobs import _connect
except ImportError:  # not built: every TCP check runs in Python
    _connect = None  # type: ignore[assignment]


def load() -> Callable[[], Any] | None:
    """The engine's constructor, or None when the C module is not built (then every TCP run is Python's)."""
    return None if _connect is None else _connect.ConnectEngine


def plain_address(check: Any, target: str) -> tuple[str, int] | None:
    """(address, port) when ``check`` on ``target`` is a plain connect the engine can run, else None."""
    if check.type != "tcp" or check.tls or check.trace_path:
        return None
    host, port = split_host_port(target)
    port = port or check.port
    try:
        ip = literal_ip(host, check.ip_version)
    except socket.gaierror:
        return None  # an address of the other family: Python's path reports it as a resolve failure
    return None if ip is None or port is None else (ip, port)


@dataclass(slots=True)
class _NativeJob:
    check: Any
    target: str
    ip: str
    port: int
    handle: int
    removed: bool = False


# The completion kinds of _connect.c (unused when it is not built).
_DONE, _TIMEOUT, _SKIPPED, _MISSED, _RELEASED = (
    range(5)
    if _connect is None
    else (_connect.DONE, _connect.TIMEOUT, _connect.SKIPPED, _connect.MISSED, _connect.RELEASED)
)


class NativeTcpRuns:
    """The plain TCP jobs of one scheduler, run by one ``ConnectEngine`` (made on the first ``add``)."""

    def __init__(self, runner: Runner, engine_factory: Callable[[], Any]) -> None:
        self._runner = runner
        self._factory = engine_factory
        self._engine: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._jobs: dict[int, _NativeJob] = {}
        self._next_id = 0
        self._events: RunEvents | None = None
        self._released: asyncio.Event | None = None

    def bind(self, events: RunEvents) -> None:
        self._events = events

    @property
    def jobs(self) -> int:
        """Jobs whose runs may still report (scheduled ones, and removed ones with a run in flight)."""
        return len(self._jobs)

    def add(self, check: Any, target: str, first_slot_s: float, shed_after_s: float) -> int | None:
        """Schedule ``check`` on ``target`` from ``first_slot_s`` (``time.monotonic``); the job's id, or None
        when it is not a plain connect (the scheduler then runs it)."""
        address = plain_address(check, target)
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
        handle = self._engine.add(
            job_id,
            family,
            socket.inet_pton(family, ip),
            port,
            first_slot_s,
            float(check.interval_s),
            float(check.timeout_s),
            shed_after_s,
        )
        self._jobs[job_id] = _NativeJob(check, target, ip, port, handle)
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

    def _ready(self) -> None:
        jobs, events = self._jobs, self._events
        assert events is not None, "bind() the scheduler first"
        for job_id, kind, err, slot_ns, start_mono_ns, wall_ns, elapsed_ns, rtt_us in self._engine.drain():
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
                self._finish(job, kind, err, wall_ns=wall_ns, elapsed_ns=elapsed_ns, rtt_us=rtt_us)
            except Exception:
                log.exception("result of %s %s could not be recorded", job.check.name, job.target)

    def _finish(self, job: _NativeJob, kind: int, err: int, *, wall_ns: int, elapsed_ns: int, rtt_us: int) -> None:
        """What ``Runner.run`` with ``TcpProbe`` gives for this run (see the module's doc)."""
        runner, check, target = self._runner, job.check, job.target
        elapsed_ms = elapsed_ns / 1e6
        connect_ms = rtt_us / 1000.0 if 0 <= rtt_us <= elapsed_ns // 1000 else elapsed_ms
        ctx = ProbeContext(check=check, target=target, deadline=0.0, resolved_ip=job.ip)
        ctx.detail = TcpResult(port=job.port)
        ctx.phases_ms["connect"] = connect_ms
        if kind == _TIMEOUT:
            outcome = Outcome.fail(ErrorType.TIMEOUT, timed_out_message(check))
            failure: str | None = "CancelledError"  # as the deadline ends TcpProbe's connect
        elif err:
            exc = OSError(err, os.strerror(err))  # the OSError subclass of the errno, as a connect raises
            outcome = Outcome.fail(*classify_exception(exc))
            failure = type(exc).__name__
        else:
            outcome = Outcome.ok()
            failure = None
        span = None
        tracer = runner.tracer
        if tracer is not None:
            span = tracer.start_span(
                f"tcp {target}",
                kind=SpanKind.CLIENT,
                attributes={"netobs.check.name": check.name, "netobs.check.type": "tcp", "netobs.target": target},
                start_time=wall_ns,
            )
            connect = child_span(
                tracer,
                span,
                "connect",
                {"network.peer.address": job.ip, "network.peer.port": job.port},
                start_time=wall_ns,
            )
            if failure is not None:
                connect.set_status(Status(StatusCode.ERROR, failure))
            connect.end(wall_ns + round(connect_ms * 1_000_000))
        runner.finish(ctx, wall_ns // 1_000_000, elapsed_ms, outcome, span, end_ns=wall_ns + elapsed_ns)
