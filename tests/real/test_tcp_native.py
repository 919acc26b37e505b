"""Plain TCP checks run by the C engine (``netobs._connect`` through ``netobs._native``), against real
sockets: the same records and spans as the Python path run for run (an open port over IPv4 and IPv6, a
closed port, an address that never answers, a network without a route), the kernel's handshake time,
reloads that keep, change and remove jobs, stopping, shedding and missed slots."""

from __future__ import annotations

import asyncio
import itertools
import socket
import statistics
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from netobs import _connect, _native
from netobs.config import TcpCheck, parse_config
from netobs.probes.tcp import TcpProbe
from netobs.result import ErrorType
from tests.real import httpbed
from tests.real.nativebed import Wiring, assert_same, both, by_target, started_agent

pytestmark = pytest.mark.real


@pytest.fixture
def listener() -> Iterator[int]:
    """A port on 127.0.0.1 and ::1 that accepts connections (the kernel completes the handshakes)."""
    port = httpbed.free_port()
    socks = []
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((host, port))
        s.listen(512)
        socks.append(s)
    yield port
    for s in socks:
        s.close()


def _check(targets: list[str], name: str = "tcp", **fields: Any) -> TcpCheck:
    fields.setdefault("timeout_s", 0.3)
    fields.setdefault("interval_s", 0.4)
    return TcpCheck(name=name, type="tcp", targets=targets, labels={"team": "net"}, **fields)


def _wiring(native: bool) -> Wiring:
    return Wiring(native, {"tcp": TcpProbe()})


async def _both(checks: Callable[[], list[TcpCheck]], seconds: float) -> tuple[Wiring, Wiring]:
    return await both(checks, seconds, lambda: {"tcp": TcpProbe()})


async def test_the_same_records_and_spans_as_the_python_path(listener: int) -> None:
    closed = httpbed.free_port()
    targets = [f"127.0.0.1:{listener}", f"[::1]:{listener}", f"127.0.0.1:{closed}"]
    python, native = await _both(lambda: [_check(targets)], 0.5)
    assert_same(python, native, targets)
    assert native.native is not None and native.native.jobs == 0  # all released after stop
    ok = by_target(native.results)
    assert ok[targets[0]].success and ok[targets[1]].success
    assert ok[targets[2]].error_type == str(ErrorType.REFUSED)
    assert len(native.lateness) == len(native.results)


async def test_timeouts_and_unreachable_networks_as_the_python_path() -> None:
    with httpbed.Blackhole() as hole:
        targets = [f"{hole.address}:443", "192.0.2.1:443"]  # no answer; no route in the namespace
        python, native = await asyncio.to_thread(hole.run, lambda: _both(lambda: [_check(targets)], 0.5))
    assert_same(python, native, targets)
    by = by_target(native.results)
    timed_out, unreachable = by[targets[0]], by[targets[1]]
    assert timed_out.error_type == str(ErrorType.TIMEOUT)
    assert timed_out.error_message == "no complete answer within timeout_s=0.3"
    assert 300 <= timed_out.duration_ms < 400
    assert 300 <= timed_out.phases_ms["connect"] < 400
    assert unreachable.error_type == str(ErrorType.UNREACHABLE)
    assert unreachable.duration_ms < 100


async def test_connect_is_the_kernels_handshake_time(listener: int) -> None:
    """Loopback handshakes take microseconds: the engine's connect phases say so (the kernel's tcpi_rtt),
    close to what the Python path measures the same way, and each connect span lasts as long."""
    targets = [f"127.0.0.1:{listener}", f"[::1]:{listener}"]
    python, native = await _both(lambda: [_check(targets, interval_s=0.1, timeout_s=0.05)], 1.0)
    py = [r.phases_ms["connect"] for r in python.results]
    nat = [r.phases_ms["connect"] for r in native.results]
    assert len(nat) >= 15 and len(py) >= 15
    assert all(r.success for r in native.results)
    assert 0 < statistics.median(nat) < 1.0  # ms
    assert abs(statistics.median(nat) - statistics.median(py)) < 0.5
    spans = native.tel.span_exporter.get_finished_spans()
    by_id = {s.context.span_id: s for s in spans}
    for result in native.results:
        (connect,) = [s for s in spans if s.name == "connect" and f"{s.context.trace_id:032x}" == result.trace_id]
        assert connect.parent is not None
        root = by_id[connect.parent.span_id]
        assert root.start_time == connect.start_time
        assert root.start_time // 1_000_000 == result.started_at_ms
        assert connect.end_time - connect.start_time == round(result.phases_ms["connect"] * 1e6)
        assert root.end_time - root.start_time == pytest.approx(result.duration_ms * 1e6, abs=1e3)


async def test_runs_keep_the_cadence_and_start_on_time(listener: int) -> None:
    wiring = _wiring(native=True)
    targets = [f"127.0.0.1:{listener}", f"[::1]:{listener}"]
    results = await wiring.run_for([_check(targets, interval_s=0.1, timeout_s=0.05)], 1.05)
    for target in targets:
        starts = sorted(r.started_at_ms for r in results if r.target == target)
        assert 9 <= len(starts) <= 11, (target, starts)
        gaps = [b - a for a, b in itertools.pairwise(starts)]
        assert all(90 <= g <= 110 for g in gaps), gaps
    assert max(wiring.lateness) < 0.02  # the engine's own timer, not the event loop


async def test_a_reload_keeps_unchanged_jobs_and_stops_removed_ones(listener: int) -> None:
    wiring = _wiring(native=True)
    assert wiring.native is not None
    keep, drop = f"127.0.0.1:{listener}", f"[::1]:{listener}"
    wiring.scheduler.apply([_check([keep, drop], interval_s=0.1, timeout_s=0.05)])
    await asyncio.sleep(0.35)
    first_keep = sorted(r.started_at_ms for r in wiring.results if r.target == keep)
    kept, added, removed = wiring.scheduler.apply(
        [_check([keep], interval_s=0.1, timeout_s=0.05), _check([keep], name="other", interval_s=0.1, timeout_s=0.05)]
    )
    assert (kept, added, removed) == (1, 1, 1)
    reloaded = len([r for r in wiring.results if r.target == drop])
    await asyncio.sleep(0.35)
    assert len([r for r in wiring.results if r.target == drop]) <= reloaded + 1  # at most the run in flight
    keep_starts = sorted(r.started_at_ms for r in wiring.results if r.target == keep and r.check_name == "tcp")
    phase = first_keep[0] % 100
    assert all(abs((s - phase) % 100) <= 10 or abs((s - phase) % 100) >= 90 for s in keep_starts), keep_starts
    assert any(r.check_name == "other" for r in wiring.results)
    await wiring.scheduler.stop()
    assert wiring.native.jobs == 0


async def test_stop_cancelling_abandons_runs_in_flight() -> None:
    with httpbed.Blackhole() as hole:

        async def scenario() -> tuple[int, int]:
            wiring = _wiring(native=True)
            assert wiring.native is not None
            wiring.scheduler.apply([_check([f"{hole.address}:443"], interval_s=2.0, timeout_s=1.5)])
            await asyncio.sleep(2.1)  # the first run started and waits for its deadline
            started = time.monotonic()
            await wiring.scheduler.stop(cancel_running=True)
            return wiring.native.jobs, round((time.monotonic() - started) * 1000)

        jobs, stop_ms = await asyncio.to_thread(hole.run, scenario)
    assert jobs == 0
    assert stop_ms < 200


def test_only_plain_connects_to_addresses_go_to_the_engine() -> None:
    cfg = parse_config(
        """
checks:
  - {name: plain, type: tcp, targets: ["127.0.0.1:80", "[::1]:80", "10.0.0.1"], port: 443}
  - {name: named, type: tcp, targets: ["localhost:80"]}
  - {name: tls, type: tcp, targets: ["127.0.0.1:443"], tls: true}
  - {name: path, type: tcp, targets: ["127.0.0.1:443"], trace_path: true}
  - {name: v6only, type: tcp, targets: ["127.0.0.1:80", "[::1]:80"], ip_version: "6"}
  - {name: ping, type: icmp, targets: ["127.0.0.1"]}
"""
    )
    plain = {(c.name, t): _native.plain_address(c, t) for c in cfg.checks for t in c.targets}
    assert plain == {
        ("plain", "127.0.0.1:80"): ("127.0.0.1", 80),
        ("plain", "[::1]:80"): ("::1", 80),
        ("plain", "10.0.0.1"): ("10.0.0.1", 443),
        ("named", "localhost:80"): None,
        ("tls", "127.0.0.1:443"): None,
        ("path", "127.0.0.1:443"): None,
        ("v6only", "127.0.0.1:80"): None,
        ("v6only", "[::1]:80"): ("::1", 80),
        ("ping", "127.0.0.1"): None,
    }


async def test_the_agent_runs_plain_connects_in_the_engine(listener: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="netobs.agent")
    agent = await started_agent(
        f"""
  - {{name: plain, type: tcp, targets: ["127.0.0.1:{listener}", "[::1]:{listener}"], interval_s: 0.2, timeout_s: 0.1}}
  - {{name: named, type: tcp, targets: ["localhost:{listener}"], interval_s: 0.2, timeout_s: 0.1}}
"""
    )
    assert agent.native is not None and agent.native.jobs == 2
    assert "3 (check, target) jobs scheduled; run by the native engine: 2 plain TCP connects and 0 plain" in caplog.text
    await agent.scheduler.stop()
    assert agent.scheduler.runs_started >= 6  # both kinds ran: two per job at least


# -- the engine itself ----------------------------------------------------------------------------------


def _loopback(port: int) -> tuple[int, bytes, int]:
    return socket.AF_INET, socket.inet_pton(socket.AF_INET, "127.0.0.1"), port


def _drain_until(engine: Any, done: Callable[[list[tuple[int, ...]]], bool], timeout_s: float = 2.0) -> list[Any]:
    got: list[tuple[int, ...]] = []
    deadline = time.monotonic() + timeout_s
    while not done(got) and time.monotonic() < deadline:
        time.sleep(0.01)
        got += engine.drain()
    return got


def test_engine_reports_missed_slots_and_runs_late_once(listener: int) -> None:
    engine = _connect.ConnectEngine()
    try:
        now = time.monotonic()
        engine.add(1, *_loopback(listener), now - 1.05, 0.1, 0.05, 5.0)  # ten slots ago and a half
        got = _drain_until(engine, lambda g: any(c[1] == _connect.DONE for c in g))
    finally:
        engine.close()
    missed = [c for c in got if c[1] == _connect.MISSED]
    done = [c for c in got if c[1] == _connect.DONE]
    assert [c[2] for c in missed] == [10]
    assert done and done[0][2] == 0
    lateness_s = (done[0][4] - done[0][3]) / 1e9
    assert 1.0 <= lateness_s < 1.2  # the one late run, at once


def test_engine_sheds_runs_when_it_falls_behind(listener: int) -> None:
    engine = _connect.ConnectEngine()
    try:
        engine.add(1, *_loopback(listener), time.monotonic(), 0.02, 0.01, 0.0)  # any lateness sheds
        got = _drain_until(engine, lambda g: len(g) >= 5)
    finally:
        engine.close()
    assert len(got) >= 5
    assert {c[1] for c in got} == {_connect.SKIPPED}


def test_engine_refuses_bad_arguments_clearly(listener: int) -> None:
    engine = _connect.ConnectEngine()
    with pytest.raises(ValueError, match="4 bytes for AF_INET or 16 for AF_INET6"):
        engine.add(1, socket.AF_INET, b"\x7f\x00\x00", listener, 0.0, 1.0, 0.5, 0.05)
    with pytest.raises(ValueError, match="port 1-65535"):
        engine.add(1, *_loopback(70000), 0.0, 1.0, 0.5, 0.05)
    with pytest.raises(KeyError, match="no scheduled job 5"):
        engine.remove(5)
    engine.close()
    with pytest.raises(RuntimeError, match="closed"):
        engine.add(1, *_loopback(listener), 0.0, 1.0, 0.5, 0.05)
