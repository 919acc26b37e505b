"""Config validation: one testdata/invalid-*.yaml per rule, each naming the field and what is allowed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from netobs.config import (
    ConfigError,
    DnsCheck,
    HttpCheck,
    IcmpCheck,
    TcpCheck,
    json_schema,
    load_config,
    parse_config,
    split_host_port,
)

TESTDATA = Path(__file__).parent / "testdata"
INVALID = sorted(TESTDATA.glob("invalid-*.yaml"))


def _expected(path: Path) -> str:
    first = path.read_text().splitlines()[0]
    match = re.match(r"# expect: (.*)$", first)
    assert match, f"{path.name} must start with '# expect: <message>'"
    return match.group(1)


def test_every_rule_has_a_file() -> None:
    assert len(INVALID) >= 20


@pytest.mark.parametrize("path", INVALID, ids=[p.stem for p in INVALID])
def test_invalid_config_names_file_field_and_rule(path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert _expected(path) in message, message


def test_all_problems_reported_together_with_lines(tmp_path: Path) -> None:
    cfg = tmp_path / "probes.yaml"
    cfg.write_text(
        "checks:\n"
        "  - name: a\n"
        "    type: icmp\n"
        "    targets: [127.0.0.1]\n"
        "    count: 0\n"
        "  - name: b\n"
        "    type: http\n"
        "    targets: [ftp://x]\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    assert info.value.problems == [
        "checks[0].count: Input should be greater than or equal to 1 (line 5)",
        "checks[1].targets: 'ftp://x' is not an absolute http:// or https:// URL (line 8)",
    ]


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read"):
        load_config(tmp_path / "nope.yaml")


def test_defaults_are_applied() -> None:
    cfg = parse_config(
        "pop: fra1\n"
        "checks:\n"
        "  - {name: p, type: icmp, targets: [127.0.0.1]}\n"
        "  - {name: t, type: tcp, targets: ['h:22']}\n"
        "  - {name: d, type: dns, targets: [example.org], record_type: mx}\n"
        "  - {name: w, type: http, targets: ['https://x/']}\n"
    )
    assert cfg.pop == "fra1"
    assert cfg.agent_id  # the host name
    assert cfg.exporter is None
    icmp, tcp, dns, http = cfg.checks
    assert isinstance(icmp, IcmpCheck) and (icmp.count, icmp.interval_s, icmp.timeout_s) == (3, 60.0, 10.0)
    assert isinstance(tcp, TcpCheck) and tcp.tls is False
    assert isinstance(dns, DnsCheck) and dns.record_type == "MX" and dns.expect.rcodes == ["NOERROR"]
    assert isinstance(http, HttpCheck) and http.method == "GET" and http.max_body_bytes == 1_048_576


def test_exporter_section() -> None:
    cfg = parse_config(
        "exporter: {endpoint: 'https://otel.example:4318', protocol: http, headers: {authorization: 'Bearer x'}}"
    )
    assert cfg.exporter is not None
    assert cfg.exporter.protocol == "http"
    assert cfg.exporter.headers == {"authorization": "Bearer x"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("host:80", ("host", 80)),
        ("host", ("host", None)),
        ("10.0.0.1:443", ("10.0.0.1", 443)),
        ("[::1]:53", ("::1", 53)),
        ("::1", ("::1", None)),
        ("[2001:db8::1]", ("2001:db8::1", None)),
    ],
)
def test_split_host_port(value: str, expected: tuple[str, int | None]) -> None:
    assert split_host_port(value) == expected


def test_json_schema_describes_check_types() -> None:
    schema = json_schema()
    text = json.dumps(schema)
    for check_type in ("icmp", "tcp", "dns", "http", "traceroute"):
        assert f'"const": "{check_type}"' in text
    assert schema["additionalProperties"] is False
