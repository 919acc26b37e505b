"""Micro-benchmark: the agent's CPU per result for everything but the network, with all telemetry on.

Runs ``--results`` probe runs per type through the real ``Runner`` and the real ``Telemetry`` (OTLP/gRPC
exporters for metrics, spans and logs, batch processors, pointed at an in-process sink that discards
every export), with a synthetic probe per type that returns at once but reports what the real one does:
ICMP one RTT (``count: 1``), TCP a ``dns`` and a ``connect`` phase, HTTP ``dns``/``connect``/``ttfb``/
``transfer`` phases with their span attributes and an ``HttpResult``. Each run also records its schedule
lateness, as the scheduler does. Metrics are collected and exported every ``--collect-every`` results (the
agent's 10 s interval at 500 probes/s is 5,000), and the measured window ends after a flush of every
exporter, so the export threads' work is in the figure.

Prints CPU µs per result (``time.process_time``: all threads) per type, the median of ``--repeat``
rounds. Needs no root and no network beyond loopback; the load of the machine matters far less than in
``bench_agent.py`` because the process is never idle waiting for a timer.

    python bench/bench_telemetry.py                       # 20,000 results per type, 500 series, 3 rounds
    python bench/bench_telemetry.py --types icmp --results 5000 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

ROOT = Path(__file__).resolve().parents[1]
# --agent-path DIR measures another copy of the agent (e.g. `git archive <rev> agent`) for an A/B comparison.
_AGENT = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--agent-path=")), str(ROOT / "agent"))
sys.path.insert(0, str(ROOT / "bench"))
from bench_agent import otlp_sink  # noqa: E402  (it puts this checkout's agent first on sys.path)

sys.path.insert(0, _AGENT)
from netobs.config import AgentConfig  # noqa: E402
from netobs.probes.base import Outcome, ProbeContext  # noqa: E402
from netobs.result import HttpResult, IcmpResult, TcpResult  # noqa: E402
from netobs.runner import Runner  # noqa: E402
from netobs.telemetry import Telemetry  # noqa: E402

TYPES = ("icmp", "tcp", "http")


class _IcmpLike:
    check_type: ClassVar[str] = "icmp"
    traced: ClassVar[bool] = False

    async def run(self, ctx: ProbeContext) -> Outcome:
        ctx.resolved_ip = ctx.target
        ctx.detail = IcmpResult(
            sent=1, received=1, loss_ratio=0.0, rtt_min_ms=0.041, rtt_avg_ms=0.041, rtt_max_ms=0.041,
            rtt_stddev_ms=0.0, rtts_ms=[0.041], ttl=64,
        )  # fmt: skip
        return Outcome.ok()


class _TcpLike:
    check_type: ClassVar[str] = "tcp"
    traced: ClassVar[bool] = True

    async def run(self, ctx: ProbeContext) -> Outcome:
        ctx.detail = TcpResult(port=8080)
        with ctx.phase("dns"):
            ip = ctx.target.rsplit(":", 1)[0]
        ctx.resolved_ip = ip
        with ctx.phase("connect", **{"network.peer.address": ip, "network.peer.port": 8080}):
            pass
        return Outcome.ok()


class _HttpLike:
    check_type: ClassVar[str] = "http"
    traced: ClassVar[bool] = True

    async def run(self, ctx: ProbeContext) -> Outcome:
        ctx.detail = HttpResult(method="GET", url=ctx.target)
        with ctx.phase("dns", **{"server.address": "127.0.0.1"}):
            pass
        ctx.resolved_ip = "127.0.0.1"
        with ctx.phase("connect", **{"network.peer.address": "127.0.0.1", "network.peer.port": 8080}):
            pass
        attrs = {"http.request.method": "GET", "url.full": ctx.target}
        with ctx.phase("ttfb", **attrs):
            pass
        with ctx.phase("transfer") as span:
            if span is not None:
                span.set_attribute("http.response.status_code", 200)
        if ctx.span is not None:
            ctx.span.set_attribute("http.response.status_code", 200)
        ctx.detail.status_code, ctx.detail.http_version, ctx.detail.body_bytes = 200, "1.1", 3
        ctx.detail.final_url = ctx.target
        return Outcome.ok()


PROBES: dict[str, Any] = {"icmp": _IcmpLike(), "tcp": _TcpLike(), "http": _HttpLike()}


def targets_of(kind: str, n: int) -> list[str]:
    if kind == "icmp":
        return [f"127.1.{i // 250}.{i % 250 + 1}" for i in range(n)]
    if kind == "tcp":
        return [f"127.3.{i // 250}.{i % 250 + 1}:8080" for i in range(n)]
    return [f"http://127.0.0.1:8080/t/{i}" for i in range(n)]


class _Check:
    def __init__(self, kind: str) -> None:
        self.name = f"bench-{kind}"
        self.type = kind
        self.timeout_s = 0.9
        self.interval_s = 1.0
        self.labels: dict[str, str] = {}


async def one_round(kind: str, args: argparse.Namespace, port: int) -> float:
    cfg = AgentConfig.model_validate(
        {
            "agent_id": "bench",
            "pop": "bench",
            "exporter": {
                "endpoint": f"127.0.0.1:{port}",
                "protocol": "grpc",
                "insecure": True,
                "export_interval_s": 300,
            },
            "outputs": {"stdout_json": False},
        }
    )
    telemetry = Telemetry.from_config(cfg)
    runner = Runner("bench", "bench", {kind: PROBES[kind]}, sinks=[telemetry.record], tracer=telemetry.tracer)
    check = _Check(kind)
    targets = targets_of(kind, args.series)
    try:
        # Warm-up: every series once (first-seen work), then flushed, outside the window.
        for target in targets:
            telemetry.record_lateness(0.0003, kind)
            await runner.run(check, target)
        telemetry.flush()
        cpu0 = time.process_time()
        for i in range(args.results):
            telemetry.record_lateness(0.0003, kind)
            await runner.run(check, targets[i % len(targets)])
            if (i + 1) % args.collect_every == 0:
                telemetry.meter_provider.force_flush()
        telemetry.flush()
        cpu1 = time.process_time()
    finally:
        telemetry.shutdown()
    return (cpu1 - cpu0) / args.results * 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--types", default=",".join(TYPES), help="comma-separated subset of icmp,tcp,http")
    ap.add_argument("--results", type=int, default=20_000, help="results per round")
    ap.add_argument("--series", type=int, default=500, help="distinct targets (metric series)")
    ap.add_argument("--collect-every", type=int, default=5_000, help="results between metric exports")
    ap.add_argument("--repeat", type=int, default=3, help="rounds per type; the median is reported")
    ap.add_argument("--json", action="store_true", help="one JSON line per type")
    ap.add_argument("--agent-path", default=_AGENT, help="the agent package's parent directory (as --agent-path=DIR)")
    args = ap.parse_args(argv)
    kinds = [k for k in args.types.split(",") if k]
    for kind in kinds:
        if kind not in TYPES:
            ap.error(f"unknown type {kind!r}")
    import netobs

    print(f"agent: {Path(netobs.__file__).parent}", file=sys.stderr)
    with otlp_sink() as port:
        for kind in kinds:
            rounds = [asyncio.run(one_round(kind, args, port)) for _ in range(args.repeat)]
            row = {"type": kind, "cpu_us_per_result": round(statistics.median(rounds), 1), "rounds": rounds}
            if args.json:
                print(json.dumps(row), flush=True)
            else:
                spread = ", ".join(f"{r:.1f}" for r in rounds)
                print(f"{kind:5s} {row['cpu_us_per_result']:8.1f} us/result  (rounds: {spread})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
