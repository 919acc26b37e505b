"""The runner: deadline, timing, error mapping, spans and the record, with fake probes (no network)."""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
from typing import Any, ClassVar

import pytest

from netobs._lightspans import LightTracer
from netobs.config import parse_config
from netobs.probes.base import Outcome, ProbeContext
from netobs.result import ErrorType, ProbeResult, TcpResult
from netobs.runner import Runner, classify_exception, new_result_id
from netobs.telemetry import Telemetry


class FakeProbe:
    check_type: ClassVar[str] = "tcp"
    traced: ClassVar[bool] = True

    def __init__(self, behaviour: Any) -> None:
        self.behaviour = behaviour

    async def run(self, ctx: ProbeContext) -> Outcome:
        ctx.resolved_ip = "192.0.2.7"
        ctx.detail = TcpResult(port=443)
        with ctx.phase("dns"):
            pass
        with ctx.phase("connect"):
            if isinstance(self.behaviour, BaseException):
                raise self.behaviour
            if self.behaviour == "hang":
                await asyncio.sleep(3600)
        assert isinstance(self.behaviour, Outcome)
        return self.behaviour


CFG = parse_config(
    "agent_id: a1\npop: fra\n"
    "checks: [{name: web, type: tcp, targets: ['h:443'], timeout_s: 0.2, interval_s: 1, labels: {team: net}}]"
)


def _runner(probe: FakeProbe) -> tuple[Runner, Any, list[ProbeResult]]:
    telemetry = Telemetry.in_memory(CFG)
    seen: list[ProbeResult] = []
    sinks = [seen.append, telemetry.record]
    runner = Runner("a1", "fra", {"tcp": probe}, sinks=sinks, tracer=telemetry.tracer)
    return runner, telemetry, seen


@pytest.mark.parametrize(
    ("behaviour", "success", "error_type"),
    [
        (Outcome.ok(), True, None),
        (Outcome.fail(ErrorType.HTTP_STATUS, "status 503"), False, "http_status"),
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), False, "connection_refused"),
        (OSError(errno.EHOSTUNREACH, "No route to host"), False, "unreachable"),
        (OSError(errno.ENETUNREACH, "Network is unreachable"), False, "unreachable"),
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), False, "resolve_failed"),
        (PermissionError(errno.EPERM, "Operation not permitted"), False, "permission_denied"),
        (ssl.SSLCertVerificationError(1, "certificate has expired"), False, "tls_certificate"),
        (ssl.SSLError(1, "handshake failure"), False, "tls_handshake"),
        (asyncio.IncompleteReadError(b"", 10), False, "protocol_error"),
        (OSError(errno.EMSGSIZE, "Message too long"), False, "network_error"),
        (ValueError("bug"), False, "internal_error"),
        ("hang", False, "timeout"),
    ],
)
async def test_outcomes_and_errors_become_records(behaviour: Any, success: bool, error_type: str | None) -> None:
    runner, telemetry, seen = _runner(FakeProbe(behaviour))
    result = await runner.run(CFG.checks[0], "h:443")
    assert seen == [result]
    assert (result.success, result.error_type) == (success, error_type)
    assert (result.error_message is None) == success
    assert result.resolved_ip == "192.0.2.7"
    assert result.tcp == TcpResult(port=443)  # partial detail survives a failure
    assert set(result.phases_ms) == {"dns", "connect"}
    assert result.labels == {"team": "net"}
    assert (result.agent_id, result.pop, result.check_name, result.check_type) == ("a1", "fra", "web", "tcp")
    if behaviour == "hang":
        assert 180 <= result.duration_ms < 1000
        assert result.error_message == "no complete answer within timeout_s=0.2"
    spans = {s.name: s for s in telemetry.span_exporter.get_finished_spans()}
    assert set(spans) == {"tcp h:443", "dns", "connect"}
    root = spans["tcp h:443"]
    assert format(root.context.trace_id, "032x") == result.trace_id
    assert format(root.context.span_id, "016x") == result.span_id
    assert spans["connect"].parent is not None and spans["connect"].parent.span_id == root.context.span_id
    assert root.status.is_ok == success
    if not success:
        assert root.attributes is not None and root.attributes["error.type"] == error_type


async def test_cancellation_propagates() -> None:
    runner, telemetry, seen = _runner(FakeProbe("hang"))
    check = parse_config("checks: [{name: web, type: tcp, targets: ['h:1'], timeout_s: 30, interval_s: 60}]").checks[0]
    task = asyncio.create_task(runner.run(check, "h:1"))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == []
    assert [s.name for s in telemetry.span_exporter.get_finished_spans()] == ["dns", "connect", "tcp h:1"]


class StoppedWhileTimingOut(FakeProbe):
    """Hangs; when the deadline cancels it, a stop request (another cancel) arrives too."""

    async def run(self, ctx: ProbeContext) -> Outcome:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            raise
        return Outcome.ok()


async def test_a_cancel_on_top_of_the_timeout_is_not_taken_for_the_timeout() -> None:
    """The deadline takes back only its own cancellation: a stop request arriving while the run times
    out still cancels it."""
    runner, _, seen = _runner(StoppedWhileTimingOut("hang"))
    check = parse_config("checks: [{name: web, type: tcp, targets: ['h:1'], timeout_s: 0.02, interval_s: 1}]")
    with pytest.raises(asyncio.CancelledError):
        await asyncio.create_task(runner.run(check.checks[0], "h:1"))
    assert seen == []


async def test_the_run_after_a_timeout_is_not_cancelled() -> None:
    """A timed-out run leaves its task with no cancellation pending (runs can share a task)."""
    runner, _, _ = _runner(FakeProbe("hang"))
    check = parse_config("checks: [{name: web, type: tcp, targets: ['h:1'], timeout_s: 0.02, interval_s: 1}]")
    first = await runner.run(check.checks[0], "h:1")
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0.01)  # would raise CancelledError if a cancellation were left over
    assert first.error_type == "timeout"


def test_result_ids_are_version_4_uuids_and_unique() -> None:
    import uuid

    ids = [new_result_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    for text in ids[:200]:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 4 and parsed.variant == uuid.RFC_4122


async def test_a_failing_sink_does_not_lose_the_others() -> None:
    got: list[ProbeResult] = []

    def broken(_: ProbeResult) -> None:
        raise RuntimeError("disk full")

    runner = Runner("a", "p", {"tcp": FakeProbe(Outcome.ok())}, sinks=[broken, got.append])
    result = await runner.run(CFG.checks[0], "h:443")
    assert got == [result]
    assert result.trace_id is None  # no tracer, no trace


def test_classify_never_raises_on_odd_exceptions() -> None:
    assert classify_exception(OSError())[0] is ErrorType.NETWORK
    assert classify_exception(TimeoutError())[0] is ErrorType.TIMEOUT
    assert classify_exception(KeyError("x"))[0] is ErrorType.INTERNAL


class MeasuredConnect(FakeProbe):
    """A connect phase that knows better than the time its block took (as the kernel's handshake RTT)."""

    async def run(self, ctx: ProbeContext) -> Outcome:
        connect = ctx.phase("connect")
        with connect:
            await asyncio.sleep(0.05)  # the loop was late, say
            connect.measured_ms = 1.5
        return Outcome.ok()


class OfferedConnect(FakeProbe):
    """A connect phase offered a measure of its own (``_Phase.measured``) after a 20 ms block."""

    def __init__(self, offered_ms: float | None) -> None:
        super().__init__(Outcome.ok())
        self.offered_ms = offered_ms

    async def run(self, ctx: ProbeContext) -> Outcome:
        connect = ctx.phase("connect")
        with connect:
            await asyncio.sleep(0.02)
            connect.measured(self.offered_ms)
        return Outcome.ok()


@pytest.mark.parametrize(("offered_ms", "kept"), [(1.5, True), (None, False), (-0.5, False), (5_000.0, False)])
async def test_a_measure_the_block_contradicts_is_not_taken(offered_ms: float | None, kept: bool) -> None:
    """Kept: within the block's own time. Not kept: none, negative, or longer than the block (a step of the
    wall clock between the kernel's stamp and the agent's): the phase is then the block's own time."""
    runner = Runner("a1", "fra", {"tcp": OfferedConnect(offered_ms)})
    result = await runner.run(CFG.checks[0], "h:443")
    if kept:
        assert result.phases_ms == {"connect": offered_ms}
    else:
        assert 20 <= result.phases_ms["connect"] < 1_000


@pytest.mark.parametrize("light", [True, False])
async def test_a_phase_measured_by_the_probe_lasts_that_long_in_the_record_and_the_span(light: bool) -> None:
    telemetry = Telemetry.in_memory(CFG)
    ended: list[Any] = []
    tracer = LightTracer(ended.append) if light else telemetry.tracer
    runner = Runner("a1", "fra", {"tcp": MeasuredConnect(Outcome.ok())}, tracer=tracer)
    result = await runner.run(CFG.checks[0], "h:443")
    assert result.phases_ms == {"connect": 1.5}
    assert result.duration_ms >= 50
    spans = ended if light else list(telemetry.span_exporter.get_finished_spans())
    connect = next(s for s in spans if s.name == "connect")
    assert connect.end_time - connect.start_time == 1_500_000
