"""``netobs report``: the sub-command in the agent's environment (stdlib and PyYAML only).

It validates the arguments and the SLO file here, then runs the job in the Spark environment
(``<spark venv>/bin/python -m netobs_spark``), creating that environment first if it is missing
(``scripts/setup.d/40-spark.sh``). ``NETOBS_SPARK_VENV`` names an existing environment instead.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from netobs_spark.slo import SloError, load_slo_config

EXIT_USAGE = 2
PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # pipelines/spark
REPO_ROOT = PACKAGE_ROOT.parent.parent
SETUP_SCRIPT = REPO_ROOT / "scripts" / "setup.d" / "40-spark.sh"

EPILOG = """\
examples:
  netobs report                                   yesterday (UTC), lake ./lake, output ./reports
  netobs report --date 2026-11-20 --lake /data/lake --out /data/reports --slo slo.yaml
  netobs report --from 2026-11-01 --to 2026-11-30 --slo slo.yaml

Output: <out>/rollups/<table>/date=YYYY-MM-DD/ (Parquet; a re-run replaces its dates only) and
<out>/report/<from>_<to>/report.html with CSV files beside it.
"""


def _day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from exc


def add_parser(subparsers: Any) -> None:
    """Register ``report`` on the top-level sub-parsers of the ``netobs`` command."""
    p = subparsers.add_parser(
        "report",
        help="nightly rollups, SLO compliance and the HTML report (Spark job)",
        description="Roll up a day or a range of the result lake and write Parquet rollups and a report.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    when = p.add_mutually_exclusive_group()
    when.add_argument("--date", type=_day, help="one UTC day (default: yesterday)")
    when.add_argument("--from", dest="first_day", type=_day, help="first UTC day of a range")
    p.add_argument("--to", dest="last_day", type=_day, help="last UTC day of a range, included (with --from)")
    p.add_argument("--lake", default=os.environ.get("NETOBS_LAKE", "lake"), help="lake root (default ./lake)")
    p.add_argument("--out", default=os.environ.get("NETOBS_REPORTS", "reports"), help="output root (default ./reports)")
    p.add_argument("--slo", help="SLO file (YAML); see docs/report.md")
    p.add_argument("--master", help="Spark master (default local[*])")
    p.add_argument("--driver-memory", default="2g", help="driver memory of the local Spark session")
    p.add_argument("--top", type=int, default=20, help="worst targets charted in the report")
    p.set_defaults(func=cmd_report)


def resolve_range(args: argparse.Namespace, today: dt.date) -> tuple[dt.date, dt.date]:
    """(first, last) day from --date / --from --to; yesterday when neither is given. Raises ValueError."""
    if args.date is not None:
        if args.last_day is not None:
            raise ValueError("--to goes with --from, not with --date")
        return args.date, args.date
    if args.first_day is not None:
        last = args.last_day if args.last_day is not None else args.first_day
        if last < args.first_day:
            raise ValueError(f"--to {last} is before --from {args.first_day}")
        return args.first_day, last
    if args.last_day is not None:
        raise ValueError("--to needs --from")
    yesterday = today - dt.timedelta(days=1)
    return yesterday, yesterday


def spark_python() -> Path:
    """The Spark environment's interpreter, creating the environment if needed."""
    named = os.environ.get("NETOBS_SPARK_VENV")
    if named:
        return Path(named) / "bin" / "python"
    if not SETUP_SCRIPT.exists():
        raise FileNotFoundError(f"no Spark environment: set NETOBS_SPARK_VENV (no {SETUP_SCRIPT})")
    print("netobs report: preparing the Spark environment (the first time downloads pyspark) ...", file=sys.stderr)
    done = subprocess.run(["bash", str(SETUP_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True)
    return Path(done.stdout.strip().splitlines()[-1]) / "bin" / "python"


def job_command(python: Path, args: argparse.Namespace, first: dt.date, last: dt.date) -> list[str]:
    command = [str(python), "-m", "netobs_spark", "--lake", args.lake, "--out", args.out]
    command += ["--from", first.isoformat(), "--to", last.isoformat(), "--top", str(args.top)]
    command += ["--driver-memory", args.driver_memory]
    if args.slo:
        command += ["--slo", args.slo]
    if args.master:
        command += ["--master", args.master]
    return command


def cmd_report(args: argparse.Namespace) -> int:
    try:
        first, last = resolve_range(args, dt.datetime.now(dt.UTC).date())
    except ValueError as exc:
        print(f"netobs report: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.slo:
        try:
            load_slo_config(args.slo)  # fail fast, before a JVM starts
        except SloError as exc:
            print(str(exc), file=sys.stderr)
            return EXIT_USAGE
    try:
        python = spark_python()
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"netobs report: cannot prepare the Spark environment: {exc}", file=sys.stderr)
        return 1
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_ROOT), env.get("PYTHONPATH", "")) if p)
    print(f"netobs report: {first} .. {last}: running the Spark job", file=sys.stderr)
    return subprocess.run(job_command(python, args, first, last), env=env, check=False).returncode
