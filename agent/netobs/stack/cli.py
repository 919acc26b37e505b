"""``netobs stack up|status|down|build``: the local pipeline stack as background processes."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from netobs.stack.components import COMPONENT_NAMES
from netobs.stack.layout import StackError, StackLayout
from netobs.stack.stack import Stack

EPILOG = """\
components: kafka, prometheus, alertmanager, jaeger, otelcol (the collector), agent

examples:
  netobs stack up                                    build what is missing, start everything, wait
  netobs stack up --with-agent --config examples/stack-demo.yaml
  netobs stack status                                up/down, port, pid and log file of each component
  netobs stack down kafka                            stop one component (`up kafka` starts it again)
  netobs stack down                                  stop everything
  NETOBS_STACK_PORT_OFFSET=11000 netobs stack up     a second stack beside the first (own --state-dir!)

Builds are cached under $NETOBS_CACHE (default ~/.cache/netobs); pid files, logs and data under
$NETOBS_STATE/stack (default ~/.local/state/netobs/stack). Ports: agent/netobs/stack/ports.py.
"""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    stack = subparsers.add_parser(
        "stack",
        help="run the local pipeline stack (collector, Jaeger, Kafka, Prometheus, Alertmanager)",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = stack.add_subparsers(dest="stack_command", required=True, metavar="ACTION")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--state-dir", type=Path, help="pid files, logs and data (default $NETOBS_STATE/stack)")
        p.add_argument(
            "--port-offset",
            type=int,
            help="add this to every port (default $NETOBS_STACK_PORT_OFFSET, else the running stack's)",
        )

    p = sub.add_parser("up", help="build/fetch what is missing, start, wait until ready, print the URLs")
    common(p)
    p.add_argument("components", nargs="*", metavar="COMPONENT", help="only these (default: all)")
    p.add_argument("--with-agent", action="store_true", help="also run a probe agent (needs --config)")
    p.add_argument("--config", type=Path, help="agent config for --with-agent")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("status", help="each component: up/down, port, pid, log file")
    common(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("down", help="stop components (default: all)")
    common(p)
    p.add_argument("components", nargs="*", metavar="COMPONENT")
    p.set_defaults(func=cmd_down)

    p = sub.add_parser("build", help="only build/fetch (cached) what the components run")
    common(p)
    p.add_argument("components", nargs="*", metavar="COMPONENT")
    p.set_defaults(func=cmd_build)


def _say(line: str) -> None:
    print(line, flush=True)


def _stack(args: argparse.Namespace, agent_config: Path | None = None) -> Stack:
    layout = StackLayout.create(state_dir=args.state_dir, port_offset=args.port_offset)
    return Stack(layout, agent_config=agent_config, say=_say)


def cmd_up(args: argparse.Namespace) -> int:
    if args.with_agent != (args.config is not None):
        print("netobs stack up: --with-agent and --config go together", file=sys.stderr)
        return 2
    names = list(args.components)
    if args.with_agent and names and "agent" not in names:
        names.append("agent")
    start = time.monotonic()
    try:
        stack = _stack(args, agent_config=args.config)
        failures = stack.up(names or None)
    except StackError as exc:
        print(f"netobs stack up: {exc}", file=sys.stderr)
        return 1
    if failures:
        print("\nnetobs stack up: some components did not start:", file=sys.stderr)
        for failure in failures:
            print(f"  {failure}", file=sys.stderr)
        return 1
    print(f"\nstack ready in {time.monotonic() - start:.1f} s (state: {stack.layout.state_dir})")
    chosen = names or [n for n in COMPONENT_NAMES if n != "agent" or args.with_agent]
    for name in chosen:
        for label, url in stack.components[name].urls().items():
            print(f"  {name:<13} {label:<10} {url}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    try:
        stack = _stack(args)
    except StackError as exc:
        print(f"netobs stack status: {exc}", file=sys.stderr)
        return 1
    rows = stack.status()
    if args.json:
        body = [
            {
                "component": r.component,
                "state": r.state,
                "port": r.port,
                "pid": r.pid,
                "log_file": str(r.log_file),
            }
            for r in rows
        ]
        print(json.dumps(body, indent=2))
    else:
        print(f"{'COMPONENT':<13} {'STATE':<19} {'PORT':>6} {'PID':>8}  LOG")
        for r in rows:
            pid = str(r.pid) if r.pid else "-"
            print(f"{r.component:<13} {r.state:<19} {r.port:>6} {pid:>8}  {r.log_file}")
    backends_up = all(r.ready for r in rows if r.component != "agent")
    return 0 if backends_up else 3


def cmd_down(args: argparse.Namespace) -> int:
    try:
        _stack(args).down(list(args.components) or None)
    except StackError as exc:
        print(f"netobs stack down: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    try:
        _stack(args).build([n for n in args.components if n != "agent"] or None)
    except StackError as exc:
        print(f"netobs stack build: {exc}", file=sys.stderr)
        return 1
    return 0
