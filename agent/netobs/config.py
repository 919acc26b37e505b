"""The agent's configuration file: typed models, validated once at the edge.

Defaults are applied, then every rule is checked; unknown keys are rejected. Every problem is reported
as ``<file>: <field path>: <what is wrong and what is allowed>`` (with the YAML line where known), and all
problems of a file are reported together, not only the first.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,62}$"


class ConfigError(Exception):
    """A configuration file that cannot be used. ``problems`` holds one line per problem."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(f"{source}: {p}" for p in problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class TlsClientConfig(_Strict):
    """TLS settings of a client connection (to the collector, or a probed server)."""

    ca_file: str | None = Field(None, description="PEM bundle of trusted CAs (default: the system store)")
    cert_file: str | None = Field(None, description="client certificate (PEM) for mutual TLS")
    key_file: str | None = Field(None, description="client private key (PEM) for mutual TLS")
    insecure_skip_verify: bool = Field(False, description="accept any server certificate (testing only)")


class ExporterConfig(_Strict):
    """Where the agent sends OTLP. Absent: the embedded default (JSON lines on stdout, /metrics)."""

    endpoint: str = Field(
        "127.0.0.1:4317",
        description="collector address: host:port for gRPC, or a base URL (http[s]://host:4318) for HTTP",
    )
    protocol: Literal["grpc", "http"] = "grpc"
    headers: dict[str, str] = Field(default_factory=dict, description="extra headers, e.g. authorization")
    insecure: bool = Field(True, description="plain-text gRPC/HTTP; false uses TLS")
    tls: TlsClientConfig | None = None
    export_interval_s: float = Field(10.0, gt=0, le=300, description="metric export period")
    timeout_s: float = Field(10.0, gt=0, le=120, description="per-export timeout")


class OutputsConfig(_Strict):
    """Local outputs, independent of the exporter."""

    stdout_json: bool | None = Field(
        None, description="one result record per line on stdout (default: on when no exporter is configured)"
    )
    prometheus_listen: str | None = Field(
        None,
        description="host:port of a Prometheus /metrics endpoint "
        "(default: 127.0.0.1:9469 when no exporter is configured, else off)",
    )


class CheckBase(_Strict):
    name: str = Field(pattern=NAME_PATTERN, description="unique name of the check")
    targets: list[str] = Field(min_length=1, description="what to probe (meaning depends on the type)")
    interval_s: float = Field(60.0, ge=0.1, le=86400, description="time between runs of each target")
    timeout_s: float = Field(10.0, gt=0, le=600, description="deadline of one run; must be < interval_s")
    labels: dict[str, str] = Field(default_factory=dict, description="free labels copied to every result")
    enabled: bool = True

    @field_validator("targets")
    @classmethod
    def _targets_unique(cls, v: list[str]) -> list[str]:
        if any(not t for t in v):
            raise ValueError("targets must not be empty strings")
        if len(set(v)) != len(v):
            raise ValueError("targets must be unique")
        return v

    @field_validator("labels")
    @classmethod
    def _label_keys(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if not re.match(r"^[a-zA-Z_][a-zA-Z0-9_]*$", key):
                raise ValueError(f"label key {key!r} must match [a-zA-Z_][a-zA-Z0-9_]*")
        return v


class IcmpCheck(CheckBase):
    """ICMP echo: targets are host names or IP addresses."""

    type: Literal["icmp"]
    count: int = Field(3, ge=1, le=100, description="echo requests per run")
    packet_interval_ms: float = Field(200.0, ge=1, le=10000, description="gap between echo requests")
    size_bytes: int = Field(56, ge=0, le=65000, description="ICMP payload size")
    ttl: int | None = Field(None, ge=1, le=255, description="IP TTL / hop limit of the requests")
    dont_fragment: bool = Field(False, description="set DF (IPv4) so oversized packets fail")
    ip_version: Literal["auto", "4", "6"] = "auto"
    socket: Literal["auto", "dgram", "raw"] = Field(
        "auto", description="auto: unprivileged datagram ICMP socket, raw socket as a fallback"
    )


class TcpCheck(CheckBase):
    """TCP connect (and optional TLS handshake): targets are host:port, or hosts with ``port`` set."""

    type: Literal["tcp"]
    port: int | None = Field(None, ge=1, le=65535, description="port for targets that do not carry one")
    tls: bool = Field(False, description="do a TLS handshake after connecting")
    tls_server_name: str | None = Field(None, description="SNI and verification name (default: the host)")
    tls_verify: bool = Field(True, description="verify the certificate chain and name")
    ca_file: str | None = None
    ip_version: Literal["auto", "4", "6"] = "auto"
    trace_path: bool = Field(False, description="also trace the TCP path to the server in the same trace")


class DnsExpect(_Strict):
    rcodes: list[str] = Field(default_factory=lambda: ["NOERROR"], description="accepted rcodes")
    answers_match: list[str] = Field(
        default_factory=list, description="regexes; each must match at least one answer (text form)"
    )
    authority_match: list[str] = Field(default_factory=list, description="regexes on authority records")
    min_answers: int = Field(0, ge=0, description="fewest answer records (RRSIGs not counted)")

    @field_validator("rcodes")
    @classmethod
    def _rcodes(cls, v: list[str]) -> list[str]:
        import dns.rcode

        out = []
        for name in v:
            try:
                dns.rcode.from_text(name.upper())
            except Exception as exc:
                raise ValueError(f"unknown rcode {name!r} (e.g. NOERROR, NXDOMAIN, SERVFAIL)") from exc
            out.append(name.upper())
        return out

    @field_validator("answers_match", "authority_match")
    @classmethod
    def _regexes(cls, v: list[str]) -> list[str]:
        for pattern in v:
            _compile(pattern)
        return v


class DnssecConfig(_Strict):
    request: bool = Field(False, description="set the DO bit and ask for DNSSEC records")
    require_authenticated: bool = Field(
        False, description="fail unless the resolver sets the AD flag (validated answer)"
    )
    validate_locally: bool = Field(False, description="validate the answer's RRSIGs against the zone DNSKEYs")
    trust_anchor: str | None = Field(
        None, description="DS or DNSKEY record text of the zone's trust anchor for local validation"
    )

    @field_validator("trust_anchor")
    @classmethod
    def _anchor(cls, v: str | None) -> str | None:
        if v is not None:
            parse_trust_anchor(v)
        return v


class DnsCheck(CheckBase):
    """DNS query: targets are the names to query."""

    type: Literal["dns"]
    record_type: str = Field("A", description="any record type: A, AAAA, MX, TXT, NS, SOA, CNAME, ...")
    server: str | None = Field(None, description="ip or ip:port of the server; default the system resolver")
    transport: Literal["udp", "tcp", "tls"] = "udp"
    recursion_desired: bool = True
    tls_server_name: str | None = Field(None, description="DNS-over-TLS: name to verify")
    tls_verify: bool = True
    ca_file: str | None = None
    dnssec: DnssecConfig = Field(default_factory=DnssecConfig)  # type: ignore[arg-type]
    expect: DnsExpect = Field(default_factory=DnsExpect)  # type: ignore[arg-type]

    @field_validator("record_type")
    @classmethod
    def _record_type(cls, v: str) -> str:
        import dns.rdatatype

        try:
            dns.rdatatype.from_text(v.upper())
        except Exception as exc:
            raise ValueError(f"unknown DNS record type {v!r} (e.g. A, AAAA, MX, TXT, NS, SOA)") from exc
        return v.upper()


class HttpExpect(_Strict):
    status_codes: list[int] = Field(default_factory=list, description="accepted status codes (default: any 2xx)")
    headers_match: dict[str, str] = Field(default_factory=dict, description="header name -> regex its value must match")
    body_match: list[str] = Field(default_factory=list, description="regexes the body must match")
    body_not_match: list[str] = Field(default_factory=list, description="regexes the body must not match")

    @field_validator("body_match", "body_not_match")
    @classmethod
    def _regexes(cls, v: list[str]) -> list[str]:
        for pattern in v:
            _compile(pattern)
        return v

    @field_validator("headers_match")
    @classmethod
    def _header_regexes(cls, v: dict[str, str]) -> dict[str, str]:
        for pattern in v.values():
            _compile(pattern)
        return v


# Framing headers the probe writes itself (from the body and the protocol); a config must not set them.
_PROBE_SET_HEADERS = frozenset({"content-length", "transfer-encoding", "connection", "upgrade", "te"})


class HttpCheck(CheckBase):
    """HTTP(S) request: targets are absolute http:// or https:// URLs."""

    type: Literal["http"]
    method: str = Field("GET", pattern=r"^[A-Z]+$")
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    http_version: Literal["1.1", "2", "auto"] = Field(
        "auto", description="auto: HTTP/2 when the server offers it over TLS (ALPN), else 1.1"
    )
    follow_redirects: bool = True
    max_redirects: int = Field(10, ge=0, le=30)
    tls_verify: bool = True
    ca_file: str | None = None
    max_body_bytes: int = Field(1_048_576, ge=0, description="read at most this much body, then fail")
    inject_traceparent: bool = Field(True, description="send a W3C traceparent header")
    ip_version: Literal["auto", "4", "6"] = "auto"
    trace_path: bool = Field(False, description="also trace the TCP path to the server in the same trace")
    expect: HttpExpect = Field(default_factory=HttpExpect)

    @field_validator("targets")
    @classmethod
    def _urls(cls, v: list[str]) -> list[str]:
        for url in v:
            if not re.match(r"^https?://[^/\s]+", url):
                raise ValueError(f"{url!r} is not an absolute http:// or https:// URL")
        return v

    @field_validator("headers")
    @classmethod
    def _headers(cls, v: dict[str, str]) -> dict[str, str]:
        for name, value in v.items():
            if not re.fullmatch(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", name):
                raise ValueError(f"header name {name!r} is not an HTTP token (RFC 9110)")
            if re.search(r"[\r\n\x00]", value):
                raise ValueError(f"header {name!r}: the value must not contain CR, LF or NUL")
            if name.lower() in _PROBE_SET_HEADERS:
                raise ValueError(f"header {name!r} is set by the probe; allowed: any other header")
        return v


class TracerouteCheck(CheckBase):
    """Traceroute: targets are host names or IP addresses."""

    type: Literal["traceroute"]
    method: Literal["udp", "icmp", "tcp"] = "udp"
    port: int | None = Field(None, ge=1, le=65535, description="destination port (udp: 33434, tcp: 443)")
    max_hops: int = Field(30, ge=1, le=64)
    first_hop: int = Field(1, ge=1, le=64)
    probes_per_hop: int = Field(3, ge=1, le=10)
    hop_timeout_s: float = Field(1.0, gt=0, le=10)
    stop_after_silent_hops: int = Field(5, ge=1, le=64)
    flows: int = Field(1, ge=1, le=64, description="distinct flow identifiers to trace (ECMP discovery)")
    reverse_dns: bool = False
    asn_table: str | None = Field(None, description="offline IP-to-ASN table (CSV: prefix,asn)")
    ip_version: Literal["auto", "4", "6"] = "auto"


Check = Annotated[
    IcmpCheck | TcpCheck | DnsCheck | HttpCheck | TracerouteCheck,
    Field(discriminator="type"),
]


class AgentConfig(_Strict):
    """The whole file."""

    agent_id: str = Field(default_factory=socket.gethostname, description="default: the host name")
    pop: str = Field("default", description="the point of presence this agent runs in")
    exporter: ExporterConfig | None = None
    outputs: OutputsConfig = Field(default_factory=OutputsConfig)  # type: ignore[arg-type]
    checks: list[Check] = Field(default_factory=list)

    def check(self, name: str) -> IcmpCheck | TcpCheck | DnsCheck | HttpCheck | TracerouteCheck:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid regex {pattern!r}: {exc}") from exc


_ADAPTER = TypeAdapter(AgentConfig)


def json_schema() -> dict[str, Any]:
    """JSON Schema of the configuration file."""
    schema = _ADAPTER.json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "netobs agent configuration"
    return schema


def _format_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


def _yaml_line(root: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """1-based line of the YAML node at ``loc``, or of its nearest existing parent."""
    node = root
    line = None if node is None else node.start_mark.line + 1
    for part in loc:
        nxt: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == part:
                    nxt = value
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            nxt = node.value[part]
        if nxt is None:
            break
        node = nxt
        line = node.start_mark.line + 1
    return line


_CHECK_TAGS = {"icmp", "tcp", "dns", "http", "traceroute"}


def _clean_loc(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    # A discriminated union inserts the tag ("checks", 3, "http", "timeout_s"): drop it from the path.
    parts = list(loc)
    if len(parts) >= 3 and parts[0] == "checks" and isinstance(parts[1], int) and parts[2] in _CHECK_TAGS:
        del parts[2]
    return tuple(parts)


def _describe(err: Any) -> str:
    kind = err["type"]
    msg = str(err["msg"])
    if kind == "extra_forbidden":
        return "unknown key (not allowed here; see `netobs agent schema`)"
    if kind == "union_tag_invalid":
        return f"unknown check type; allowed: {', '.join(sorted(_CHECK_TAGS))}"
    if kind == "union_tag_not_found":
        return f"missing 'type'; allowed: {', '.join(sorted(_CHECK_TAGS))}"
    if kind == "missing":
        return "required field is missing"
    return msg.removeprefix("Value error, ")


def _cross_checks(cfg: AgentConfig) -> list[tuple[tuple[int | str, ...], str]]:
    problems: list[tuple[tuple[int | str, ...], str]] = []
    seen: dict[str, int] = {}
    for i, check in enumerate(cfg.checks):
        if check.name in seen:
            problems.append((("checks", i, "name"), f"duplicate check name (also checks[{seen[check.name]}])"))
        seen.setdefault(check.name, i)
        if check.timeout_s >= check.interval_s:
            problems.append((("checks", i, "timeout_s"), f"must be < interval_s ({check.interval_s:g})"))
        if isinstance(check, IcmpCheck):
            spread_s = (check.count - 1) * check.packet_interval_ms / 1000
            if spread_s >= check.timeout_s:
                problems.append(
                    (
                        ("checks", i, "packet_interval_ms"),
                        f"count x packet_interval_ms ({spread_s:g} s) must fit in timeout_s ({check.timeout_s:g})",
                    )
                )
        if isinstance(check, TcpCheck):
            for j, target in enumerate(check.targets):
                if check.port is None and split_host_port(target)[1] is None:
                    problems.append(
                        (("checks", i, "targets", j), f"{target!r} has no port and the check sets no 'port'")
                    )
        if isinstance(check, TracerouteCheck):
            if check.first_hop > check.max_hops:
                problems.append((("checks", i, "first_hop"), f"must be <= max_hops ({check.max_hops})"))
            budget_s = check.max_hops * check.hop_timeout_s
            if check.method == "tcp" and check.port is None:
                pass  # tcp defaults to 443
            if budget_s > check.timeout_s * 50:
                problems.append((("checks", i, "hop_timeout_s"), "max_hops x hop_timeout_s is unreasonable"))
        if isinstance(check, DnsCheck) and check.server is not None:
            host, port = split_host_port(check.server)
            if port is not None and not 0 < port < 65536:
                problems.append((("checks", i, "server"), "port must be 1..65535"))
            if not host:
                problems.append((("checks", i, "server"), "must be ip or ip:port"))
        if isinstance(check, DnsCheck) and check.dnssec.validate_locally and not check.dnssec.trust_anchor:
            problems.append((("checks", i, "dnssec", "trust_anchor"), "required when validate_locally is true"))
    return problems


def parse_trust_anchor(text: str) -> tuple[Any, list[Any]]:
    """Parse trust-anchor text: one or more ``<zone> [ttl] [IN] DS|DNSKEY <rdata>`` lines (a ``dsset-``
    file works). Returns (zone as ``dns.name.Name``, rdatas); raises ValueError naming what is wrong."""
    import dns.name
    import dns.rdata
    import dns.rdataclass
    import dns.rdatatype

    zone = None
    rdatas: list[Any] = []
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        try:
            name = dns.name.from_text(parts[0])
            i = 1
            while i < len(parts) and (parts[i].isdigit() or parts[i].upper() == "IN"):
                i += 1
            rdtype = dns.rdatatype.from_text(parts[i].upper()) if i < len(parts) else None
            if rdtype not in (dns.rdatatype.DS, dns.rdatatype.DNSKEY):
                raise ValueError("record type must be DS or DNSKEY")
            rdatas.append(dns.rdata.from_text(dns.rdataclass.IN, rdtype, " ".join(parts[i + 1 :])))
        except Exception as exc:
            raise ValueError(f"trust anchor line {line!r} is not a DS or DNSKEY record: {exc}") from exc
        if zone is not None and name != zone:
            raise ValueError("all trust anchor records must be for the same zone")
        zone = name
    if zone is None:
        raise ValueError("trust anchor has no DS or DNSKEY record")
    return zone, rdatas


def split_host_port(value: str) -> tuple[str, int | None]:
    """Split ``host:port``, ``[v6]:port``, ``v6`` or ``host``; the port is None when absent."""
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    if value.count(":") == 1:
        host, _, port = value.partition(":")
        return host, int(port) if port.isdigit() else None
    return value, None


def parse_config(text: str, source: str = "<config>") -> AgentConfig:
    """Parse and validate a configuration document; raise :class:`ConfigError` listing every problem."""
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, [f"{where}malformed YAML: {problem}"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, ["(top level): must be a mapping with keys agent_id, pop, exporter, checks"])
    try:
        cfg = _ADAPTER.validate_python(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = _clean_loc(tuple(err["loc"]))
            line = _yaml_line(root, loc)
            where = f" (line {line})" if line else ""
            problems.append(f"{_format_path(loc)}: {_describe(err)}{where}")
        raise ConfigError(source, problems) from None
    cross = _cross_checks(cfg)
    if cross:
        raise ConfigError(
            source,
            [
                f"{_format_path(loc)}: {msg}" + (f" (line {ln})" if (ln := _yaml_line(root, loc)) else "")
                for loc, msg in cross
            ],
        )
    return cfg


def load_config(path: str | Path) -> AgentConfig:
    """Read and validate ``path``; raise :class:`ConfigError` naming the file on any problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(p), [f"cannot read: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError:
        raise ConfigError(str(p), ["not UTF-8 text"]) from None
    return parse_config(text, str(p))
