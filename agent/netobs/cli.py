"""The ``netobs`` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from netobs import __version__
from netobs.config import AgentConfig, ConfigError, json_schema, load_config

log = logging.getLogger("netobs")

EXIT_CONFIG = 2

AGENT_EPILOG = """\
examples:
  netobs agent validate --config probes.yaml     check a config; exit 2 with every problem listed
  netobs agent once --config probes.yaml          run every (check, target) once, JSON lines on stdout
  netobs agent once --config probes.yaml --check web --output text
  netobs agent run --config probes.yaml           run until stopped (SIGHUP reloads the config)
  netobs agent schema > netobs-agent.schema.json  JSON Schema of the config file

Without an `exporter:` section the agent needs nothing else running: results go to stdout as JSON lines
and metrics to http://127.0.0.1:9469/metrics. With one, it sends OTLP (metrics, spans, one log record
per result) to the collector.
"""


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _load(path: str) -> AgentConfig | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return None


def cmd_validate(args: argparse.Namespace) -> int:
    cfg = _load(args.config)
    if cfg is None:
        return EXIT_CONFIG
    from netobs.agent import unsupported_types
    from netobs.probes import default_probes

    targets = sum(len(c.targets) for c in cfg.checks)
    print(f"{args.config}: ok ({len(cfg.checks)} checks, {targets} targets)")
    missing = unsupported_types(cfg, default_probes())
    if missing:
        print(f"{args.config}: warning: check types not available in this agent: {', '.join(missing)}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    print(json.dumps(json_schema(), indent=2))
    return 0


def _text_line(result: object) -> str:
    from netobs.result import ProbeResult

    assert isinstance(result, ProbeResult)
    status = "ok  " if result.success else "FAIL"
    phases = " ".join(f"{k}={v:.1f}ms" for k, v in result.phases_ms.items())
    err = f" {result.error_type}: {result.error_message}" if not result.success else ""
    return f"{status} {result.check_name:<20} {result.target:<40} {result.duration_ms:9.2f} ms {phases}{err}"


async def _run_once(cfg: AgentConfig, check_name: str | None, output: str) -> int:
    from netobs.agent import unsupported_types
    from netobs.probes import default_probes
    from netobs.runner import Runner
    from netobs.telemetry import Telemetry, TelemetryParts, _add_otlp, build_resource

    probes = default_probes()
    checks = [c for c in cfg.checks if check_name is None or c.name == check_name]
    if check_name is not None and not checks:
        names = ", ".join(c.name for c in cfg.checks) or "(none)"
        print(f"no check named {check_name!r}; checks: {names}", file=sys.stderr)
        return EXIT_CONFIG
    missing = unsupported_types(cfg, probes)
    if missing:
        print(f"check types not available in this agent: {', '.join(missing)}", file=sys.stderr)
        checks = [c for c in checks if c.type in probes]
    parts = TelemetryParts(batch=True)
    if cfg.exporter is not None:
        _add_otlp(parts, cfg.exporter)
    telemetry = Telemetry(build_resource(cfg), parts)
    runner = Runner(cfg.agent_id, cfg.pop, probes, sinks=[telemetry.record], tracer=telemetry.tracer)
    jobs = [runner.run(c, t) for c in checks for t in c.targets]
    results = await asyncio.gather(*jobs)
    for r in results:
        print(r.to_json() if output == "json" else _text_line(r))
    telemetry.flush()
    telemetry.shutdown()
    return 0 if all(r.success for r in results) else 1


def cmd_once(args: argparse.Namespace) -> int:
    cfg = _load(args.config)
    if cfg is None:
        return EXIT_CONFIG
    from netobs.agent import run_loop

    return run_loop(_run_once(cfg, args.check, args.output), args.event_loop)


def cmd_run(args: argparse.Namespace) -> int:
    cfg = _load(args.config)
    if cfg is None:
        return EXIT_CONFIG
    from netobs.agent import Agent, run_loop

    try:
        agent = Agent(cfg, config_path=Path(args.config))
    except OSError as exc:
        print(f"{args.config}: cannot start the agent's outputs: {exc}", file=sys.stderr)
        return 1
    log.info("event loop: %s", args.event_loop)
    run_loop(agent.run_forever(), args.event_loop)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netobs",
        description="netobs: OpenTelemetry-native synthetic network monitoring",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"netobs {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    top = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    agent = top.add_parser(
        "agent",
        help="the probe agent: validate, once, run, schema",
        description="The probe agent: tests the network (icmp, tcp, dns, http, traceroute) and emits OTLP.",
        epilog=AGENT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = agent.add_subparsers(dest="agent_command", required=True, metavar="ACTION")
    p = sub.add_parser("validate", help="check a config file; exit 2 listing every problem")
    p.add_argument("--config", "-c", required=True, help="the YAML config file")
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("once", help="run every (check, target) once; one JSON result per line")
    p.add_argument("--config", "-c", required=True, help="the YAML config file")
    p.add_argument("--check", help="only the check with this name")
    p.add_argument("--output", "-o", choices=["json", "text"], default="json", help="output format")
    _event_loop_option(p)
    p.set_defaults(func=cmd_once)
    p = sub.add_parser("run", help="run until stopped; SIGHUP reloads the config, SIGTERM stops")
    p.add_argument("--config", "-c", required=True, help="the YAML config file")
    _event_loop_option(p)
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("schema", help="print the JSON Schema of the config file")
    p.set_defaults(func=cmd_schema)

    for register in _extensions():
        register(top)
    return parser


def _event_loop_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--event-loop",
        choices=["uvloop", "asyncio"],
        default="uvloop",
        help="uvloop (default: libuv, less CPU per probe) or the standard library's asyncio loop",
    )


def _extensions() -> list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]]:
    """Sub-commands that live in their own packages (stack, detect, flink, report)."""
    found = []
    for module in ("netobs.stack.cli", "netobs_flink.cli", "netobs_spark.cli"):
        try:
            mod = __import__(module, fromlist=["add_parser"])
        except ModuleNotFoundError as exc:
            if exc.name is not None and module.startswith(exc.name):
                continue
            raise
        found.append(mod.add_parser)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `netobs agent once | head`: the reader left, nothing to report
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
