"""Benchmark: where a TCP or HTTP run's CPU goes, layer by layer.

Runs the real probe against the same local targets as ``bench_agent.py`` (a listener per TCP target, nginx
for HTTP), without the scheduler: a driver starts ``--batch`` runs together every ``--gap-ms`` (by default
10 every 5 ms, 2,000 runs/s, about what the agent's 5 ms slot grid does at that rate) and measures the
child process's CPU per run (all threads, and per thread) with one more layer of the agent each time:

| layer | what runs per run |
|---|---|
| ``socket`` | (TCP only) the agent's non-blocking connect (``_sockio.connect_socket``) and close: the floor |
| ``probe`` | the ``Runner`` with the probe: deadline, timing, phases, result record; no telemetry |
| ``spans`` | ``probe`` + the light tracer: the run's spans, encoded and exported by the span thread |
| ``record`` | ``probe`` + ``Telemetry.record``: metrics, the result log record (encoded, exported); no spans |
| ``all`` | the agent's own runner: spans and record, as in production |

Telemetry goes over OTLP/gRPC to the same discarding sink as ``bench_agent.py``; the process is tuned as the
agent is (``tune_runtime``). The difference between two layers is what the added layer costs in a running
agent, where code runs with cold caches between wake-ups (several times its cost in a tight loop). Each
line prints its difference from the layer it adds to: ``probe`` on ``socket``; ``spans``, ``record`` and
``all`` on ``probe``.

    python bench/bench_layers.py                          # tcp and http, every layer, 12 s each
    python bench/bench_layers.py --types tcp --layers socket,all --duration-s 20
    python bench/bench_layers.py --agent-path /tmp/old/agent   # another revision (A/B)

Needs nginx for HTTP (as ``bench_agent.py``). Not part of ``scripts/test``; ``tests/unit/test_bench_smoke.py``
runs it for a second so that it cannot rot.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_agent

LAYERS = ("socket", "probe", "spans", "record", "all")
# What each layer adds to: spans and record each to the bare probe, all (both) to the probe as well.
BASE = {"probe": "socket", "spans": "probe", "record": "probe", "all": "probe"}
TYPES = ("tcp", "http")

CHILD = (
    r"""
import asyncio, json, sys, time
spec = json.loads(sys.argv[1])
sys.path.insert(0, spec["agent_path"])
import uvloop
from netobs.agent import Agent, tune_runtime
from netobs.config import AgentConfig, split_host_port
from netobs.probes._sockio import connect_socket
from netobs.runner import Runner
from netobs.telemetry import Telemetry

"""
    + bench_agent.CHILD_THREAD_CPU
    + r"""
async def main():
    cfg = AgentConfig.model_validate(spec["config"])
    telemetry = Telemetry.from_config(cfg)
    agent = Agent(cfg, telemetry=telemetry)
    check = cfg.checks[0]
    layer = spec["layer"]
    if layer == "all":
        runner = agent.runner
    else:
        sinks = [telemetry.record] if layer == "record" else []
        tracer = telemetry.tracer if layer == "spans" else None
        runner = Runner("bench", "bench", agent.probes, sinks=sinks, tracer=tracer)

    async def connect_only(target):
        host, port = split_host_port(target)
        (await connect_socket(host, port)).close()

    def one(target):
        return connect_only(target) if layer == "socket" else runner.run(check, target)

    targets = list(check.targets)
    batch, gap_s = spec["batch"], spec["gap_s"]

    async def drive(seconds):
        done, i = 0, 0
        next_start = time.monotonic()
        end = next_start + seconds
        while time.monotonic() < end:
            await asyncio.gather(*(one(targets[(i + k) % len(targets)]) for k in range(batch)))
            i += batch
            done += batch
            next_start += gap_s
            await asyncio.sleep(max(0.0, next_start - time.monotonic()))
        return done

    tune_runtime()
    await drive(spec["warmup_s"])
    telemetry.flush()
    cpu0, wall0, threads0 = time.process_time(), time.monotonic(), thread_cpu_s()
    done = await drive(spec["duration_s"])
    telemetry.flush()  # what the window produced is exported inside it
    cpu1, wall1, threads1 = time.process_time(), time.monotonic(), thread_cpu_s()
    telemetry.shutdown()
    print(json.dumps({
        "runs": done, "runs_per_s": done / (wall1 - wall0), "cpu_us_per_run": (cpu1 - cpu0) / done * 1e6,
        "threads_us_per_run": {k: (v - threads0.get(k, 0.0)) / done * 1e6 for k, v in threads1.items()},
    }))

uvloop.run(main())
"""
)


def run_layer(
    kind: str, layer: str, targets: list[str], sink_port: int, args: argparse.Namespace, *, tmp: Path
) -> dict[str, Any]:
    config = {
        "agent_id": "bench",
        "pop": "bench",
        "exporter": {"endpoint": f"127.0.0.1:{sink_port}", "protocol": "grpc", "insecure": True},
        "outputs": {"stdout_json": False},
        "checks": [bench_agent.check_config(kind, targets, 1.0, tmp)],
    }
    spec = {
        "agent_path": str(args.agent_path),
        "config": config,
        "layer": layer,
        "batch": args.batch,
        "gap_s": args.gap_ms / 1000.0,
        "warmup_s": args.warmup_s,
        "duration_s": args.duration_s,
    }
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=args.warmup_s + args.duration_s + 120,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} {layer}: the child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    row: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return row | {"type": kind, "layer": layer}


def print_row(row: dict[str, Any], base: dict[str, Any] | None) -> None:
    added = ""
    if base is not None:
        added = f"  ({row['cpu_us_per_run'] - base['cpu_us_per_run']:+.1f} on {base['layer']})"
    threads = ", ".join(f"{k} {v:.1f}" for k, v in sorted(row["threads_us_per_run"].items()) if v >= 0.05)
    print(
        f"{row['type']:5} {row['layer']:7} {row['cpu_us_per_run']:7.1f} us/run{added}   "
        f"{row['runs_per_s']:.0f} runs/s; by thread: {threads}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--types", default=",".join(TYPES), help="comma-separated: tcp,http (default both)")
    parser.add_argument(
        "--layers", default=",".join(LAYERS), help=f"comma-separated, in order (default {','.join(LAYERS)})"
    )
    parser.add_argument("--targets", type=int, default=2000, help="distinct targets, used in turn (default 2000)")
    parser.add_argument("--batch", type=int, default=10, help="runs started together (default 10)")
    parser.add_argument("--gap-ms", type=float, default=5.0, help="between the starts of batches (default 5)")
    parser.add_argument("--duration-s", type=float, default=12.0, help="measured window per layer (default 12)")
    parser.add_argument("--warmup-s", type=float, default=3.0, help="before measuring (default 3)")
    bench_agent.add_agent_path(parser)
    parser.add_argument("--json", action="store_true", help="also print one JSON line per layer")
    args = parser.parse_args(argv)
    bench_agent.check_agent_path(parser, args)
    kinds = [k for k in args.types.split(",") if k]
    layers = [layer for layer in args.layers.split(",") if layer]
    for k in kinds:
        if k not in TYPES:
            parser.error(f"--types: unknown type {k!r}; allowed: {', '.join(TYPES)}")
    for layer in layers:
        if layer not in LAYERS:
            parser.error(f"--layers: unknown layer {layer!r}; allowed: {', '.join(LAYERS)}")
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(
        f"layers: {args.batch} runs every {args.gap_ms:g} ms ({args.batch * 1000 / args.gap_ms:.0f} runs/s) over "
        f"{args.targets} targets, {args.duration_s:g} s per layer; agent from {args.agent_path}",
        flush=True,
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="netobs-layers-") as tmp_name, bench_agent.otlp_sink() as sink_port:
        tmp = Path(tmp_name)
        for kind in kinds:
            with bench_agent.targets_for(kind, args.targets, tmp) as (targets, _):
                measured: dict[str, dict[str, Any]] = {}
                for layer in layers:
                    if layer == "socket" and kind != "tcp":
                        continue
                    row = run_layer(kind, layer, targets, sink_port, args, tmp=tmp)
                    print_row(row, measured.get(BASE.get(layer, "")))
                    rows.append(row)
                    measured[layer] = row
    if args.json:
        for row in rows:
            print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
