"""Reference docs generated from the code: the config schema and the metric catalogue.

``python -m netobs.docs`` rewrites docs/config.md and docs/metrics.md; a test fails when they are stale.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from netobs.config import json_schema

ROOT = Path(__file__).resolve().parents[2]


def _type_of(prop: dict[str, Any], defs: dict[str, Any]) -> str:
    if "$ref" in prop:
        return str(prop["$ref"]).rsplit("/", 1)[-1]
    for union in ("anyOf", "oneOf"):
        if union in prop:
            return " or ".join(_type_of(p, defs) for p in prop[union])
    if "enum" in prop:
        return " or ".join(f"`{v}`" for v in prop["enum"])
    if "const" in prop:
        return f"`{prop['const']}`"
    kind = prop.get("type", "any")
    if kind == "array":
        return f"list of {_type_of(prop.get('items', {}), defs)}"
    if kind == "object" and "additionalProperties" in prop:
        return f"map of {_type_of(prop['additionalProperties'], defs)}"
    return str(kind)


def _limits(prop: dict[str, Any]) -> str:
    parts = []
    for key, sym in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<")):
        if key in prop:
            parts.append(f"{sym} {prop[key]}")
    if "pattern" in prop:
        parts.append(f"matches `{prop['pattern']}`")
    if "minItems" in prop:
        parts.append(f"at least {prop['minItems']} item(s)")
    return ", ".join(parts)


def _table(name: str, model: dict[str, Any], defs: dict[str, Any]) -> list[str]:
    lines = [f"### {name}", ""]
    if model.get("description"):
        lines += [model["description"].strip(), ""]
    lines += ["| key | type | default | allowed | description |", "|---|---|---|---|---|"]
    required = set(model.get("required", []))
    for key, prop in model.get("properties", {}).items():
        default = "(required)" if key in required else f"`{json.dumps(prop['default'])}`" if "default" in prop else ""
        desc = (prop.get("description") or "").replace("|", "\\|")
        lines.append(f"| `{key}` | {_type_of(prop, defs)} | {default} | {_limits(prop)} | {desc} |")
    return [*lines, ""]


def config_markdown() -> str:
    schema = json_schema()
    defs = schema.get("$defs", {})
    out = [
        "# Agent configuration reference",
        "",
        "Generated from the code by `python -m netobs.docs`; do not edit. The JSON Schema itself:"
        " `netobs agent schema`. Unknown keys are rejected everywhere; `timeout_s` must be < `interval_s`.",
        "",
    ]
    out += _table("top level", schema, defs)
    order = ["ExporterConfig", "TlsClientConfig", "OutputsConfig", "IcmpCheck", "TcpCheck", "DnsCheck", "DnssecConfig"]
    order += ["DnsExpect", "HttpCheck", "HttpExpect", "TracerouteCheck"]
    for name in order + sorted(set(defs) - set(order)):
        if name in defs:
            out += _table(name, defs[name], defs)
    return "\n".join(out)


def metrics_markdown() -> str:
    catalogue = json.loads((ROOT / "tests/contract/golden/metric_catalogue.json").read_text())
    out = [
        "# Metric catalogue",
        "",
        "Generated from `tests/contract/golden/metric_catalogue.json` (the golden file the contract tests"
        " compare the code against) by `python -m netobs.docs`. Names are OpenTelemetry instrument names;"
        " in Prometheus dots become underscores and the unit is appended (`netobs.icmp.rtt` ->"
        " `netobs_icmp_rtt_seconds`). Every series also carries the agent's resource attributes"
        " (`service.instance.id`, `netobs.agent.id`, `netobs.pop`).",
        "",
        "| instrument | unit | check types | attribute keys |",
        "|---|---|---|---|",
    ]
    for name, entry in catalogue.items():
        types = ", ".join(t for t in entry["attributes"] if t != "*") or "agent"
        keys = sorted({k for ks in entry["attributes"].values() for k in ks})
        out.append(f"| `{name}` | `{entry['unit']}` | {types} | {', '.join(f'`{k}`' for k in keys)} |")
    return "\n".join(out) + "\n"


def main() -> int:
    docs = ROOT / "docs"
    docs.mkdir(exist_ok=True)
    (docs / "config.md").write_text(config_markdown())
    (docs / "metrics.md").write_text(metrics_markdown())
    print(f"wrote {docs / 'config.md'} and {docs / 'metrics.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
