"""``python -m netobs_grafana render|check`` (with ``PYTHONPATH=grafana``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from netobs_grafana.check import panel_queries, run_query
from netobs_grafana.dashboards import RENDERED_DIR, render_all


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m netobs_grafana", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    render = sub.add_parser("render", help="write grafana/dashboards/*.json")
    render.add_argument("--out", type=Path, default=RENDERED_DIR, help="folder to write to (default: %(default)s)")
    check = sub.add_parser("check", help="run every panel query against a Prometheus; exit 1 if one is empty")
    check.add_argument("--prometheus", required=True, help="base URL, e.g. http://127.0.0.1:9090")
    check.add_argument("--window-s", type=float, default=300.0, help="range of range queries and $__range")
    args = parser.parse_args(argv)

    if args.command == "render":
        args.out.mkdir(parents=True, exist_ok=True)
        for name, text in render_all().items():
            (args.out / name).write_text(text)
            print(args.out / name)
        return 0

    empty = 0
    for text in render_all().values():
        for pq in panel_queries(json.loads(text)):
            res = run_query(args.prometheus.rstrip("/"), pq, window_s=args.window_s)
            status = "error" if res.error else ("empty" if res.series == 0 else f"{res.series} series")
            empty += res.error is not None or res.series == 0
            print(f"{status:>12}  {pq.name}" + (f": {res.error}" if res.error else ""))
    return 1 if empty else 0


if __name__ == "__main__":
    sys.exit(main())
