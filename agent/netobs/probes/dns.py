"""DNS probe: one query of any type to a chosen server (or the system resolver) over UDP, TCP or TLS.

Phases: ``connect`` (TCP connect, TCP/TLS only: the kernel's handshake RTT), ``tls`` (handshake,
DNS-over-TLS only: its round trips by the kernel's receive stamps, ``_tlsio.TlsStream``) and ``dns`` (the
query-response exchange: from the query handed to the kernel to the kernel's receive stamp of the reply, as
dig's "Query time"). None of them grows with the agent's own load (a reply that waits in the socket for a
busy loop). A UDP answer with TC set is retried over TCP, and that retry's connect and exchange add to the
same phases.

Decisions, in order (first failure wins):
1. no reply / transport errors: raised, the runner maps them (timeout, refused, TLS, ...);
2. a reply that is not the answer to the query (id, QR/opcode or question differ) -> ``dns_mismatch``;
   a reply that does not parse -> ``protocol_error``;
3. rcode not among ``expect.rcodes`` -> ``dns_rcode`` (``dnssec_invalid`` when the resolver's Extended DNS
   Error says DNSSEC failed, e.g. a bogus zone answered SERVFAIL);
4. ``dnssec.validate_locally`` and the chain is bogus, or ``dnssec.require_authenticated`` and AD is clear
   -> ``dnssec_invalid``;
5. ``expect.min_answers`` / ``answers_match`` / ``authority_match`` -> ``assertion_failed``.

Regexes are searched in each record's text form ``<name> <ttl> IN <type> <data>`` (absolute names, like
dig's output with single spaces). ``min_answers`` counts answer records other than RRSIG.

``DnsResult.dnssec_status``: with ``validate_locally``, the local chain validation (see ``_dns_dnssec``);
otherwise ``bogus`` when the reply carries a DNSSEC Extended DNS Error, ``validated`` when AD is set,
``insecure`` when DNSSEC was asked for (DO or AD) and AD is clear, else ``unchecked``.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import dns.asyncquery
import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset
from dns._asyncbackend import DatagramSocket, StreamSocket  # the base classes dnspython's I/O takes

from netobs.config import DnsCheck, DnsExpect, DnssecConfig, parse_trust_anchor, split_host_port
from netobs.probes._dns_dnssec import validate_chain
from netobs.probes._sockio import DatagramExchange, SocketStream, connect_socket, handshake_rtt_ms
from netobs.probes._tlsio import TlsStream
from netobs.probes.base import Connector, Outcome, ProbeContext, Resolver, SystemResolver, is_ip_literal
from netobs.probes.tls import client_context, tls_info
from netobs.result import DnsRecord, DnsResult, ErrorType, TlsInfo

EDNS_PAYLOAD_BYTES = 1232  # the DNS Flag Day 2020 size: no IP fragmentation on common paths
DEFAULT_PORTS = {"udp": 53, "tcp": 53, "tls": 853}
# Extended DNS Error codes (RFC 8914) that mean DNSSEC validation failed at the resolver.
DNSSEC_EDE_CODES = frozenset({1, 2, 5, 6, 7, 8, 9, 10, 11, 12})


class StreamConn(Protocol):
    """A connected TCP (or TLS) stream to a DNS server, with the kernel's measures of its TCP handshake
    (``connect_ms``) and, after ``start_tls``, of its TLS handshake (``handshake_ms``): None when unknown."""

    connect_ms: float | None
    handshake_ms: float | None

    def close(self) -> None: ...

    def tls(self) -> TlsInfo | None: ...


class DnsNetwork(Protocol):
    """The probe's I/O. Responses are returned with their wire size in bytes. Raises ``OSError``/``ssl``
    errors, ``TimeoutError`` and dnspython's ``BadResponse`` (reply does not match its query) or
    ``DNSException`` (unparseable reply)."""

    async def udp(
        self, query: dns.message.Message, ip: str, port: int, timeout_s: float
    ) -> tuple[dns.message.Message, int, float | None]:
        """The reply, its size, and the exchange's time as the kernel measured it (ms; None when unknown)."""
        ...

    async def connect(self, ip: str, port: int) -> StreamConn: ...

    async def start_tls(self, conn: StreamConn, context: ssl.SSLContext, server_name: str) -> StreamConn: ...

    async def stream_query(
        self, conn: StreamConn, query: dns.message.Message, timeout_s: float
    ) -> tuple[dns.message.Message, int, float | None]:
        """The reply, its size, and the exchange's time as the kernel measured it (ms; None when unknown)."""
        ...


class _StampedDatagram(DatagramSocket):
    """A dnspython datagram socket over ``_sockio.DatagramExchange`` (the reply timed by the kernel's receive
    stamp); remembers the size of the last datagram it received."""

    def __init__(self, exchange: DatagramExchange) -> None:
        super().__init__(exchange.family, socket.SOCK_DGRAM)
        self.exchange = exchange
        self.received_bytes = 0

    async def sendto(self, what: bytes, destination: Any, timeout: float | None) -> int:
        return self.exchange.send(what)

    async def recvfrom(self, size: int, timeout: float | None) -> tuple[bytes, Any]:
        async with asyncio.timeout(timeout):
            data, address = await self.exchange.recv(size)
        self.received_bytes = len(data)
        return data, address

    async def close(self) -> None:
        self.exchange.close()

    async def getsockname(self) -> Any:
        return self.exchange.getsockname()


class _Stream(StreamSocket):
    """A dnspython stream socket over a socket we connected ourselves (so that connect and TLS handshake
    are timed as their own phases), its bytes through the agent's own stream (``SocketStream``, or
    ``TlsStream`` after ``start_tls``), which the kernel's receive stamps time; counts received bytes."""

    def __init__(self, sock: socket.socket, io: SocketStream | TlsStream) -> None:
        super().__init__(sock.family, socket.SOCK_STREAM)
        self.sock = sock
        self.io = io
        self.received_bytes = 0

    async def sendall(self, what: bytes, timeout: float | None) -> None:
        self.io.write(what)
        async with asyncio.timeout(timeout):
            await self.io.drain()

    async def recv(self, size: int, timeout: float | None) -> bytes:
        async with asyncio.timeout(timeout):
            data = await self.io.read(size)
        self.received_bytes += len(data)
        return data

    async def getpeername(self) -> Any:
        return self.sock.getpeername()

    async def getsockname(self) -> Any:
        return self.sock.getsockname()

    async def close(self) -> None:
        self.io.abort()  # the run is measured: no TLS close_notify exchange


class _AsyncioConn:
    def __init__(self, stream: _Stream) -> None:
        self.stream = stream
        self.connect_ms = handshake_rtt_ms(stream.sock)
        self.handshake_ms: float | None = None

    def close(self) -> None:
        self.stream.io.abort()  # closes the socket; no TLS close_notify exchange

    def tls(self) -> TlsInfo | None:
        io = self.stream.io
        if not isinstance(io, TlsStream):
            return None
        return tls_info(io.ssl_object, verified=io.ssl_object.context.verify_mode != ssl.CERT_NONE)


class AsyncioDnsNetwork:
    """Production network: dnspython's async query functions on the agent's own sockets: UDP
    (``_sockio.DatagramExchange``), TCP (``_sockio.SocketStream``) and TLS (``_tlsio.TlsStream``), each timed
    by the kernel's receive stamps."""

    datagram_type: type[_StampedDatagram] = _StampedDatagram

    def __init__(self, connector: Connector | None = None) -> None:
        self.connector: Connector = connector or connect_socket

    async def udp(
        self, query: dns.message.Message, ip: str, port: int, timeout_s: float
    ) -> tuple[dns.message.Message, int, float | None]:
        exchange = DatagramExchange(ip, port, asyncio.get_running_loop())
        async with self.datagram_type(exchange) as sock:
            response = await dns.asyncquery.udp(query, ip, timeout=timeout_s, port=port, sock=sock)
            return response, sock.received_bytes, exchange.reply_ms()

    async def connect(self, ip: str, port: int) -> StreamConn:
        sock = await self.connector(ip, port)
        # The query goes out in one write: Nagle would only hold it behind the handshake's last segment
        # until the server's delayed ACK (~40 ms on Linux), which is the client's artefact, not the server's.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _AsyncioConn(_Stream(sock, SocketStream(sock, asyncio.get_running_loop())))

    async def start_tls(self, conn: StreamConn, context: ssl.SSLContext, server_name: str) -> StreamConn:
        assert isinstance(conn, _AsyncioConn)
        stream = conn.stream
        assert isinstance(stream.io, SocketStream)  # start_tls once, on the connect's stream
        io = TlsStream(stream.io, context, server_name)
        await io.handshake()
        stream.io = io
        conn.handshake_ms = io.handshake_ms
        return conn

    async def stream_query(
        self, conn: StreamConn, query: dns.message.Message, timeout_s: float
    ) -> tuple[dns.message.Message, int, float | None]:
        assert isinstance(conn, _AsyncioConn)
        stream = conn.stream
        stream.received_bytes = 0
        response = await dns.asyncquery.tcp(query, "", timeout=timeout_s, sock=stream)
        # minus the 2-byte length prefix; the query went out in one write, its answer is the latest read
        return response, max(0, stream.received_bytes - 2), stream.io.exchange_ms()


class SystemNameservers:
    """The first ``nameserver`` of resolv.conf (re-read when the file changes); 127.0.0.1 when none,
    as the C library does."""

    def __init__(self, path: str = "/etc/resolv.conf") -> None:
        self.path = path
        self._mtime_ns: int | None = None
        self._servers: list[str] = ["127.0.0.1"]

    def first(self) -> str:
        try:
            mtime_ns = os.stat(self.path).st_mtime_ns
        except OSError:
            return "127.0.0.1"
        if mtime_ns != self._mtime_ns:
            servers = []
            with open(self.path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    parts = line.split()
                    if len(parts) >= 2 and parts[0] == "nameserver":
                        servers.append(parts[1].split("%", 1)[0])
            self._servers = servers or ["127.0.0.1"]
            self._mtime_ns = mtime_ns
        return self._servers[0]


@dataclass(slots=True)
class _Server:
    host: str
    port: int
    label: str  # what DnsResult.server says


def records(section: Iterable[dns.rrset.RRset]) -> list[DnsRecord]:
    """One DnsRecord per resource record of a message section."""
    out = []
    for rrset in section:
        name = rrset.name.to_text()
        type_text = dns.rdatatype.to_text(rrset.rdtype)
        for rdata in rrset:
            out.append(DnsRecord(name=name, type=type_text, ttl=rrset.ttl, data=rdata.to_text()))
    return out


def record_text(record: DnsRecord) -> str:
    """The text form regexes are searched in."""
    return f"{record.name} {record.ttl} IN {record.type} {record.data}"


def resolver_dnssec_status(authenticated: bool, ede_codes: Iterable[int], asked: bool) -> str:
    """DNSSEC status as told by the (validating) resolver that answered."""
    if any(code in DNSSEC_EDE_CODES for code in ede_codes):
        return "bogus"
    if authenticated:
        return "validated"
    return "insecure" if asked else "unchecked"


def evaluate(expect: DnsExpect, dnssec: DnssecConfig, result: DnsResult, dnssec_reason: str | None = None) -> Outcome:
    """The outcome of a parsed, matching reply (decisions 3 to 5 of the module docstring)."""
    if result.rcode not in expect.rcodes:
        accepted = ", ".join(expect.rcodes)
        if result.dnssec_status == "bogus":
            ede = f"EDE {result.extended_error_code}"
            if result.extended_error_text:
                ede += f": {result.extended_error_text}"
            return Outcome.fail(
                ErrorType.DNSSEC,
                f"rcode {result.rcode} (accepted: {accepted}): DNSSEC validation failed at the server ({ede})",
            )
        return Outcome.fail(ErrorType.DNS_RCODE, f"rcode {result.rcode} not accepted ({accepted})")
    if dnssec.validate_locally and result.dnssec_status == "bogus":
        return Outcome.fail(ErrorType.DNSSEC, f"local DNSSEC validation failed: {dnssec_reason or 'bogus'}")
    if dnssec.require_authenticated and not result.authenticated_data:
        return Outcome.fail(ErrorType.DNSSEC, "answer not authenticated (AD flag clear)")
    answers = [r for r in result.answers if r.type != "RRSIG"]
    if len(answers) < expect.min_answers:
        return Outcome.fail(
            ErrorType.ASSERTION, f"{len(answers)} answer records, expected at least {expect.min_answers}"
        )
    for section, patterns in (("answer", expect.answers_match), ("authority", expect.authority_match)):
        texts = [record_text(r) for r in (result.answers if section == "answer" else result.authority)]
        for pattern in patterns:
            if not any(re.search(pattern, text) for text in texts):
                return Outcome.fail(ErrorType.ASSERTION, f"no {section} record matches {pattern!r}")
    return Outcome.ok()


class DnsProbe:
    check_type: ClassVar[str] = "dns"
    traced: ClassVar[bool] = True

    def __init__(
        self,
        network: DnsNetwork | None = None,
        nameservers: SystemNameservers | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self.network: DnsNetwork = network or AsyncioDnsNetwork()
        self.nameservers = nameservers or SystemNameservers()
        self.resolver = resolver or SystemResolver()
        # Per-process caches keyed by config values, so a run allocates only its query and reply.
        self._contexts: dict[tuple[bool, str | None], ssl.SSLContext] = {}
        self._names: dict[str, dns.name.Name] = {}
        self._anchors: dict[str, tuple[dns.name.Name, list[Any]]] = {}

    def _server(self, check: DnsCheck) -> _Server:
        default_port = DEFAULT_PORTS[check.transport]
        if check.server is None:
            return _Server(self.nameservers.first(), default_port, "system")
        host, port = split_host_port(check.server)
        port = port or default_port
        label = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return _Server(host, port, label)

    def _qname(self, target: str) -> dns.name.Name:
        name = self._names.get(target)
        if name is None:
            if len(self._names) > 10_000:
                self._names.clear()
            name = self._names[target] = dns.name.from_text(target)
        return name

    def _tls_context(self, check: DnsCheck) -> ssl.SSLContext:
        key = (check.tls_verify, check.ca_file)
        context = self._contexts.get(key)
        if context is None:
            context = self._contexts[key] = client_context(check.tls_verify, check.ca_file, alpn=["dot"])
        return context

    def _make_query(
        self, check: DnsCheck, qname: dns.name.Name, rdtype: dns.rdatatype.RdataType, dnssec_ok: bool
    ) -> dns.message.Message:
        query = dns.message.make_query(qname, rdtype, use_edns=0, want_dnssec=dnssec_ok, payload=EDNS_PAYLOAD_BYTES)
        if not check.recursion_desired:
            query.flags &= ~dns.flags.RD
        if dnssec_ok or check.dnssec.require_authenticated:
            query.flags |= dns.flags.AD  # RFC 6840 5.7: ask for the AD bit
        return query

    async def run(self, ctx: ProbeContext) -> Outcome:
        check: DnsCheck = ctx.check
        server = self._server(check)
        qname = self._qname(ctx.target)
        rdtype = dns.rdatatype.from_text(check.record_type)
        result = DnsResult(
            server=server.label,
            transport=check.transport,
            question_name=qname.to_text(),
            question_type=check.record_type,
        )
        ctx.detail = result
        ip = server.host
        if not is_ip_literal(ip):  # a server given by name: resolved outside the timed phases
            ip = (await self.resolver.resolve(ip, "auto"))[0]
        ctx.resolved_ip = ip
        dnssec = check.dnssec
        dnssec_ok = dnssec.request or dnssec.validate_locally
        query = self._make_query(check, qname, rdtype, dnssec_ok)
        exchange = _Exchange(self, ctx, check, ip, server.port)
        try:
            try:
                response, size = await exchange.query(query, record=True)
                result.response_size_bytes = size
                if response.flags & dns.flags.TC and check.transport == "udp":
                    result.truncated = True
                    response, size = await exchange.query(query, record=True, force_tcp=True)
                    result.response_size_bytes = size
                _fill(result, response)
                ede = response.extended_errors()
                status = resolver_dnssec_status(
                    result.authenticated_data is True,
                    [e.code for e in ede],
                    asked=dnssec_ok or dnssec.require_authenticated,
                )
                # With local validation the status is ours; until it has run only a resolver's "bogus" counts.
                result.dnssec_status = "unchecked" if dnssec.validate_locally and status != "bogus" else status
                reason = None
                if dnssec.validate_locally and result.rcode in check.expect.rcodes:
                    assert dnssec.trust_anchor is not None  # config validation guarantees it
                    anchor = self._anchors.get(dnssec.trust_anchor)
                    if anchor is None:
                        anchor = self._anchors[dnssec.trust_anchor] = parse_trust_anchor(dnssec.trust_anchor)
                    result.dnssec_status, reason = await validate_chain(
                        response, qname, rdtype, anchor_zone=anchor[0], anchor=anchor[1], fetch=exchange.fetch
                    )
            except dns.query.BadResponse:
                return Outcome.fail(
                    ErrorType.DNS_MISMATCH, "reply does not match the query (id, flags or question differ)"
                )
            except dns.query.UnexpectedSource as exc:
                return Outcome.fail(ErrorType.DNS_MISMATCH, f"reply from an unexpected address: {exc}")
            except dns.exception.Timeout as exc:
                raise TimeoutError(str(exc)) from exc
            except dns.exception.DNSException as exc:
                return Outcome.fail(ErrorType.PROTOCOL, f"malformed DNS reply: {type(exc).__name__}: {exc}")
        finally:
            exchange.close()
        return evaluate(check.expect, dnssec, result, reason)


def _fill(result: DnsResult, response: dns.message.Message) -> None:
    result.rcode = dns.rcode.to_text(response.rcode())
    result.answers = records(response.answer)
    result.authority = records(response.authority)
    result.authenticated_data = bool(response.flags & dns.flags.AD)
    result.flags = dns.flags.to_text(response.flags).split()
    ede = response.extended_errors()
    if ede:
        result.extended_error_code = int(ede[0].code)
        result.extended_error_text = ede[0].text


class _Exchange:
    """The queries of one run to one server: opens the stream lazily (timing connect/tls), reuses it
    for the DNSSEC chain queries, and closes it at the end."""

    def __init__(self, probe: DnsProbe, ctx: ProbeContext, check: DnsCheck, ip: str, port: int) -> None:
        self.probe = probe
        self.ctx = ctx
        self.check = check
        self.ip = ip
        self.port = port
        self.conn: StreamConn | None = None

    async def _stream(self) -> StreamConn:
        if self.conn is not None:
            return self.conn
        network = self.probe.network
        port = self.port
        peer = {"network.peer.address": self.ip, "network.peer.port": port}
        connect = self.ctx.phase("connect", **peer)
        with connect:
            conn = await network.connect(self.ip, port)
            connect.measured(conn.connect_ms)
        self.conn = conn
        if self.check.transport == "tls":
            check = self.check
            server_name = check.tls_server_name or self.ip
            tls = self.ctx.phase("tls", **{"server.address": server_name})
            with tls:
                self.conn = await network.start_tls(conn, self.probe._tls_context(check), server_name)
                tls.measured(self.conn.handshake_ms)
            assert isinstance(self.ctx.detail, DnsResult)
            self.ctx.detail.tls = self.conn.tls()
        return self.conn

    async def query(
        self, query: dns.message.Message, record: bool = False, force_tcp: bool = False
    ) -> tuple[dns.message.Message, int]:
        network = self.probe.network
        timeout_s = max(self.ctx.remaining_s(), 0.001)
        if self.check.transport == "udp" and not force_tcp:
            if not record:
                response, size, _ = await network.udp(query, self.ip, self.port, timeout_s)
                return response, size
            exchange = self.ctx.phase("dns", **{"dns.question.name": self.ctx.target})
            with exchange:
                response, size, kernel_ms = await network.udp(query, self.ip, self.port, timeout_s)
                exchange.measured(kernel_ms)
            return response, size
        conn = await self._stream()
        if not record:
            response, size, _ = await network.stream_query(conn, query, timeout_s)
            return response, size
        exchange = self.ctx.phase("dns", **{"dns.question.name": self.ctx.target})
        with exchange:
            response, size, kernel_ms = await network.stream_query(conn, query, timeout_s)
            exchange.measured(kernel_ms)
        return response, size

    async def fetch(self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> dns.message.Message:
        """A DNSSEC helper query (DNSKEY, DS) on the same server and transport; not timed as a phase."""
        query = self.probe._make_query(self.check, name, rdtype, dnssec_ok=True)
        response, _ = await self.query(query, force_tcp=self.conn is not None)
        return response

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
