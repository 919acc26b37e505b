"""The traceroute probe against real kernels: network namespaces built by ``tests.netns``.

The agent runs inside the source namespace (``ip netns exec``) and its hops are compared with Debian's
``traceroute -n`` and, per flow (same 5-tuple), with ``scamper``'s Paris traceroute. All traffic stays
inside the namespaces these tests create.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.netns import Node, Topology

pytestmark = pytest.mark.real

AGENT = r"""
import asyncio, json, logging, sys
from netobs.config import parse_config
from netobs.runner import Runner
from netobs.probes import default_probes
from netobs.telemetry import Telemetry

logging.basicConfig(level=logging.INFO, stream=sys.stderr)
cfg = parse_config(json.dumps({"checks": [json.loads(sys.argv[1])]}))
check = cfg.checks[0]
telemetry = Telemetry.in_memory(cfg)
runner = Runner("a", "p", default_probes(), sinks=[telemetry.record], tracer=telemetry.tracer)
result = asyncio.run(runner.run(check, check.targets[0]))
spans = [
    {"name": s.name, "id": s.context.span_id, "trace": s.context.trace_id,
     "parent": s.parent.span_id if s.parent else None, "attributes": dict(s.attributes or {}),
     "error": s.status.status_code.name == "ERROR"}
    for s in telemetry.span_exporter.get_finished_spans()
]
print(json.dumps({"result": result.to_dict(), "spans": spans}, default=list))
"""


def run_agent(topo: Topology, node: Node, check: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run one check with the real agent code inside ``node``'s namespace; (record, spans)."""
    base = {"name": "tr", "interval_s": 120, "timeout_s": 60}
    out = topo.run(node, sys.executable, "-c", AGENT, json.dumps(base | check), timeout_s=90)
    data = json.loads(out)
    return data["result"], data["spans"]


def traceroute_n(topo: Topology, node: Node, target: str, *args: str) -> list[str | None]:
    """Hop addresses found by Debian's ``traceroute -n`` (None for a silent hop)."""
    out = topo.run(node, "traceroute", "-n", "-w", "1", "-q", "3", "-m", "10", *args, target)
    hops: list[str | None] = []
    for line in out.splitlines()[1:]:
        found = re.findall(r"\d+\.\d+\.\d+\.\d+", line)
        hops.append(found[0] if found else None)
    return hops


def scamper_paris(topo: Topology, node: Node, target: str, sport: int, dport: int) -> list[str | None]:
    """Hop addresses found by scamper's UDP Paris traceroute for one 5-tuple."""
    cmd = f"trace -P udp-paris -s {sport} -d {dport} -q 2 -w 1 -m 10"
    out = topo.run(node, "scamper", "-c", cmd, "-i", target)
    hops: list[str | None] = []
    for line in out.splitlines()[1:]:
        found = re.findall(r"\d+\.\d+\.\d+\.\d+", line)
        hops.append(found[0] if found else None)
    return hops


def hop_addresses(hops: list[dict[str, Any]]) -> list[str | None]:
    return [h["address"] for h in hops]


@pytest.fixture
def chain() -> Iterator[tuple[Topology, list[Node]]]:
    """src - r1 - r2 - r3 - r4 - dst: four routers, the destination five hops away."""
    with Topology() as topo:
        nodes = [topo.node("src"), *(topo.router(f"r{i}") for i in range(1, 5)), topo.node("dst")]
        for a, b in itertools.pairwise(nodes):
            topo.link(a, b)
        topo.auto_routes()
        yield topo, nodes


@pytest.fixture
def diamond() -> Iterator[tuple[Topology, dict[str, Node]]]:
    """src - r1 - {a, b} - r2 - dst: two equal-cost paths, r1 hashes on the 5-tuple."""
    with Topology() as topo:
        n = {"src": topo.node("src"), "r1": topo.router("r1"), "a": topo.router("a"), "b": topo.router("b")}
        n |= {"r2": topo.router("r2"), "dst": topo.node("dst")}
        for x, y in (("src", "r1"), ("r1", "a"), ("r1", "b"), ("a", "r2"), ("b", "r2"), ("r2", "dst")):
            topo.link(n[x], n[y])
        topo.auto_routes()
        yield topo, n


@pytest.mark.parametrize(
    ("method", "tool_args", "last_icmp"),
    [("udp", (), (3, 3)), ("tcp", ("-T", "-p", "443"), (None, None)), ("icmp", ("-I",), (0, 0))],
)
def test_chain_hops_equal_traceroute(
    chain: tuple[Topology, list[Node]], method: str, tool_args: tuple[str, ...], last_icmp: tuple[Any, Any]
) -> None:
    topo, nodes = chain
    src, dst = nodes[0], nodes[-1]
    target = topo.address(dst)
    record, spans = run_agent(topo, src, {"type": "traceroute", "targets": [target], "method": method})
    tr = record["traceroute"]
    expected = traceroute_n(topo, src, target, *tool_args)
    assert hop_addresses(tr["hops"]) == expected
    assert expected == [topo.peer_address(nodes[i - 1], nodes[i]) for i in range(1, 6)]
    assert (record["success"], tr["reached"], tr["hop_count"]) == (True, True, 5)
    assert (tr["hops"][-1]["icmp_type"], tr["hops"][-1]["icmp_code"]) == last_icmp
    assert all(h["loss"] == 0.0 and len(h["rtts_ms"]) == 3 for h in tr["hops"])
    root = next(s for s in spans if s["name"] == f"traceroute {target}")
    hop_spans = sorted((s for s in spans if s["name"].startswith("hop ")), key=lambda s: s["name"])
    assert [s["parent"] for s in hop_spans] == [root["id"]] * 5
    assert [s["attributes"]["network.peer.address"] for s in hop_spans] == expected
    assert root["attributes"]["netobs.traceroute.socket_kind"] == ("dgram" if method == "udp" else "raw")


def test_silent_router_is_a_silent_hop(chain: tuple[Topology, list[Node]]) -> None:
    topo, nodes = chain
    topo.silence(nodes[2])
    target = topo.address(nodes[-1])
    record, spans = run_agent(
        topo, nodes[0], {"type": "traceroute", "targets": [target], "hop_timeout_s": 0.5, "probes_per_hop": 2}
    )
    tr = record["traceroute"]
    assert hop_addresses(tr["hops"]) == traceroute_n(topo, nodes[0], target)
    assert tr["hops"][1]["address"] is None and tr["hops"][1]["loss"] == 1.0
    assert tr["reached"] and tr["hop_count"] == 5
    assert next(s for s in spans if s["name"] == "hop 2")["error"]


def test_unreachable_destination(chain: tuple[Topology, list[Node]]) -> None:
    topo, nodes = chain
    # A subnet that src, r1 and r2 route towards r3, and r3 knows nothing about: r3 says "net unreachable".
    octet = topo.address(nodes[0]).split(".")[1]
    target = f"10.{octet}.250.1"
    for i in range(3):
        topo.set_route(nodes[i], f"10.{octet}.250.0/24", [topo.peer_address(nodes[i], nodes[i + 1])])
    record, _ = run_agent(topo, nodes[0], {"type": "traceroute", "targets": [target], "hop_timeout_s": 0.5})
    tr = record["traceroute"]
    assert (record["success"], record["error_type"], tr["reached"]) == (False, "unreachable", False)
    last = tr["hops"][-1]
    assert (last["ttl"], last["address"], last["icmp_type"]) == (3, topo.peer_address(nodes[2], nodes[3]), 3)
    assert "not reached" in record["error_message"]


def test_ecmp_flows_find_both_paths_and_match_scamper(diamond: tuple[Topology, dict[str, Node]]) -> None:
    topo, n = diamond
    target = topo.address(n["dst"])
    record, spans = run_agent(
        topo, n["src"], {"type": "traceroute", "targets": [target], "flows": 8, "probes_per_hop": 2}
    )
    tr = record["traceroute"]
    middles = {p["hops"][1]["address"] for p in tr["paths"]}
    assert middles == {topo.peer_address(n["r1"], n["a"]), topo.peer_address(n["r1"], n["b"])}
    assert tr["distinct_paths"] == 2 and len(tr["paths"]) == 8 and tr["reached"]
    flow_spans = [s for s in spans if s["name"].startswith("flow ")]
    assert len(flow_spans) == 8
    for path, flow_span in zip(tr["paths"], sorted(flow_spans, key=lambda s: int(s["name"][5:])), strict=True):
        # Same 5-tuple, same path: scamper's Paris traceroute with this flow's ports agrees hop by hop.
        sport, dport = re.findall(r":(\d+)", flow_span["attributes"]["netobs.traceroute.flow"])
        assert hop_addresses(path["hops"]) == scamper_paris(topo, n["src"], target, int(sport), int(dport))
        assert path["reached"] and len({h["addresses"][0] for h in path["hops"] if len(h["addresses"]) == 1}) == 4


def test_route_change_changes_path_hash_and_back(diamond: tuple[Topology, dict[str, Node]]) -> None:
    topo, n = diamond
    target = topo.address(n["dst"])
    prefix = re.sub(r"\.\d+$", ".0/24", target)
    via_a, via_b = topo.peer_address(n["r1"], n["a"]), topo.peer_address(n["r1"], n["b"])
    check = {"type": "traceroute", "targets": [target], "probes_per_hop": 1}
    hashes = []
    for via in (via_a, via_b, via_a):
        topo.set_route(n["r1"], prefix, [via])
        record, _ = run_agent(topo, n["src"], check)
        assert record["traceroute"]["hops"][1]["address"] == via
        hashes.append(record["traceroute"]["path_hash"])
    assert hashes[0] == hashes[2] != hashes[1]


def test_reverse_dns_and_asn_table(chain: tuple[Topology, list[Node]], tmp_path: Path) -> None:
    topo, nodes = chain
    r1 = topo.peer_address(nodes[0], nodes[1])
    # ``ip netns exec`` bind-mounts /etc/netns/<ns>/hosts over /etc/hosts: a real resolver answer, local.
    etc = Path("/etc/netns") / nodes[0].netns
    etc.mkdir(parents=True, exist_ok=True)
    try:
        (etc / "hosts").write_text(f"127.0.0.1 localhost\n{r1} r1.test.example\n")
        table = tmp_path / "asn.csv"
        octet = r1.split(".")[1]
        table.write_text(f"prefix,asn\n10.{octet}.0.0/16,64500\n{r1}/32,AS64501\n")
        os.chmod(tmp_path, 0o755)
        target = topo.address(nodes[-1])
        check = {"type": "traceroute", "targets": [target], "reverse_dns": True, "asn_table": str(table)}
        record, spans = run_agent(topo, nodes[0], check)
    finally:
        for f in etc.iterdir():
            f.unlink()
        etc.rmdir()
    hops = record["traceroute"]["hops"]
    assert [(h["hostname"], h["asn"], h["prefix"]) for h in hops[:2]] == [
        ("r1.test.example", 64501, f"{r1}/32"),
        (None, 64500, f"10.{octet}.0.0/16"),
    ]
    hop1 = next(s for s in spans if s["name"] == "hop 1")
    assert hop1["attributes"]["netobs.traceroute.hop.asn"] == 64501


def test_tcp_check_traces_its_path_in_its_own_trace(chain: tuple[Topology, list[Node]]) -> None:
    topo, nodes = chain
    dst = nodes[-1]
    server = topo.popen(
        dst, sys.executable, "-c",
        "import socket,sys; s=socket.socket(); s.bind(('0.0.0.0',0)); s.listen(); "
        "print(s.getsockname()[1], flush=True); sys.stdin.read()",
        stdin=-1, stdout=-1, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        target = f"{topo.address(dst)}:{port}"
        record, spans = run_agent(
            topo, nodes[0], {"type": "tcp", "name": "web", "targets": [target], "trace_path": True, "timeout_s": 20}
        )
    finally:
        server.kill()
        server.communicate()
    assert record["success"] and record["traceroute"] is None
    root = next(s for s in spans if s["name"] == f"tcp {target}")
    path = next(s for s in spans if s["name"] == f"traceroute {target}")
    assert path["parent"] == root["id"]
    connect = next(s for s in spans if s["name"] == "connect")
    hops = sorted((s for s in spans if s["name"].startswith("hop ")), key=lambda s: s["name"])
    assert {s["trace"] for s in [*hops, connect, path]} == {root["trace"]}
    assert [s["parent"] for s in hops] == [path["id"]] * 5
    assert [s["attributes"].get("network.peer.address") for s in hops] == [
        topo.peer_address(nodes[i - 1], nodes[i]) for i in range(1, 6)
    ]
    # the path is also in the record, with the same hops as the spans
    recorded = record["tcp"]["path"]
    assert recorded["method"] == "tcp"
    assert [h["address"] for h in recorded["hops"]] == [topo.peer_address(nodes[i - 1], nodes[i]) for i in range(1, 6)]
