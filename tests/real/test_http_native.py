"""Plain HTTP checks run by the C engine (``netobs._connect`` through ``netobs._native``), against real servers
(nginx and the misbehaving ones of ``httpbed``): the same records and span trees as the Python path run for
run (bodies by length and chunked, a slow first byte, a redirect chain the engine hands back to Python, a
503, failed expectations, HEAD, a body over the cap, garbage, an endless body, a closed port, a server
that never answers, an address that never answers), the traceparent the server receives, untraced runs, and
which checks go to the engine."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from netobs import _native
from netobs.config import HttpCheck, parse_config
from netobs.probes.http import HttpProbe
from netobs.result import ErrorType, ProbeResult
from netobs.runner import Runner
from netobs.scheduler import Scheduler
from tests.real import httpbed
from tests.real.nativebed import Wiring, assert_same, both, by_target, shape, started_agent

pytestmark = pytest.mark.real

# What differs run by run: the body read when the cap was passed (as the bytes happened to arrive), the
# traceparent (fresh ids; checked on its own below). The phases of each redirect hop are measured too:
# compared by name only.
MEASURED = ("body_bytes", "traceparent")


@pytest.fixture(scope="module")
def bed() -> Iterator[httpbed.Bed]:
    with httpbed.running_bed() as running:
        yield running


def _url(bed: httpbed.Bed, server: str, path: str = "/") -> str:
    return f"http://127.0.0.1:{bed.port(server)}{path}"


def _check(targets: list[str], name: str = "web", **fields: Any) -> HttpCheck:
    fields.setdefault("timeout_s", 0.5)
    fields.setdefault("interval_s", 0.6)
    return HttpCheck(name=name, type="http", targets=targets, labels={"team": "web"}, **fields)


def _probes() -> dict[str, Any]:
    return {"http": HttpProbe()}


async def _both(checks: Callable[[], list[HttpCheck]], seconds: float = 0.8) -> tuple[Wiring, Wiring]:
    return await both(checks, seconds, _probes)


def _redirect_phases(result: ProbeResult) -> None:
    """Turn the phases of each redirect hop into their names (their values are measured)."""
    assert result.http is not None
    for hop in result.http.redirects:
        hop.phases_ms = dict.fromkeys(sorted(hop.phases_ms), 0.0)


def _unsized(value: object) -> str:
    """``value`` as text, without the size of a body over the cap (how much had arrived when it was seen)."""
    return re.sub(r"\(read \d+ bytes\)", "(read N bytes)", repr(value))


def _same(python: Wiring, native: Wiring, targets: list[str]) -> dict[str, ProbeResult]:
    for result in (*python.results, *native.results):
        _redirect_phases(result)
    assert_same(python, native, targets, MEASURED)
    return by_target(native.results)


async def test_answers_as_the_python_path(bed: httpbed.Bed) -> None:
    targets = [
        _url(bed, "plain"),
        _url(bed, "plain", "/delay"),  # chunked (the echo module), the first byte 300 ms late
        _url(bed, "plain", "/r1"),  # 302, 301, 307, then 200: the engine's first hop, Python's others
        _url(bed, "plain", "/status/503"),
        _url(bed, "plain", "/big.bin"),
    ]
    python, native = await _both(lambda: [_check(targets, timeout_s=0.9, interval_s=1.0)], 1.2)
    got = _same(python, native, targets)
    home, delayed, redirected, busy, big = (got[t] for t in targets)
    assert home.success and home.http is not None and home.http.status_code == 200 and home.http.body_bytes == 13
    assert delayed.success and delayed.phases_ms["ttfb"] >= httpbed.DELAY_S * 1000
    assert redirected.success and redirected.http is not None
    assert [h.status_code for h in redirected.http.redirects] == [302, 301, 307]
    assert redirected.http.final_url == _url(bed, "plain")
    assert busy.error_type == str(ErrorType.HTTP_STATUS) and busy.error_message == "status 503 is not 2xx"
    assert big.success and big.http is not None and big.http.body_bytes == httpbed.BIG_BYTES
    assert native.native is not None and native.native.jobs == 0  # all released after stop


async def test_checks_and_failures_as_the_python_path(bed: httpbed.Bed) -> None:
    home, closed = _url(bed, "plain"), f"http://127.0.0.1:{httpbed.free_port()}/"
    checks = lambda: [  # noqa: E731
        _check([home], name="expect", expect={"headers_match": {"x-netobs": "^no$"}}),
        _check([home], name="body", expect={"body_match": ["goodbye"]}),
        _check([home], name="head", method="HEAD"),
        _check([home], name="post", method="POST", body="ping", headers={"X-Probe": "1"}),
        _check([_url(bed, "plain", "/big.bin")], name="capped", max_body_bytes=1000),
        _check([_url(bed, "garbage")], name="garbage"),
        _check([_url(bed, "endless")], name="endless", max_body_bytes=200_000),
        _check([_url(bed, "stall")], name="stall", timeout_s=0.3),
        _check([closed], name="closed"),
    ]
    python, native = await _both(checks)
    by_check = {r.check_name: r for r in native.results}
    py_by_check = {r.check_name: r for r in python.results}
    assert set(by_check) == set(py_by_check) == {c.name for c in checks()}
    for name, result in by_check.items():
        py_result = py_by_check[name]
        _redirect_phases(result)
        _redirect_phases(py_result)
        got, want = shape(result, MEASURED), shape(py_result, MEASURED)
        assert _unsized(got) == _unsized(want), (name, got, want)
        got_spans, want_spans = native.spans_of(result), python.spans_of(py_result)
        assert _unsized(got_spans) == _unsized(want_spans), (name, got_spans, want_spans)
    expected = {
        "expect": ErrorType.ASSERTION,
        "body": ErrorType.ASSERTION,
        "head": None,
        "post": None,
        "capped": ErrorType.BODY_TOO_LARGE,
        "garbage": ErrorType.PROTOCOL,
        "endless": ErrorType.BODY_TOO_LARGE,
        "stall": ErrorType.TIMEOUT,
        "closed": ErrorType.REFUSED,
    }
    assert {n: r.error_type for n, r in by_check.items()} == {
        n: None if e is None else str(e) for n, e in expected.items()
    }
    stalled = by_check["stall"]
    assert stalled.error_message == "no complete answer within timeout_s=0.3"
    assert 290 <= stalled.phases_ms["ttfb"] < 400  # it waited for the first byte until the deadline
    capped = by_check["capped"].http
    assert capped is not None and capped.body_bytes is not None and capped.body_bytes > 1000


async def test_a_server_that_never_answers_times_out_as_the_python_path() -> None:
    with httpbed.Blackhole() as hole:
        targets = [f"http://{hole.address}/"]
        python, native = await asyncio.to_thread(
            hole.run, lambda: _both(lambda: [_check(targets, timeout_s=0.3, interval_s=0.4)], 0.5)
        )
    got = _same(python, native, targets)
    timed_out = got[targets[0]]
    assert timed_out.error_type == str(ErrorType.TIMEOUT)
    assert 300 <= timed_out.phases_ms["connect"] < 400
    assert set(timed_out.phases_ms) == {"connect"}


async def test_the_server_sees_the_runs_own_traceparent(bed: httpbed.Bed) -> None:
    """The engine draws the ids and writes them into the request; the server's echo of the header, the
    record and the spans agree: the trace is the run's, the parent is its ttfb span."""
    url = _url(bed, "plain", "/traceparent")
    wiring = Wiring(True, _probes())
    echo = "^00-[0-9a-f]{32}-[0-9a-f]{16}-01$"
    results = await wiring.run_for(
        [_check([url], interval_s=0.1, timeout_s=0.08, expect={"headers_match": {"x-seen-traceparent": echo}})], 0.45
    )
    assert len(results) >= 3 and all(r.success for r in results)
    spans = wiring.tel.span_exporter.get_finished_spans()
    seen = set()
    for result in results:
        assert result.http is not None and result.http.traceparent is not None
        _, trace_id, parent_id, flags = result.http.traceparent.split("-")
        assert trace_id == result.trace_id and flags == "01"
        (ttfb,) = [s for s in spans if s.name == "ttfb" and f"{s.context.trace_id:032x}" == trace_id]
        assert f"{ttfb.context.span_id:016x}" == parent_id
        seen.add(result.http.traceparent)
    assert len(seen) == len(results)  # fresh ids every run


async def test_every_run_is_a_trace_of_its_own_however_it_ends() -> None:
    """Runs that never sent a request (refused) still get fresh trace ids from the engine."""
    wiring = Wiring(True, _probes())
    closed = f"http://127.0.0.1:{httpbed.free_port()}/"
    results = await wiring.run_for([_check([closed], interval_s=0.1, timeout_s=0.08)], 0.65)
    assert len(results) >= 5 and all(r.error_type == str(ErrorType.REFUSED) for r in results)
    assert len({r.trace_id for r in results}) == len(results)
    assert all(r.http is not None and r.http.traceparent is None for r in results)


async def test_untraced_runs_send_an_unsampled_traceparent(bed: httpbed.Bed) -> None:
    results: list[ProbeResult] = []
    runner = Runner("a1", "test", _probes(), sinks=[results.append], tracer=None)
    engine = _native.load()
    assert engine is not None
    native = _native.NativeRuns(runner, engine)
    scheduler = Scheduler(runner.run, native=native)
    url = _url(bed, "plain", "/traceparent")
    scheduler.apply([_check([url], interval_s=0.1, timeout_s=0.08)])
    await asyncio.sleep(0.35)
    assert native.count("http") == 1
    await scheduler.stop()
    assert results and all(r.success and r.trace_id is None for r in results)
    for result in results:
        assert result.http is not None and result.http.traceparent is not None
        assert re.fullmatch("00-[0-9a-f]{32}-[0-9a-f]{16}-00", result.http.traceparent)


def test_only_plain_http_to_addresses_goes_to_the_engine() -> None:
    cfg = parse_config(
        """
checks:
  - {name: plain, type: http, targets: ["http://127.0.0.1:8080/x?y=1", "http://[::1]/", "http://localhost/"]}
  - {name: tls, type: http, targets: ["https://127.0.0.1/"]}
  - {name: h2, type: http, targets: ["http://127.0.0.1/"], http_version: "2"}
  - {name: h1, type: http, targets: ["http://127.0.0.1/"], http_version: "1.1", inject_traceparent: false}
  - {name: path, type: http, targets: ["http://127.0.0.1/"], trace_path: true}
  - {name: v6only, type: http, targets: ["http://127.0.0.1/", "http://[::1]:81/"], ip_version: "6"}
  - {name: badheader, type: http, targets: ["http://127.0.0.1/"], headers: {"X-Bad": "café"}}
"""
    )
    plain = {(c.name, t): _native.plain_http(c, t, traced=True) for c in cfg.checks for t in c.targets}
    goes = {key: (p.ip, p.port) for key, p in plain.items() if p is not None}
    assert goes == {
        ("plain", "http://127.0.0.1:8080/x?y=1"): ("127.0.0.1", 8080),
        ("plain", "http://[::1]/"): ("::1", 80),
        ("h1", "http://127.0.0.1/"): ("127.0.0.1", 80),
        ("v6only", "http://[::1]:81/"): ("::1", 81),
    }
    first = plain[("plain", "http://127.0.0.1:8080/x?y=1")]
    assert first is not None
    head = first.request.decode()
    assert head.startswith("GET /x?y=1 HTTP/1.1\r\nhost: 127.0.0.1:8080\r\nuser-agent: netobs-agent/0.1\r\n")
    assert head[first.traceparent_at :].startswith("00-") and head.endswith("connection: close\r\n\r\n")
    untraced = plain[("h1", "http://127.0.0.1/")]
    assert untraced is not None and untraced.traceparent_at == -1 and b"traceparent" not in untraced.request


async def test_the_agent_runs_plain_http_in_the_engine(bed: httpbed.Bed, caplog: pytest.LogCaptureFixture) -> None:
    home = _url(bed, "plain")
    named = home.replace("127.0.0.1", "localhost")
    caplog.set_level("INFO", logger="netobs.agent")
    agent = await started_agent(
        f"""  - {{name: web, type: http, targets: ["{home}", "{named}"], interval_s: 0.2, timeout_s: 0.15}}\n"""
    )
    assert agent.native is not None and agent.native.count("http") == 1
    assert (
        "2 (check, target) jobs scheduled; run by the native engine: 0 plain TCP connects and 1 plain HTTP/1.1"
        in caplog.text
    )
    await agent.scheduler.stop()
    assert agent.scheduler.runs_started >= 4
