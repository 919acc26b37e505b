"""``netobs detect`` (pure Python, runs in the agent's venv) and ``netobs flink`` (the PyFlink job).

The main CLI imports this module and calls :func:`add_parser`; nothing here imports PyFlink: ``netobs
flink run`` starts the job in the Flink virtualenv (created on first use by scripts/setup.d/50-flink.sh).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

DETECT_EPILOG = """\
examples:
  netobs detect replay --csv latency.csv
  netobs detect replay --csv data.csv --timestamp-column time --value-column rtt_ms --warmup-s 3600

The replay runs the same latency detector as the streaming job over a (timestamp, value) series, as if it
were one check's latency, and prints one JSON line per alert: fired_at, resolved_at (null while firing
at the end), kind (latency_increase / latency_decrease), severity and trigger.
"""

FLINK_EPILOG = """\
examples:
  netobs flink run --bootstrap-servers 127.0.0.1:9092 --alertmanager-url http://127.0.0.1:9093 \\
      --lake /var/lib/netobs/lake --checkpoint-dir /var/lib/netobs/checkpoints
  netobs flink env       print the Flink virtualenv, the connector jar folder and the compiled package
                         (creating them if needed)

`run` executes the job on a local mini-cluster in the Flink virtualenv; the same module
(python -m netobs_flink.job) is what a Flink cluster runs (see docs/detection.md). It runs from a copy of
the package whose detector core is compiled with mypyc (3-4x faster, same results; built on first use,
needs gcc); NETOBS_FLINK_NATIVE=0 runs the plain Python sources instead.
"""

REPO_ROOT = Path(__file__).resolve().parents[3]
SETUP_SCRIPT = REPO_ROOT / "scripts" / "setup.d" / "50-flink.sh"


def cmd_replay(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from netobs_flink.detect.latency import LatencyConfig
    from netobs_flink.detect.replay import ReplayError, replay_file

    config = LatencyConfig()
    if args.warmup_s is not None:
        config = replace(config, warmup_s=args.warmup_s)
    if args.season_s is not None:
        config = replace(config, season_s=args.season_s)
    try:
        alerts = replay_file(
            Path(args.csv), timestamp_column=args.timestamp_column, value_column=args.value_column, config=config
        )
    except (OSError, ReplayError) as exc:
        print(f"netobs detect replay: {exc}", file=sys.stderr)
        return 2
    for alert in alerts:
        print(json.dumps(alert.to_dict()))
    return 0


def flink_env(*, quiet: bool = False) -> dict[str, str]:
    """Create (first time) and locate the Flink virtualenv and jars: {"FLINK_VENV": ..., "FLINK_JARS": ...}."""
    proc = subprocess.run(
        ["bash", str(SETUP_SCRIPT), "--print"],
        check=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL if quiet else None,
        text=True,
    )
    env = {}
    for line in proc.stdout.splitlines():
        key, _, value = line.partition("=")
        env[key] = value
    return env


def cmd_env(args: argparse.Namespace) -> int:
    for key, value in flink_env().items():
        print(f"{key}={value}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    env = flink_env()
    python = Path(env["FLINK_VENV"]) / "bin" / "python"
    child_env = dict(os.environ)
    # The package the job runs from: the copy with the compiled detector core (or the sources, see --help).
    paths = (env["FLINK_PYTHONPATH"], child_env.get("PYTHONPATH", ""))
    child_env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
    child_env["NETOBS_FLINK_JARS"] = env["FLINK_JARS"]
    job_args = list(args.job_args)
    if job_args[:1] == ["--"]:
        job_args = job_args[1:]
    argv = [str(python), "-m", "netobs_flink.job", *job_args]
    return subprocess.call(argv, env=child_env)


def add_parser(top: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    detect = top.add_parser(
        "detect",
        help="anomaly detectors offline: replay a CSV series",
        description="The streaming job's detectors, run offline.",
        epilog=DETECT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = detect.add_subparsers(dest="detect_command", required=True, metavar="ACTION")
    p = sub.add_parser("replay", help="run the latency detector over a CSV; one JSON line per alert")
    p.add_argument("--csv", required=True, help="the CSV file (header row required)")
    p.add_argument("--timestamp-column", default="timestamp", help="column of the times (default: timestamp)")
    p.add_argument("--value-column", default="value", help="column of the values (default: value)")
    p.add_argument("--warmup-s", type=float, help="history needed before alerting (default: one day)")
    p.add_argument("--season-s", type=float, help="seasonal period in seconds, 0 for none (default: 86400)")
    p.set_defaults(func=cmd_replay)

    flink = top.add_parser(
        "flink",
        help="the PyFlink streaming job: run, env",
        description="The streaming job: detect anomalies, alert (Alertmanager, Kafka), archive results.",
        epilog=FLINK_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    fsub = flink.add_subparsers(dest="flink_command", required=True, metavar="ACTION")
    p = fsub.add_parser(
        "run",
        help="run the job on a local mini-cluster",
        description="Run the job on a local mini-cluster. Every argument goes to the job: "
        "`netobs flink run -- --help` lists them.",
    )
    p.add_argument("job_args", nargs=argparse.REMAINDER, help="options of python -m netobs_flink.job")
    p.set_defaults(func=cmd_run)
    p = fsub.add_parser("env", help="print the Flink venv, jar folder and compiled package, creating them if missing")
    p.set_defaults(func=cmd_env)
