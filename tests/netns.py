"""A small builder of real multi-hop topologies out of Linux network namespaces (needs root).

Every node is a network namespace named ``nobs-<random>-<node>``; links are veth pairs created directly
inside the two namespaces (so nothing appears in the host's namespace); routers forward. Routes are
installed by :meth:`Topology.auto_routes`: shortest paths by hop count, and an ECMP multipath route
wherever several next hops are equally short. The topology is a context manager and deletes every
namespace it made on exit, also when the test fails.

    with Topology() as topo:
        src, r1, r2, dst = topo.node("src"), topo.router("r1"), topo.router("r2"), topo.node("dst")
        topo.link(src, r1)
        topo.link(r1, r2)
        topo.link(r2, dst)
        topo.auto_routes()
        topo.run(src, "ping", "-c1", topo.address(dst))

The API, all on :class:`Topology`:
- ``node(name)`` / ``router(name, silent=False)``: a host, or a forwarding router; a *silent* router
  forwards but sends no ICMP error (see :meth:`Topology.silence`);
- ``link(a, b)``: a veth link with its own /24 (``10.<topology>.<link>.0/24``; ``a`` is .1, ``b`` is .2);
- ``auto_routes()``: routes on every node to every link subnet (ECMP where paths tie);
- ``set_route(node, prefix, via)``: replace one route by hand (one or several next-hop addresses);
- ``set_link(a, b, up)``: take a link down or bring it back;
- ``address(node)`` (the node's first address), ``addresses(node)``, ``peer_address(a, b)`` (b's address
  on the a-b link);
- ``run(node, *argv)`` / ``popen(node, *argv)``: run a command inside a node's namespace.

Routers get ``fib_multipath_hash_policy=1`` (hash on the 5-tuple, so different flows may take different
equal-cost paths) and no ICMP rate limit (so tools that send many probes at once see every answer).
"""

from __future__ import annotations

import itertools
import secrets
import subprocess
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

_SUBNET_COUNTER = itertools.count(1)


@dataclass
class Node:
    name: str  # short name, unique in its topology
    netns: str  # the namespace's name
    router: bool
    ifaces: dict[str, tuple[str, str]] = field(default_factory=dict)  # peer -> (ifname, address)


@dataclass
class _Link:
    a: str
    b: str
    subnet: str  # "10.x.y" (a /24 without the last octet)
    if_a: str
    if_b: str


class Topology:
    """A set of namespaces and links; see the module docstring."""

    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = prefix or f"nobs-{secrets.token_hex(3)}"
        self.nodes: dict[str, Node] = {}
        self.links: list[_Link] = []
        self._down: set[frozenset[str]] = set()
        # The second octet tells concurrent topologies of this process apart in dumps (not needed for
        # isolation: every namespace has its own addressing).
        self._octet = next(_SUBNET_COUNTER) % 250 + 1

    # -- building -----------------------------------------------------------------------------------
    def _add(self, name: str, router: bool) -> Node:
        if name in self.nodes:
            raise ValueError(f"node {name!r} exists")
        node = Node(name, f"{self.prefix}-{name}", router)
        _sh("ip", "netns", "add", node.netns)
        self.nodes[name] = node
        self.run(node, "ip", "link", "set", "lo", "up")
        sysctls = {
            "net.ipv4.icmp_ratelimit": "0",
            "net.ipv4.icmp_msgs_per_sec": "100000",
            "net.ipv4.icmp_msgs_burst": "100000",
        }
        if router:
            sysctls |= {"net.ipv4.ip_forward": "1", "net.ipv4.fib_multipath_hash_policy": "1"}
        for key, value in sysctls.items():
            self.run(node, "sysctl", "-qw", f"{key}={value}")
        return node

    def node(self, name: str) -> Node:
        """A host: it does not forward."""
        return self._add(name, router=False)

    def router(self, name: str, silent: bool = False) -> Node:
        """A router that forwards; ``silent`` ones send no ICMP errors."""
        node = self._add(name, router=True)
        if silent:
            self.silence(node)
        return node

    def silence(self, node: Node) -> None:
        """Make ``node`` send nothing it generates itself (so no ICMP time-exceeded or unreachable),
        while it still forwards. A policy rule sends every locally generated packet (``iif lo`` matches
        only those) to a table whose only route is a blackhole. Needs nothing but iproute2, unlike a
        firewall rule, and unlike ICMP rate-limit sysctls it holds for the first packet too."""
        self.run(node, "ip", "route", "add", "blackhole", "default", "table", "200")
        self.run(node, "ip", "rule", "add", "iif", "lo", "lookup", "200", "pref", "100")

    def link(self, a: Node, b: Node) -> tuple[str, str]:
        """Join ``a`` and ``b`` with a veth pair; returns (a's address, b's address)."""
        index = len(self.links) + 1
        subnet = f"10.{self._octet}.{index}"
        if_a, if_b = f"v{index}{b.name}"[:15], f"v{index}{a.name}"[:15]
        _sh(
            "ip", "link", "add", if_a, "netns", a.netns, "type", "veth",
            "peer", "name", if_b, "netns", b.netns,
        )  # fmt: skip
        for node, ifname, host in ((a, if_a, 1), (b, if_b, 2)):
            self.run(node, "ip", "addr", "add", f"{subnet}.{host}/24", "dev", ifname)
            self.run(node, "ip", "link", "set", ifname, "up")
            node.ifaces[(b if node is a else a).name] = (ifname, f"{subnet}.{host}")
        self.links.append(_Link(a.name, b.name, subnet, if_a, if_b))
        return f"{subnet}.1", f"{subnet}.2"

    def auto_routes(self) -> None:
        """Install on every node a route to every link subnet it is not on: the next hops of all
        shortest paths (by hop count, over links that are up), as an ECMP route when there are several."""
        for node in self.nodes.values():
            dist = self._distances_to_all(node.name)
            for link in self.links:
                if node.name in (link.a, link.b):
                    continue
                # Distance to the subnet = distance to its nearer end.
                target = min(dist.get(link.a, 1 << 30), dist.get(link.b, 1 << 30))
                if target >= 1 << 30:
                    continue
                vias = sorted(
                    self.peer_address(node, self.nodes[peer])
                    for peer in node.ifaces
                    if self._link_up(node.name, peer)
                    and (self.nodes[peer].router or peer in (link.a, link.b))
                    and min(self._dist(peer, link.a), self._dist(peer, link.b)) == target - 1
                )
                if vias:
                    self.set_route(node, f"{link.subnet}.0/24", vias)

    def set_route(self, node: Node, prefix: str, via: list[str]) -> None:
        """Replace ``node``'s route to ``prefix`` with one via ``via`` (several: a multipath route)."""
        if len(via) == 1:
            self.run(node, "ip", "route", "replace", prefix, "via", via[0])
        else:
            hops = [arg for v in via for arg in ("nexthop", "via", v)]
            self.run(node, "ip", "route", "replace", prefix, *hops)

    def set_link(self, a: Node, b: Node, up: bool) -> None:
        """Take the a-b link down (both ends) or bring it back up."""
        for node, peer in ((a, b), (b, a)):
            self.run(node, "ip", "link", "set", node.ifaces[peer.name][0], "up" if up else "down")
        if up:
            self._down.discard(frozenset((a.name, b.name)))
        else:
            self._down.add(frozenset((a.name, b.name)))

    # -- queries ------------------------------------------------------------------------------------
    def address(self, node: Node) -> str:
        """The node's address on its first link."""
        return next(iter(node.ifaces.values()))[1]

    def addresses(self, node: Node) -> list[str]:
        return [addr for _, addr in node.ifaces.values()]

    def peer_address(self, a: Node, b: Node) -> str:
        """``b``'s address on the a-b link."""
        return b.ifaces[a.name][1]

    # -- running ------------------------------------------------------------------------------------
    def run(self, node: Node, *argv: str, check: bool = True, timeout_s: float = 120) -> str:
        """Run ``argv`` in ``node``'s namespace; returns stdout (raises on a non-zero exit when ``check``)."""
        proc = subprocess.run(
            ["ip", "netns", "exec", node.netns, *argv],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"{node.name}: {' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
        return proc.stdout

    def popen(self, node: Node, *argv: str, **kwargs: Any) -> subprocess.Popen[Any]:
        return subprocess.Popen(["ip", "netns", "exec", node.netns, *argv], **kwargs)

    def close(self) -> None:
        """Delete every namespace (and so every link) of the topology; never raises."""
        for node in self.nodes.values():
            subprocess.run(["ip", "netns", "del", node.netns], capture_output=True, check=False)
        self.nodes.clear()
        self.links.clear()

    def __enter__(self) -> Topology:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- internals ----------------------------------------------------------------------------------
    def _link_up(self, a: str, b: str) -> bool:
        return frozenset((a, b)) not in self._down

    def _dist(self, src: str, dst: str) -> int:
        return self._distances_to_all(src).get(dst, 1 << 30)

    def _distances_to_all(self, src: str) -> dict[str, int]:
        """Hop counts from ``src``; only routers carry transit traffic."""
        dist = {src: 0}
        queue = deque([src])
        while queue:
            cur = queue.popleft()
            if cur != src and not self.nodes[cur].router:
                continue
            for peer in self.nodes[cur].ifaces:
                if peer not in dist and self._link_up(cur, peer):
                    dist[peer] = dist[cur] + 1
                    queue.append(peer)
        return dist


def _sh(*argv: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.strip()}")
