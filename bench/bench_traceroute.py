"""Benchmark: 100 targets behind 8 hops, traced continuously, by the agent and by traceroute/mtr.

Builds src - r1 .. r7 - dst in network namespaces (needs root); dst holds the 100 target addresses, so
every target is 8 hops away. Then, for ``--seconds`` each:
- the agent (the real Runner and TracerouteProbe, UDP, 3 probes per hop) traces all targets at once,
  each again as soon as its last trace ended;
- ``traceroute -n`` (3 probes per hop) and ``mtr --report`` (3 cycles) run per target, ``--jobs`` at a time.
It prints traces per minute and CPU seconds per trace (user + system, of the agent process or of the
tool processes) side by side. All traffic stays inside the namespaces. Run:

    python bench/bench_traceroute.py --seconds 15
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGETS = 100

AGENT = r"""
import asyncio, json, resource, sys, time
from netobs.config import parse_config
from netobs.probes.traceroute import TracerouteProbe
from netobs.runner import Runner

targets, seconds = json.loads(sys.argv[1]), float(sys.argv[2])
cfg = parse_config(json.dumps({"checks": [{"name": "b", "type": "traceroute", "targets": targets,
    "interval_s": 60, "timeout_s": 30, "probes_per_hop": 3, "hop_timeout_s": 1.0, "max_hops": 16}]}))
check = cfg.checks[0]
runner = Runner("a", "p", {"traceroute": TracerouteProbe()})
done = {"ok": 0, "bad": 0}

async def loop(target: str, end: float) -> None:
    while time.monotonic() < end:
        r = await runner.run(check, target)
        ok = r.success and r.traceroute is not None and r.traceroute.hop_count == 8
        done["ok" if ok else "bad"] += 1

async def main() -> None:
    end = time.monotonic() + seconds
    await asyncio.gather(*(loop(t, end) for t in targets))

start_cpu = resource.getrusage(resource.RUSAGE_SELF)
start = time.monotonic()
asyncio.run(main())
elapsed = time.monotonic() - start
cpu = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"traces": done["ok"], "failed": done["bad"], "elapsed_s": elapsed,
                  "cpu_s": cpu.ru_utime + cpu.ru_stime - start_cpu.ru_utime - start_cpu.ru_stime}))
"""


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def run_tool(netns: str, argv_of: list[list[str]], seconds: float, jobs: int) -> dict[str, float]:
    """Run the tool commands round-robin, ``jobs`` at a time, for ``seconds``; count complete runs."""
    end = time.monotonic() + seconds
    counts = {"ok": 0, "bad": 0}
    queue = list(argv_of)
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while time.monotonic() < end:
            argv = queue[next_index % len(queue)]
            next_index += 1
            proc = await asyncio.create_subprocess_exec(
                "ip", "netns", "exec", netns, *argv,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            out, _ = await proc.communicate()
            ok = proc.returncode == 0 and argv[-1].encode() in out.splitlines()[-1]
            counts["ok" if ok else "bad"] += 1

    cpu0, t0 = children_cpu_s(), time.monotonic()
    await asyncio.gather(*(worker() for _ in range(jobs)))
    return {
        "traces": counts["ok"],
        "failed": counts["bad"],
        "elapsed_s": time.monotonic() - t0,
        "cpu_s": children_cpu_s() - cpu0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15.0, help="duration of each contender")
    parser.add_argument("--jobs", type=int, default=16, help="tool processes at a time")
    args = parser.parse_args()

    from tests.netns import Topology

    with Topology() as topo:
        nodes = [topo.node("src"), *(topo.router(f"r{i}") for i in range(1, 8)), topo.node("dst")]
        for a, b in itertools.pairwise(nodes):
            topo.link(a, b)
        topo.auto_routes()
        src, last_router, dst = nodes[0], nodes[-2], nodes[-1]
        octet = topo.address(src).split(".")[1]
        targets = [f"10.{octet}.200.{i}" for i in range(1, TARGETS + 1)]
        for t in targets:
            topo.run(dst, "ip", "addr", "add", f"{t}/32", "dev", "lo")
        for node, nxt in itertools.pairwise(nodes):
            topo.set_route(node, f"10.{octet}.200.0/24", [topo.peer_address(node, nxt)])
        assert last_router is nodes[7]

        out = topo.run(
            src, sys.executable, "-c", AGENT, json.dumps(targets), str(args.seconds), timeout_s=args.seconds + 120
        )
        results = {"netobs agent (asyncio, 1 process)": json.loads(out.strip().splitlines()[-1])}
        tools = {
            "traceroute -n -q 3 (per target)": [
                ["traceroute", "-n", "-q", "3", "-w", "1", "-m", "16", t] for t in targets
            ],
            "mtr -r -n -c 3 -i 0.1 -u (per target)": [
                ["mtr", "-r", "-n", "-c", "3", "-i", "0.1", "-u", "-m", "16", t] for t in targets
            ],
        }  # fmt: skip
        for name, argv_of in tools.items():
            label = f"{name}, {args.jobs} at a time"
            results[label] = asyncio.run(run_tool(src.netns, argv_of, args.seconds, args.jobs))

    print(f"{TARGETS} targets, 8 hops away, {args.seconds:g} s each, 3 probes per hop; 2 shared cores")
    print(f"{'contender':<52} {'traces/min':>11} {'CPU ms/trace':>13} {'failed':>7}")
    for name, r in results.items():
        per_min = r["traces"] / r["elapsed_s"] * 60
        cpu_ms = r["cpu_s"] / max(1, r["traces"]) * 1000
        print(f"{name:<52} {per_min:>11.0f} {cpu_ms:>13.2f} {int(r['failed']):>7}")


if __name__ == "__main__":
    main()
