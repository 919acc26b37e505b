"""DNS probe decisions with a fake network: rcode, assertions, DNSSEC status, phases, error mapping."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rrset
import pytest

from netobs.config import DnsCheck, DnsExpect, DnssecConfig
from netobs.probes.dns import DnsProbe, SystemNameservers, evaluate, records, resolver_dnssec_status
from netobs.result import DnsRecord, DnsResult, ProbeResult, TlsInfo
from netobs.runner import Runner

Responder = Callable[[dns.message.Message], dns.message.Message]


class FakeConn:
    def __init__(self) -> None:
        self.closed = False
        self.tls_done = False
        self.connect_ms: float | None = None
        self.handshake_ms: float | None = None

    def close(self) -> None:
        self.closed = True

    def tls(self) -> TlsInfo | None:
        return TlsInfo(version="TLSv1.3") if self.tls_done else None


class FakeNetwork:
    """Answers with ``udp``/``stream`` responders; records what was asked."""

    def __init__(self, udp: Responder | None = None, stream: Responder | None = None) -> None:
        self.udp_responder = udp
        self.stream_responder = stream
        self.calls: list[tuple[str, Any]] = []
        self.conns: list[FakeConn] = []

    async def udp(
        self, query: dns.message.Message, ip: str, port: int, timeout_s: float
    ) -> tuple[dns.message.Message, int, float | None]:
        self.calls.append(("udp", (ip, port, query)))
        assert self.udp_responder is not None
        response = self.udp_responder(query)
        return response, len(response.to_wire()), None

    async def connect(self, ip: str, port: int) -> FakeConn:
        self.calls.append(("connect", (ip, port)))
        conn = FakeConn()
        self.conns.append(conn)
        return conn

    async def start_tls(self, conn: FakeConn, context: ssl.SSLContext, server_name: str) -> FakeConn:
        self.calls.append(("tls", server_name))
        conn.tls_done = True
        return conn

    async def stream_query(
        self, conn: FakeConn, query: dns.message.Message, timeout_s: float
    ) -> tuple[dns.message.Message, int, float | None]:
        self.calls.append(("stream", query))
        assert self.stream_responder is not None
        response = self.stream_responder(query)
        return response, len(response.to_wire()), None


def answer(
    *rrs: str,
    rcode: int = dns.rcode.NOERROR,
    ad: bool = False,
    tc: bool = False,
    authority: tuple[str, ...] = (),
    ede: tuple[int, str] | None = None,
) -> Responder:
    """A responder that answers any query with these records ("name ttl type data")."""

    def respond(query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.set_rcode(rcode)
        for section, texts in ((response.answer, rrs), (response.authority, authority)):
            for text in texts:
                name, ttl, rdtype, data = text.split(" ", 3)
                section.append(dns.rrset.from_text(name, int(ttl), "IN", rdtype, data))
        if ad:
            response.flags |= dns.flags.AD
        if tc:
            response.flags |= dns.flags.TC
        if ede is not None:
            response.use_edns(0, options=[dns.edns.EDEOption(ede[0], ede[1])])
        return response

    return respond


def raising(exc: BaseException) -> Responder:
    def respond(query: dns.message.Message) -> dns.message.Message:
        raise exc

    return respond


def make_check(**kwargs: Any) -> DnsCheck:
    base: dict[str, Any] = {"name": "d", "type": "dns", "targets": ["www.example.test"], "server": "192.0.2.53"}
    base.update(kwargs)
    return DnsCheck.model_validate(base)


async def run(check: DnsCheck, network: FakeNetwork, nameservers: SystemNameservers | None = None) -> ProbeResult:
    probe = DnsProbe(network=network, nameservers=nameservers)
    return await Runner("a", "p", {"dns": probe}).run(check, check.targets[0])


A_WWW = "www.example.test. 300 A 192.0.2.1"


@pytest.mark.parametrize(
    ("check_kwargs", "responder", "error_type", "message_part"),
    [
        ({}, answer(A_WWW), None, None),
        ({}, answer(rcode=dns.rcode.NXDOMAIN), "dns_rcode", "NXDOMAIN"),
        ({"expect": {"rcodes": ["nxdomain"]}}, answer(rcode=dns.rcode.NXDOMAIN), None, None),
        ({"expect": {"min_answers": 2}}, answer(A_WWW), "assertion_failed", "1 answer records"),
        ({"expect": {"answers_match": [r"IN A 192\.0\.2\.1$"]}}, answer(A_WWW), None, None),
        ({"expect": {"answers_match": [r"192\.0\.2\.9"]}}, answer(A_WWW), "assertion_failed", "192"),
        (
            {"expect": {"authority_match": [r"SOA ns\."]}},
            answer(authority=("example.test. 60 SOA ns.example.test. h.example.test. 1 2 3 4 5",)),
            None,
            None,
        ),
        ({"expect": {"authority_match": ["SOA"]}}, answer(A_WWW), "assertion_failed", "authority"),
        ({"dnssec": {"require_authenticated": True}}, answer(A_WWW), "dnssec_invalid", "AD flag clear"),
        ({"dnssec": {"require_authenticated": True}}, answer(A_WWW, ad=True), None, None),
        (
            {},
            answer(rcode=dns.rcode.SERVFAIL, ede=(dns.edns.EDECode.DNSSEC_BOGUS, "sig")),
            "dnssec_invalid",
            "EDE 6: sig",
        ),
        ({}, answer(rcode=dns.rcode.SERVFAIL, ede=(dns.edns.EDECode.NOT_READY, "")), "dns_rcode", "SERVFAIL"),
        ({}, raising(dns.query.BadResponse()), "dns_mismatch", "does not match"),
        ({}, raising(dns.message.ShortHeader()), "protocol_error", "ShortHeader"),
        ({}, raising(dns.exception.Timeout(timeout=1.0)), "timeout", "timeout_s"),
        ({}, raising(ConnectionRefusedError()), "connection_refused", "refused"),
    ],
)
async def test_decisions(
    check_kwargs: dict[str, Any], responder: Responder, error_type: str | None, message_part: str | None
) -> None:
    result = await run(make_check(**check_kwargs), FakeNetwork(udp=responder))
    assert result.error_type == error_type, result.error_message
    assert result.success is (error_type is None)
    if message_part is not None:
        assert result.error_message is not None
        assert message_part in result.error_message


async def test_success_record_fields() -> None:
    rrsig = "www.example.test. 300 RRSIG A 13 3 300 20300101000000 20200101000000 1 example.test. AAAA"
    result = await run(
        make_check(dnssec={"request": True}, expect={"min_answers": 1}),
        FakeNetwork(udp=answer(A_WWW, rrsig, ad=True)),
    )
    assert result.success, result.error_message
    d = result.dns
    assert d is not None
    assert (d.server, d.transport, d.question_name, d.question_type) == (
        "192.0.2.53:53",
        "udp",
        "www.example.test.",
        "A",
    )
    assert d.rcode == "NOERROR"
    assert [(r.type, r.data) for r in d.answers] == [("A", "192.0.2.1"), ("RRSIG", rrsig.split(" ", 3)[3])]
    assert d.authenticated_data is True
    assert d.dnssec_status == "validated"
    assert "AD" in d.flags
    assert d.response_size_bytes is not None and d.response_size_bytes > 40
    assert result.resolved_ip == "192.0.2.53"
    assert set(result.phases_ms) == {"dns"}


@pytest.mark.parametrize(
    ("transport", "server", "expected_calls", "phases", "port"),
    [
        ("udp", "192.0.2.53", ["udp"], {"dns"}, 53),
        ("tcp", "192.0.2.53:5353", ["connect", "stream"], {"connect", "dns"}, 5353),
        ("tls", "192.0.2.53", ["connect", "tls", "stream"], {"connect", "tls", "dns"}, 853),
        ("tls", "[2001:db8::1]:8853", ["connect", "tls", "stream"], {"connect", "tls", "dns"}, 8853),
    ],
)
async def test_transports_and_phases(
    transport: str, server: str, expected_calls: list[str], phases: set[str], port: int
) -> None:
    network = FakeNetwork(udp=answer(A_WWW), stream=answer(A_WWW))
    result = await run(make_check(transport=transport, server=server, tls_server_name="dns.test"), network)
    assert result.success, result.error_message
    assert [c[0] for c in network.calls] == expected_calls
    assert set(result.phases_ms) == phases
    assert result.dns is not None
    assert result.dns.server.endswith(f":{port}")
    assert all(conn.closed for conn in network.conns)
    if transport == "tls":
        assert ("tls", "dns.test") in network.calls
        assert result.dns.tls == TlsInfo(version="TLSv1.3")


async def test_truncated_udp_retries_over_tcp() -> None:
    network = FakeNetwork(udp=answer(tc=True), stream=answer(A_WWW, A_WWW.replace("2.1", "2.2")))
    result = await run(make_check(expect={"min_answers": 2}), network)
    assert result.success, result.error_message
    assert [c[0] for c in network.calls] == ["udp", "connect", "stream"]
    assert result.dns is not None and result.dns.truncated
    assert len(result.dns.answers) == 2
    assert set(result.phases_ms) == {"dns", "connect"}


@pytest.mark.parametrize(
    ("check_kwargs", "do", "ad", "rd"),
    [
        ({}, False, False, True),
        ({"recursion_desired": False}, False, False, False),
        ({"dnssec": {"request": True}}, True, True, True),
        ({"dnssec": {"require_authenticated": True}}, False, True, True),
    ],
)
async def test_query_flags(check_kwargs: dict[str, Any], do: bool, ad: bool, rd: bool) -> None:
    network = FakeNetwork(udp=answer(A_WWW, ad=ad))
    await run(make_check(record_type="mx", **check_kwargs), network)
    query = network.calls[0][1][2]
    assert isinstance(query, dns.message.Message)
    assert query.question[0].rdtype == dns.rdatatype.MX
    assert bool(query.ednsflags & dns.flags.DO) is do
    assert bool(query.flags & dns.flags.AD) is ad
    assert bool(query.flags & dns.flags.RD) is rd
    assert query.payload == 1232


@pytest.mark.parametrize(
    ("resolv_conf", "expected_ip"),
    [
        ("nameserver 198.51.100.7\nnameserver 198.51.100.8\n", "198.51.100.7"),
        ("# comment\nsearch x\nnameserver fe80::1%eth0\n", "fe80::1"),
        ("search only\n", "127.0.0.1"),
    ],
)
async def test_system_resolver(tmp_path: Path, resolv_conf: str, expected_ip: str) -> None:
    path = tmp_path / "resolv.conf"
    path.write_text(resolv_conf)
    network = FakeNetwork(udp=answer(A_WWW))
    result = await run(make_check(server=None), network, SystemNameservers(str(path)))
    assert result.success
    assert result.dns is not None and result.dns.server == "system"
    assert result.resolved_ip == expected_ip
    assert network.calls[0][1][:2] == (expected_ip, 53)


@pytest.mark.parametrize(
    ("ad", "ede", "asked", "status"),
    [
        (False, [], False, "unchecked"),
        (False, [], True, "insecure"),
        (True, [], False, "validated"),
        (True, [], True, "validated"),
        (False, [6], True, "bogus"),
        (False, [7], False, "bogus"),
        (False, [18], True, "insecure"),  # EDE 18 "Prohibited" says nothing about DNSSEC
    ],
)
def test_resolver_dnssec_status(ad: bool, ede: list[int], asked: bool, status: str) -> None:
    assert resolver_dnssec_status(ad, ede, asked) == status


ANCHOR = "t. DS 1 13 2 " + "AB" * 32


def _result(rcode: str = "NOERROR", status: str = "unchecked", ad: bool = False, n: int = 1) -> DnsResult:
    answers = [DnsRecord("a.test.", "A", 60, f"192.0.2.{i}") for i in range(n)]
    answers.append(DnsRecord("a.test.", "RRSIG", 60, "A 13 2 60 ..."))
    return DnsResult(
        "s", "udp", "a.test.", "A", rcode=rcode, answers=answers, authenticated_data=ad, dnssec_status=status
    )


@pytest.mark.parametrize(
    ("expect", "dnssec", "result", "error_type"),
    [
        ({}, {}, _result(), None),
        ({}, {"validate_locally": True, "trust_anchor": ANCHOR}, _result(status="insecure"), None),
        ({}, {"validate_locally": True, "trust_anchor": ANCHOR}, _result(status="bogus"), "dnssec_invalid"),
        ({}, {}, _result(status="bogus"), None),  # the resolver's opinion fails only through the rcode
        ({"rcodes": ["NOERROR"]}, {}, _result(rcode="SERVFAIL", status="bogus"), "dnssec_invalid"),
        ({"rcodes": ["SERVFAIL"]}, {}, _result(rcode="SERVFAIL"), None),
        ({"min_answers": 2}, {}, _result(n=1), "assertion_failed"),  # the RRSIG does not count
        ({"min_answers": 2}, {}, _result(n=2), None),
        ({"answers_match": ["RRSIG A 13"]}, {}, _result(), None),
        ({}, {"require_authenticated": True}, _result(ad=True, rcode="NXDOMAIN"), "dns_rcode"),
    ],
)
def test_evaluate(expect: dict[str, Any], dnssec: dict[str, Any], result: DnsResult, error_type: str | None) -> None:
    outcome = evaluate(DnsExpect.model_validate(expect), DnssecConfig.model_validate(dnssec), result, "why")
    assert outcome.error_type == error_type
    assert outcome.success is (error_type is None)


def test_records_text_form() -> None:
    rrset = dns.rrset.from_text("mx.test.", 30, "IN", "MX", "10 mail.test.", "20 backup.test.")
    assert records([rrset]) == [
        DnsRecord("mx.test.", "MX", 30, "10 mail.test."),
        DnsRecord("mx.test.", "MX", 30, "20 backup.test."),
    ]
