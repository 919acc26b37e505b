"""The traceroute probe with fake flows (no network): where traces end, the record, spans and metrics."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import netobs.probes.traceroute as tr_module
from netobs.config import parse_config
from netobs.probes._traceroute_core import ProbeReply
from netobs.probes.base import ProbeContext
from netobs.probes.tcp import TcpProbe
from netobs.probes.traceroute import TraceParams, TracerouteProbe, trace_flow
from netobs.result import ProbeResult
from netobs.runner import Runner
from netobs.telemetry import InMemoryTelemetry, Telemetry

DST = "192.0.2.9"


class FakeFlow:
    """A path given as a list of responders per TTL (None: silent); the destination answers beyond it."""

    socket_kind = "dgram"

    def __init__(self, method: str, path: list[str | None], destination: str | None = DST) -> None:
        self.method = method
        self.path = path
        self.destination = destination
        self.description = f"{method} fake"
        self.sent: list[int] = []
        self.closed = False

    async def probe(self, ttl: int, index: int, timeout_s: float) -> ProbeReply:
        self.sent.append(ttl)
        await asyncio.sleep(0)
        if ttl <= len(self.path):
            address = self.path[ttl - 1]
            if address is None:
                return ProbeReply(ttl, index, None, sent_at_ns=1_000 * ttl)
            return ProbeReply(ttl, index, address, 1.0 * ttl + index, 11, 0, sent_at_ns=1_000 * ttl)
        if self.destination is None:
            return ProbeReply(ttl, index, None, sent_at_ns=1_000 * ttl)
        return ProbeReply(ttl, index, self.destination, 10.0, 3, 3, final=True, sent_at_ns=1_000 * ttl)

    def close(self) -> None:
        self.closed = True


class FakeFlows:
    def __init__(self, paths: list[list[str | None]], destination: str | None = DST) -> None:
        self.paths = paths
        self.destination = destination
        self.made: list[FakeFlow] = []

    def __call__(self, method: str, ip: str, port: int | None, index: int) -> FakeFlow:
        flow = FakeFlow(method, self.paths[index % len(self.paths)], self.destination)
        self.made.append(flow)
        return flow


async def _no_rdns(address: str) -> str | None:
    return f"r-{address.replace('.', '-')}.example"


def _run(
    paths: list[list[str | None]], extra: str = "", destination: str | None = DST
) -> tuple[ProbeResult, InMemoryTelemetry, FakeFlows]:
    cfg = parse_config(
        "checks: [{name: tr, type: traceroute, targets: ['192.0.2.9'], timeout_s: 5, interval_s: 10" + extra + "}]"
    )
    flows = FakeFlows(paths, destination)
    telemetry = Telemetry.in_memory(cfg)
    probe = TracerouteProbe(flows=flows, reverse_dns=_no_rdns, window_hops=4)
    runner = Runner("a", "p", {"traceroute": probe}, sinks=[telemetry.record], tracer=telemetry.tracer)
    result = asyncio.run(runner.run(cfg.checks[0], "192.0.2.9"))
    return result, telemetry, flows


@pytest.mark.parametrize(
    ("path", "extra", "reached", "hops", "sent_ttls_max"),
    [
        pytest.param(["10.0.0.1", "10.0.0.2"], "", True, ["10.0.0.1", "10.0.0.2", DST], 4, id="reached-in-window"),
        pytest.param(["10.0.0.1", None, "10.0.0.3"], "", True, ["10.0.0.1", None, "10.0.0.3", DST], 4, id="silent"),
        pytest.param(
            ["10.0.0.1"] * 5, "", True, ["10.0.0.1"] * 5 + [DST], 8, id="second-window"
        ),
        pytest.param(
            ["10.0.0.1", None, None, None, None, None],
            ", stop_after_silent_hops: 2",
            False,
            ["10.0.0.1", None, None],
            4,
            id="stops-after-two-silent",
        ),
        pytest.param(
            ["10.0.0.1", "10.0.0.2", "10.0.0.3"], ", first_hop: 2, max_hops: 3", False,
            ["10.0.0.2", "10.0.0.3"], 3, id="first-hop-and-max-hops",
        ),
    ],
)  # fmt: skip
def test_where_a_trace_ends(
    path: list[str | None], extra: str, reached: bool, hops: list[str | None], sent_ttls_max: int
) -> None:
    result, _, flows = _run([path], extra)
    assert result.traceroute is not None
    assert result.traceroute.reached is reached
    assert [h.address for h in result.traceroute.hops] == hops
    assert max(flows.made[0].sent) == sent_ttls_max
    assert flows.made[0].closed
    assert result.success is reached
    if not reached:
        assert result.error_type == "unreachable"


def test_record_spans_and_metrics_of_one_flow() -> None:
    result, telemetry, _ = _run([["10.0.0.1", None, "10.0.0.3"]], ", probes_per_hop: 2, reverse_dns: true")
    tr = result.traceroute
    assert tr is not None
    assert (tr.reached, tr.hop_count, tr.distinct_paths, tr.paths) == (True, 4, 1, [])
    assert tr.hops[0].rtts_ms == [1.0, 2.0]
    assert tr.hops[0].rtt_ms == 1.5
    assert tr.hops[0].hostname == "r-10-0-0-1.example"
    assert tr.hops[1].hostname is None
    spans = {s.name: s for s in telemetry.span_exporter.get_finished_spans()}
    root = spans["traceroute 192.0.2.9"]
    hop_spans = [spans[f"hop {t}"] for t in (1, 2, 3, 4)]
    assert all(s.parent is not None and s.parent.span_id == root.context.span_id for s in hop_spans)
    assert hop_spans[0].attributes is not None
    assert hop_spans[0].attributes["network.peer.address"] == "10.0.0.1"
    assert hop_spans[0].attributes["netobs.traceroute.hop.rtt_max_ms"] == 2.0
    assert hop_spans[1].status.status_code.name == "ERROR"
    assert root.attributes is not None
    assert root.attributes["netobs.traceroute.path.hash"] == tr.path_hash
    points = telemetry.metric_points()
    assert points["netobs.traceroute.hops"][0][1].value == 4
    assert points["netobs.traceroute.reached"][0][1].value == 1
    assert points["netobs.traceroute.path.id"][0][1].value == int(tr.path_hash[:8], 16)


def test_several_flows_make_one_span_per_flow_and_count_distinct_paths() -> None:
    paths: list[list[str | None]] = [["10.0.0.1", "10.0.1.1"], ["10.0.0.1", "10.0.2.1"], ["10.0.0.1", "10.0.1.1"]]
    result, telemetry, _ = _run(paths, ", flows: 3")
    tr = result.traceroute
    assert tr is not None
    assert tr.distinct_paths == 2
    assert [p.flow_id for p in tr.paths] == [0, 1, 2]
    assert tr.paths[0].path_hash == tr.paths[2].path_hash != tr.paths[1].path_hash
    spans = telemetry.span_exporter.get_finished_spans()
    flows = {s.name: s for s in spans if s.name.startswith("flow ")}
    assert sorted(flows) == ["flow 0", "flow 1", "flow 2"]
    hop2 = [s for s in spans if s.name == "hop 2"]
    assert len(hop2) == 3
    assert {s.parent.span_id for s in hop2 if s.parent} == {f.context.span_id for f in flows.values()}
    addresses = {s.attributes["network.peer.address"] for s in hop2 if s.attributes}
    assert addresses == {"10.0.1.1", "10.0.2.1"}


def test_path_changes_counted_between_runs() -> None:
    cfg = parse_config("checks: [{name: tr, type: traceroute, targets: ['192.0.2.9'], timeout_s: 5, interval_s: 10}]")
    telemetry = Telemetry.in_memory(cfg)
    flows = FakeFlows([["10.0.0.1"]])
    probe = TracerouteProbe(flows=flows)
    runner = Runner("a", "p", {"traceroute": probe}, sinks=[telemetry.record], tracer=telemetry.tracer)
    hashes = []
    for path in (["10.0.0.1"], ["10.0.0.2"], ["10.0.0.1"], ["10.0.0.1"]):
        flows.paths = [path]  # type: ignore[list-item]
        hashes.append(asyncio.run(runner.run(cfg.checks[0], "192.0.2.9")).traceroute.path_hash)  # type: ignore[union-attr]
    assert hashes[0] == hashes[2] == hashes[3] != hashes[1]
    assert telemetry.metric_points()["netobs.traceroute.path.changes"][0][1].value == 2


def test_asn_table_fills_hops(tmp_path: Any) -> None:
    table = tmp_path / "asn.csv"
    table.write_text("10.0.0.0/24,64500\n10.0.0.2/32,64501\n")
    result, _, _ = _run([["10.0.0.1", "10.0.0.2"]], f", asn_table: '{table}'")
    hops = result.traceroute.hops  # type: ignore[union-attr]
    assert [(h.asn, h.prefix) for h in hops] == [(64500, "10.0.0.0/24"), (64501, "10.0.0.2/32"), (None, None)]


def test_partial_record_survives_the_deadline() -> None:
    class SlowFlow(FakeFlow):
        async def probe(self, ttl: int, index: int, timeout_s: float) -> ProbeReply:
            if ttl > 2:
                await asyncio.sleep(3600)
            return await super().probe(ttl, index, timeout_s)

    cfg = parse_config(
        "checks: [{name: tr, type: traceroute, targets: ['192.0.2.9'],"
        " timeout_s: 0.3, interval_s: 10, hop_timeout_s: 0.1}]"
    )
    flow = SlowFlow("udp", ["10.0.0.1", "10.0.0.2", "10.0.0.3"])
    probe = TracerouteProbe(flows=lambda *a: flow, window_hops=2)
    telemetry = Telemetry.in_memory(cfg)
    runner = Runner("a", "p", {"traceroute": probe}, sinks=[telemetry.record], tracer=telemetry.tracer)
    result = asyncio.run(runner.run(cfg.checks[0], "192.0.2.9"))
    assert result.error_type == "timeout"
    assert [h.address for h in result.traceroute.hops] == ["10.0.0.1", "10.0.0.2"]  # type: ignore[union-attr]
    assert flow.closed
    assert {"hop 1", "hop 2"} <= {s.name for s in telemetry.span_exporter.get_finished_spans()}


async def test_trace_flow_sends_windows_in_ttl_order() -> None:
    flow = FakeFlow("udp", ["a", "b", "c", "d", "e"])
    replies, reached = await trace_flow(flow, TraceParams(probes_per_hop=1), window_hops=3)
    assert reached
    assert flow.sent == [1, 2, 3, 4, 5, 6]
    assert [r.ttl for r in replies] == [1, 2, 3, 4, 5, 6]


def test_tcp_check_traces_its_path_in_the_same_trace(monkeypatch: pytest.MonkeyPatch) -> None:
    async def refused(ip: str, port: int) -> Any:
        raise ConnectionRefusedError(111, "refused")

    flows = FakeFlows([["10.0.0.1", "10.0.0.2"]], destination="192.0.2.9")
    monkeypatch.setattr(tr_module, "_PATH_PROBE", TracerouteProbe(flows=flows))
    monkeypatch.setattr("netobs.probes.tcp.connect_socket", refused)
    cfg = parse_config(
        "checks: [{name: t, type: tcp, targets: ['192.0.2.9:8443'], timeout_s: 2, interval_s: 10, trace_path: true}]"
    )
    telemetry = Telemetry.in_memory(cfg)
    runner = Runner("a", "p", {"tcp": TcpProbe()}, sinks=[telemetry.record], tracer=telemetry.tracer)
    result = asyncio.run(runner.run(cfg.checks[0], "192.0.2.9:8443"))
    assert result.error_type == "connection_refused"  # the path trace does not change the outcome
    spans = {s.name: s for s in telemetry.span_exporter.get_finished_spans()}
    root, path = spans["tcp 192.0.2.9:8443"], spans["traceroute 192.0.2.9:8443"]
    assert path.parent is not None and path.parent.span_id == root.context.span_id
    assert spans["connect"].context.trace_id == spans["hop 3"].context.trace_id == root.context.trace_id
    assert spans["hop 3"].parent is not None and spans["hop 3"].parent.span_id == path.context.span_id
    assert flows.made[0].method == "tcp"
    assert result.traceroute is None and result.tcp is not None


def test_path_trace_without_permission_marks_its_span_only(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_raw(*args: Any) -> Any:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(tr_module, "_PATH_PROBE", TracerouteProbe(flows=no_raw))
    ctx = ProbeContext(check=None, target="x", deadline=1e18)
    telemetry = Telemetry.in_memory()
    ctx.tracer = telemetry.tracer
    ctx.span = telemetry.tracer.start_span("tcp x")
    assert asyncio.run(tr_module.trace_path(ctx, "192.0.2.9", 443)) is None
    ctx.span.end()
    spans = {s.name: s for s in telemetry.span_exporter.get_finished_spans()}
    assert spans["traceroute 192.0.2.9:443"].status.status_code.name == "ERROR"


def test_http_check_traces_its_path_in_the_same_trace(monkeypatch: pytest.MonkeyPatch) -> None:
    from netobs.probes.http import HttpProbe

    async def refused(ip: str, port: int) -> Any:
        raise ConnectionRefusedError(111, "refused")

    flows = FakeFlows([["10.0.0.1"]], destination="192.0.2.9")
    monkeypatch.setattr(tr_module, "_PATH_PROBE", TracerouteProbe(flows=flows))
    cfg = parse_config(
        "checks: [{name: w, type: http, targets: ['http://192.0.2.9:8080/'], timeout_s: 2, interval_s: 10,"
        " trace_path: true}]"
    )
    telemetry = Telemetry.in_memory(cfg)
    runner = Runner("a", "p", {"http": HttpProbe(connector=refused)}, sinks=[telemetry.record], tracer=telemetry.tracer)
    result = asyncio.run(runner.run(cfg.checks[0], "http://192.0.2.9:8080/"))
    assert result.error_type == "connection_refused"
    spans = {s.name: s for s in telemetry.span_exporter.get_finished_spans()}
    path = spans["traceroute 192.0.2.9:8080"]
    assert path.parent is not None and path.parent.span_id == spans["http http://192.0.2.9:8080/"].context.span_id
    assert spans["hop 2"].attributes is not None
    assert spans["hop 2"].attributes["network.peer.address"] == "192.0.2.9"
    assert (flows.made[0].method, len(flows.made)) == ("tcp", 1)
