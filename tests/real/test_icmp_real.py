"""The ICMP probe against the real kernel: loopback, and two network namespaces joined by a veth pair.

Layout of the namespaces (created and deleted by the ``pair`` fixture; addresses exist only inside them):

    A (the prober) --veth-- B (a host that also routes)
    10.213.7.1/24           10.213.7.2/24
    fd00:6e6f:7::1/64       fd00:6e6f:7::2/64

In A: 10.98.0.0/24 and fd00:6e6f:98::/64 are unreachable routes and 10.96.0.0/24 a blackhole
(``sendto`` fails); 10.99.0.0/24 and fd00:6e6f:99::/64 go via B, which blackholes them (requests vanish
silently); 10.97.0.0/24 and fd00:6e6f:97::/64 go via B, where they are unreachable routes (B sends an
ICMP error back). ``net.ipv4.ping_group_range`` is set
per namespace, so the probe runs inside A in a child process (``ip netns exec``).

RTT comparisons with iputils ``ping`` use medians of 10 packets and an absolute tolerance of 2 ms: both
tools see well under a millisecond here, and the loaded shared machine adds noise to both.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from netobs.config import IcmpCheck
from netobs.probes.icmp import IcmpProbe
from netobs.runner import Runner
from tests import cycles

pytestmark = pytest.mark.real

RTT_TOLERANCE_MS = 2.0
ALL_GROUPS = "0 2147483647"
NO_GROUPS = "1 0"

SNIPPET = r"""
import asyncio, json, logging, sys
from netobs.config import IcmpCheck
from netobs.probes.icmp import IcmpProbe
from netobs.runner import Runner

logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(name)s: %(message)s")

async def main():
    runner = Runner("real-test", "lab", {"icmp": IcmpProbe()})
    out = []
    for job in json.loads(sys.argv[1]):
        check = IcmpCheck(type="icmp", name="real", targets=[job["target"]], **job.get("check", {}))
        out.append((await runner.run(check, job["target"])).to_dict())
    print(json.dumps(out))

asyncio.run(main())
"""


def _sh(*argv: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


@dataclass
class Pair:
    a: str
    b: str
    a4: str = "10.213.7.1"
    b4: str = "10.213.7.2"
    a6: str = "fd00:6e6f:7::1"
    b6: str = "fd00:6e6f:7::2"

    def in_a(self, *argv: str) -> str:
        return _sh("ip", "netns", "exec", self.a, *argv)

    def set_ping_groups(self, value: str) -> None:
        self.in_a("sysctl", "-qw", f"net.ipv4.ping_group_range={value}")

    def probe(self, jobs: list[dict[str, Any]], *, without_cap_net_raw: bool = False) -> tuple[list[Any], str]:
        """Run the probe inside A; returns (result dicts, the child's log)."""
        prefix = ["setpriv", "--bounding-set=-net_raw"] if without_cap_net_raw else []
        proc = subprocess.run(
            ["ip", "netns", "exec", self.a, *prefix, sys.executable, "-c", SNIPPET, json.dumps(jobs)],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout), proc.stderr


@pytest.fixture
def pair() -> Iterator[Pair]:
    prefix = f"nobs-{secrets.token_hex(3)}"
    p = Pair(a=f"{prefix}-icmpa", b=f"{prefix}-icmpb")
    _sh("ip", "netns", "add", p.a)
    try:
        _sh("ip", "netns", "add", p.b)
        _sh("ip", "link", "add", "va", "netns", p.a, "type", "veth", "peer", "name", "vb", "netns", p.b)
        for ns, dev, v4, v6 in ((p.a, "va", p.a4, p.a6), (p.b, "vb", p.b4, p.b6)):
            run = ["ip", "netns", "exec", ns]
            _sh(*run, "ip", "link", "set", "lo", "up")
            _sh(*run, "ip", "addr", "add", f"{v4}/24", "dev", dev)
            _sh(*run, "ip", "-6", "addr", "add", f"{v6}/64", "dev", dev, "nodad")
            _sh(*run, "ip", "link", "set", dev, "up")
        b = ["ip", "netns", "exec", p.b]
        for key in ("net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1", "net.ipv4.icmp_ratelimit=0"):
            _sh(*b, "sysctl", "-qw", key)
        _sh(*b, "sysctl", "-qw", "net.ipv6.icmp.ratelimit=0")
        _sh(*b, "ip", "route", "add", "unreachable", "10.97.0.0/24")
        _sh(*b, "ip", "-6", "route", "add", "unreachable", "fd00:6e6f:97::/64")
        _sh(*b, "ip", "route", "add", "blackhole", "10.99.0.0/24")
        _sh(*b, "ip", "-6", "route", "add", "blackhole", "fd00:6e6f:99::/64")
        p.in_a("ip", "route", "add", "blackhole", "10.96.0.0/24")
        p.in_a("ip", "route", "add", "10.99.0.0/24", "via", p.b4)
        p.in_a("ip", "-6", "route", "add", "fd00:6e6f:99::/64", "via", p.b6)
        p.in_a("ip", "route", "add", "unreachable", "10.98.0.0/24")
        p.in_a("ip", "-6", "route", "add", "unreachable", "fd00:6e6f:98::/64")
        p.in_a("ip", "route", "add", "10.97.0.0/24", "via", p.b4)
        p.in_a("ip", "-6", "route", "add", "fd00:6e6f:97::/64", "via", p.b6)
        # Wait until B answers (neighbour discovery, link up) so the first measured packet is not slow.
        for target in (p.b4, p.b6):
            p.in_a("ping", "-n", "-q", "-c", "1", "-w", "5", target)
        yield p
    finally:
        for ns in (p.a, p.b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def ping_rtts_ms(target: str, count: int = 10, netns: str | None = None) -> list[float]:
    """Per-packet RTTs that iputils ping reports for ``target``."""
    argv = ["ping", "-n", "-c", str(count), "-i", "0.05", "-W", "1", target]
    if netns is not None:
        argv = ["ip", "netns", "exec", netns, *argv]
    out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60).stdout
    rtts = [float(m) for m in re.findall(r"time=([0-9.]+) ms", out)]
    assert len(rtts) == count, out
    return rtts


def _answered(result: dict[str, Any]) -> list[float]:
    return [r for r in result["icmp"]["rtts_ms"] if r is not None]


# -- loopback, in this process --------------------------------------------------------------------


@pytest.mark.parametrize("target", ["127.0.0.1", "127.0.0.42", "::1"])
async def test_loopback_matches_ping(target: str) -> None:
    runner = Runner("real-test", "lab", {"icmp": IcmpProbe()})
    check = IcmpCheck(type="icmp", name="lo", targets=[target], count=10, packet_interval_ms=50, timeout_s=2)
    result = await runner.run(check, target)
    assert result.success, result.error_message
    icmp = result.icmp
    assert icmp is not None
    assert (icmp.sent, icmp.received, icmp.loss_ratio) == (10, 10, 0.0)
    assert icmp.ip_version == (6 if ":" in target else 4)
    assert icmp.timestamp_source == "kernel"
    assert icmp.ttl == 64
    answered = [r for r in icmp.rtts_ms if r is not None]
    ping_median = statistics.median(ping_rtts_ms(target))
    assert abs(statistics.median(answered) - ping_median) < RTT_TOLERANCE_MS, (answered, ping_median)
    assert icmp.rtt_min_ms is not None and icmp.rtt_max_ms is not None
    assert icmp.rtt_min_ms <= statistics.median(answered) <= icmp.rtt_max_ms


@pytest.mark.parametrize("target", ["127.0.0.1", "::1"])
async def test_runs_leave_no_reference_cycles(target: str) -> None:
    check = IcmpCheck(type="icmp", name="lo", targets=[target], count=2, packet_interval_ms=1, timeout_s=2)
    with cycles.production_runner({"icmp": IcmpProbe()}) as (runner, exporter):
        garbage, results = await cycles.cyclic_garbage(lambda: runner.run(check, target))
    assert all(r.success for r in results), [r.error_message for r in results if not r.success][:3]
    assert not garbage, f"{cycles.RUNS} runs left objects in reference cycles: {garbage.most_common(8)}"
    assert exporter.items >= len(results)


async def test_busy_event_loop_does_not_inflate_rtt() -> None:
    """The reply is read 150 ms late (the loop is blocked), but the kernel stamped it on arrival."""
    runner = Runner("real-test", "lab", {"icmp": IcmpProbe()})
    check = IcmpCheck(type="icmp", name="busy", targets=["127.0.0.1"], count=1, timeout_s=2)
    task = asyncio.create_task(runner.run(check, "127.0.0.1"))
    await asyncio.sleep(0)  # the task runs until it waits for the reply: the request is out
    time.sleep(0.15)  # noqa: ASYNC251 -- the point: a blocked loop
    result = await task
    assert result.success, result.error_message
    assert result.icmp is not None and result.icmp.timestamp_source == "kernel"
    assert result.duration_ms >= 150
    rtt = result.icmp.rtts_ms[0]
    assert rtt is not None and rtt < 5.0, rtt


async def test_many_concurrent_loopback_targets_share_one_socket() -> None:
    probe = IcmpProbe()
    runner = Runner("real-test", "lab", {"icmp": probe})
    targets = [f"127.0.{i // 200}.{i % 200 + 1}" for i in range(400)]
    check = IcmpCheck(type="icmp", name="many", targets=targets, count=1, timeout_s=2)
    results = await asyncio.gather(*(runner.run(check, t) for t in targets))
    assert all(r.success for r in results), [r.error_message for r in results if not r.success][:3]
    (echo,) = probe.sockets._sockets.values()
    # Root gets the large receive buffer past net.core.rmem_max (the kernel reports twice what was set).
    assert echo.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= 4 << 20
    assert all(r.resolved_ip == t for r, t in zip(results, targets, strict=True))


# -- namespaces: datagram and raw sockets, losses and errors ---------------------------------------


@pytest.mark.parametrize(
    ("groups", "kind", "family"),
    [
        (ALL_GROUPS, "dgram", 4),
        (NO_GROUPS, "raw", 4),
        (ALL_GROUPS, "dgram", 6),
        (NO_GROUPS, "raw", 6),
    ],
)
def test_namespace_rtts_match_ping(pair: Pair, groups: str, kind: str, family: int) -> None:
    pair.set_ping_groups(groups)
    target = pair.b4 if family == 4 else pair.b6
    check = {"count": 10, "packet_interval_ms": 50, "timeout_s": 2, "size_bytes": 100}
    results, log = pair.probe([{"target": target, "check": check}] * 2)
    for result in results:
        assert result["success"], result["error_message"]
        icmp = result["icmp"]
        assert (icmp["socket_kind"], icmp["ip_version"], icmp["received"]) == (kind, family, 10)
        assert icmp["timestamp_source"] == "kernel"
        assert icmp["packet_size_bytes"] == 100
        assert icmp["ttl"] == 64
    # The socket kind is logged once per address family, not per run.
    name = "IPv4" if family == 4 else "IPv6"
    assert log.count(f"ICMP over {name}:") == 1, log
    assert ("unprivileged datagram" if kind == "dgram" else "raw sockets") in log
    agent_median = statistics.median(_answered(results[0]) + _answered(results[1]))
    ping_median = statistics.median(ping_rtts_ms(target, netns=pair.a))
    assert abs(agent_median - ping_median) < RTT_TOLERANCE_MS, (agent_median, ping_median)


@pytest.mark.parametrize(
    ("groups", "target", "error_type", "message"),
    [
        (ALL_GROUPS, "10.99.0.5", "packet_loss", "no echo reply from 10.99.0.5 to 2 request(s)"),
        (NO_GROUPS, "fd00:6e6f:99::5", "packet_loss", "no echo reply"),
        (ALL_GROUPS, "10.213.7.77", "packet_loss", "no echo reply"),  # nobody has this address
        (ALL_GROUPS, "10.98.0.5", "unreachable", "sending the echo request failed"),
        (NO_GROUPS, "fd00:6e6f:98::5", "unreachable", "sending the echo request failed"),
        (ALL_GROUPS, "10.96.0.5", "network_error", "Invalid argument"),  # a local blackhole: EINVAL
        (ALL_GROUPS, "10.97.0.5", "unreachable", "host unreachable from 10.213.7.2"),
        (NO_GROUPS, "10.97.0.5", "unreachable", "host unreachable from 10.213.7.2"),
        (
            ALL_GROUPS,
            "fd00:6e6f:97::5",
            "unreachable",
            "unreachable: no route to destination from fd00:6e6f:7::2",
        ),
        (
            NO_GROUPS,
            "fd00:6e6f:97::5",
            "unreachable",
            "unreachable: no route to destination from fd00:6e6f:7::2",
        ),
    ],
)
def test_namespace_failures(pair: Pair, groups: str, target: str, error_type: str, message: str) -> None:
    pair.set_ping_groups(groups)
    check = {"count": 2, "packet_interval_ms": 100, "timeout_s": 1}
    (result,), _ = pair.probe([{"target": target, "check": check}])
    assert result["success"] is False
    assert result["error_type"] == error_type
    assert message in result["error_message"]
    icmp = result["icmp"]
    assert icmp["received"] == 0 and icmp["loss_ratio"] == 1.0
    assert icmp["rtts_ms"] == [None, None]
    if message.endswith(("from 10.213.7.2", "from fd00:6e6f:7::2")):
        assert result["duration_ms"] < 800  # B's errors end the run early, before the deadline


@pytest.mark.parametrize(
    ("groups", "success", "kind"),
    [
        (NO_GROUPS, False, None),  # neither datagram ICMP nor CAP_NET_RAW
        (ALL_GROUPS, True, "dgram"),  # the unprivileged production setup
    ],
)
def test_without_cap_net_raw(pair: Pair, groups: str, success: bool, kind: str | None) -> None:
    pair.set_ping_groups(groups)
    (result,), _ = pair.probe([{"target": pair.b4, "check": {"count": 1}}], without_cap_net_raw=True)
    assert result["success"] is success
    if success:
        assert result["icmp"]["socket_kind"] == kind
    else:
        assert result["error_type"] == "permission_denied"
        assert "ping_group_range (now '1 0')" in result["error_message"]
        assert "CAP_NET_RAW" in result["error_message"]


@pytest.mark.parametrize(
    ("groups", "size", "dont_fragment", "success"),
    [
        (ALL_GROUPS, 1472, True, True),  # 1472 + 8 + 20 = 1500, the veth MTU
        (ALL_GROUPS, 1473, True, False),  # one byte too many with DF: refused locally
        (NO_GROUPS, 1473, True, False),
        (ALL_GROUPS, 3000, False, True),  # without DF it is fragmented and still answered
    ],
)
def test_dont_fragment_and_size(pair: Pair, groups: str, size: int, dont_fragment: bool, success: bool) -> None:
    pair.set_ping_groups(groups)
    check = {"count": 1, "size_bytes": size, "dont_fragment": dont_fragment}
    (result,), _ = pair.probe([{"target": pair.b4, "check": check}])
    assert result["success"] is success, result["error_message"]
    if not success:
        assert result["error_type"] == "network_error"
        assert "exceeds the path MTU" in result["error_message"]


@pytest.mark.parametrize(("groups", "ttl", "success"), [(ALL_GROUPS, 1, True), (NO_GROUPS, 1, False)])
def test_ttl_limits_the_path(pair: Pair, groups: str, ttl: int, success: bool) -> None:
    """TTL 1 reaches B (one hop) but not what lies behind B: B reports time exceeded."""
    pair.set_ping_groups(groups)
    target = pair.b4 if success else "10.97.0.5"
    if not success:
        # Let B forward to something that would answer were the TTL large enough: a route via A.
        _sh("ip", "netns", "exec", pair.b, "ip", "route", "replace", "10.97.0.0/24", "via", pair.a4)
    (result,), _ = pair.probe([{"target": target, "check": {"count": 1, "ttl": ttl}}])
    assert result["success"] is success, result["error_message"]
    if not success:
        assert result["error_type"] == "unreachable"
        assert "time exceeded" in result["error_message"] and "from 10.213.7.2" in result["error_message"]
