"""Entry point of the job in the Spark environment: ``python -m netobs_spark`` or spark-submit."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
from collections.abc import Sequence

from netobs_spark.slo import SloConfig, SloError, load_slo_config

EXIT_USAGE = 2


def _day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from exc


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="netobs_spark", description="netobs nightly rollups and report (Spark job)")
    p.add_argument("--lake", required=True, help="the lake root (local path or a Hadoop URI)")
    p.add_argument("--out", required=True, help="output root: rollups/ and report/ go below it")
    p.add_argument("--from", dest="first_day", type=_day, required=True, help="first UTC day (YYYY-MM-DD)")
    p.add_argument("--to", dest="last_day", type=_day, required=True, help="last UTC day, included")
    p.add_argument("--slo", help="SLO file (YAML)")
    p.add_argument("--master", help="Spark master (default: local[*], or what spark-submit set)")
    p.add_argument("--driver-memory", default="2g", help="driver memory of a local session (default 2g)")
    p.add_argument("--top", type=int, default=20, help="worst targets charted in the report (default 20)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if args.last_day < args.first_day:
        print(f"--to {args.last_day} is before --from {args.first_day}", file=sys.stderr)
        return EXIT_USAGE
    try:
        slo = load_slo_config(args.slo) if args.slo else SloConfig()
    except SloError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    from netobs_spark.job import JobOptions, build_session, run

    spark = build_session(args.master, driver_memory=args.driver_memory)
    try:
        summary = run(
            spark,
            JobOptions(
                lake=args.lake,
                out=args.out,
                first_day=args.first_day,
                last_day=args.last_day,
                slo=slo,
                report_top=args.top,
            ),
        )
    finally:
        spark.stop()
    print(f"{summary.report_dir}/report.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
