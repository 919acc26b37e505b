"""Local DNSSEC chain validation on zones signed in the test (dnspython + cryptography), no network."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import dns.dnssec
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from netobs.config import parse_trust_anchor
from netobs.probes._dns_dnssec import validate_chain

ALG = dns.dnssec.Algorithm.ECDSAP256SHA256
NOW = time.time()


@dataclass
class Zone:
    """A signed zone: one KSK signs the DNSKEY RRset, one ZSK signs the rest."""

    origin: dns.name.Name
    ksk_private: Any = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    zsk_private: Any = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))

    @property
    def ksk(self) -> Any:
        return dns.dnssec.make_dnskey(self.ksk_private.public_key(), ALG, flags=257)

    @property
    def zsk(self) -> Any:
        return dns.dnssec.make_dnskey(self.zsk_private.public_key(), ALG, flags=256)

    def dnskeys(self) -> dns.rrset.RRset:
        return dns.rrset.from_rdata(self.origin, 3600, self.ksk, self.zsk)

    def ds(self) -> Any:
        return dns.dnssec.make_ds(self.origin, self.ksk, "SHA256")

    def sign(self, rrset: dns.rrset.RRset, with_ksk: bool = False, expired: bool = False) -> dns.rrset.RRset:
        private, key = (self.ksk_private, self.ksk) if with_ksk else (self.zsk_private, self.zsk)
        inception, expiration = (NOW - 7200, NOW - 3600) if expired else (NOW - 3600, NOW + 86400)
        sig = dns.dnssec.sign(rrset, private, self.origin, key, inception=inception, expiration=expiration)
        return dns.rrset.from_rdata(rrset.name, rrset.ttl, sig)


def message(qname: str, rdtype: str, *rrsets: dns.rrset.RRset, rcode: int = dns.rcode.NOERROR) -> dns.message.Message:
    query = dns.message.make_query(qname, rdtype, want_dnssec=True)
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    response.answer.extend(rrsets)
    return response


class Server:
    """Serves DNSKEY/DS answers of a set of zones, like an authoritative server would (via Fetch)."""

    def __init__(self) -> None:
        self.answers: dict[tuple[dns.name.Name, int], dns.message.Message] = {}
        self.asked: list[str] = []

    def add(self, name: dns.name.Name, rdtype: int, *rrsets: dns.rrset.RRset) -> None:
        self.answers[(name, rdtype)] = message(name.to_text(), dns.rdatatype.to_text(rdtype), *rrsets)

    async def fetch(self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> dns.message.Message:
        self.asked.append(f"{name} {dns.rdatatype.to_text(rdtype)}")
        found = self.answers.get((name, rdtype))
        if found is None:
            return message(name.to_text(), dns.rdatatype.to_text(rdtype), rcode=dns.rcode.NXDOMAIN)
        return found


def build(case: str) -> tuple[dns.message.Message, str, Server]:
    """(response to check, trust anchor text, server) for one scenario."""
    parent = Zone(dns.name.from_text("test."))
    child = Zone(dns.name.from_text("good.test."))
    other = Zone(dns.name.from_text("good.test."))  # same name, different keys
    server = Server()
    a = dns.rrset.from_text("www.good.test.", 300, "IN", "A", "192.0.2.1")
    a_sig = child.sign(a)
    dnskeys = child.dnskeys()
    server.add(child.origin, dns.rdatatype.DNSKEY, dnskeys, child.sign(dnskeys, with_ksk=True))
    parent_keys = parent.dnskeys()
    server.add(parent.origin, dns.rdatatype.DNSKEY, parent_keys, parent.sign(parent_keys, with_ksk=True))
    ds = dns.rrset.from_rdata(child.origin, 3600, child.ds())
    server.add(child.origin, dns.rdatatype.DS, ds, parent.sign(ds))
    anchor = f"good.test. IN DS {child.ds().to_text()}"
    response = message("www.good.test.", "A", a, a_sig)
    if case == "anchor_dnskey":
        anchor = f"good.test. 3600 IN DNSKEY {child.ksk.to_text()}"
    elif case == "tampered":
        response = message("www.good.test.", "A", dns.rrset.from_text(a.name, 300, "IN", "A", "192.0.2.66"), a_sig)
    elif case == "expired":
        response = message("www.good.test.", "A", a, child.sign(a, expired=True))
    elif case == "no_rrsig":
        response = message("www.good.test.", "A", a)
    elif case == "wrong_anchor":
        anchor = f"good.test. IN DS {other.ds().to_text()}"
    elif case == "zsk_signs_dnskey":  # the DNSKEY RRset is signed only by the key the anchor does not name
        server.add(child.origin, dns.rdatatype.DNSKEY, dnskeys, child.sign(dnskeys))
    elif case in ("chain", "chain_bad_ds", "chain_dnskey_servfail"):
        anchor = f"test. IN DS {parent.ds().to_text()}"
        if case == "chain_bad_ds":
            bad = dns.rrset.from_rdata(child.origin, 3600, other.ds())
            server.add(child.origin, dns.rdatatype.DS, bad, parent.sign(bad))
        if case == "chain_dnskey_servfail":
            server.answers[(child.origin, dns.rdatatype.DNSKEY)] = message(
                "good.test.", "DNSKEY", rcode=dns.rcode.SERVFAIL
            )
    elif case == "outside":
        response = message("www.elsewhere.example.", "A")
    elif case == "nxdomain":
        soa = dns.rrset.from_text("good.test.", 60, "IN", "SOA", "ns.good.test. h.good.test. 1 2 3 4 60")
        nsec = dns.rrset.from_text("good.test.", 60, "IN", "NSEC", "www.good.test. SOA NS DNSKEY NSEC RRSIG")
        response = message("nope.good.test.", "A", rcode=dns.rcode.NXDOMAIN)
        response.authority.extend([soa, child.sign(soa), nsec, child.sign(nsec)])
    elif case == "nxdomain_unsigned":
        soa = dns.rrset.from_text("good.test.", 60, "IN", "SOA", "ns.good.test. h.good.test. 1 2 3 4 60")
        response = message("nope.good.test.", "A", rcode=dns.rcode.NXDOMAIN)
        response.authority.append(soa)
    return response, anchor, server


@pytest.mark.parametrize(
    ("case", "status", "reason_part", "asked"),
    [
        ("valid", "validated", None, ["good.test. DNSKEY"]),
        ("anchor_dnskey", "validated", None, ["good.test. DNSKEY"]),
        ("chain", "validated", None, ["good.test. DNSKEY", "good.test. DS", "test. DNSKEY"]),
        ("nxdomain", "validated", None, ["good.test. DNSKEY"]),
        ("outside", "insecure", "outside the trust anchor", []),
        ("tampered", "bogus", "www.good.test. A", ["good.test. DNSKEY"]),
        ("expired", "bogus", "expired", ["good.test. DNSKEY"]),
        ("no_rrsig", "bogus", "no RRSIG for www.good.test. A", []),
        ("wrong_anchor", "bogus", "matches the trust anchor", ["good.test. DNSKEY"]),
        ("zsk_signs_dnskey", "bogus", "good.test. DNSKEY", ["good.test. DNSKEY"]),
        ("chain_bad_ds", "bogus", "matches the DS records of good.test.", None),
        ("chain_dnskey_servfail", "bogus", "rcode SERVFAIL", ["good.test. DNSKEY"]),
        ("nxdomain_unsigned", "bogus", "no RRSIG for good.test. SOA", []),
    ],
)
async def test_validate_chain(case: str, status: str, reason_part: str | None, asked: list[str] | None) -> None:
    response, anchor_text, server = build(case)
    anchor_zone, anchor = parse_trust_anchor(anchor_text)
    question = response.question[0]
    got_status, reason = await validate_chain(
        response, question.name, question.rdtype, anchor_zone=anchor_zone, anchor=anchor, fetch=server.fetch
    )
    assert got_status == status, reason
    if reason_part is None:
        assert reason is None
    else:
        assert reason is not None and reason_part in reason
    if asked is not None:
        assert server.asked == asked


@pytest.mark.parametrize(
    ("text", "error_part"),
    [
        ("good.test. IN A 192.0.2.1", "must be DS or DNSKEY"),
        ("", "no DS or DNSKEY record"),
        ("a.test. DS 1 13 2 " + "AB" * 32 + "\nb.test. DS 1 13 2 " + "AB" * 32, "same zone"),
        ("good.test. DS 1 13 2 zz", "not a DS or DNSKEY record"),
    ],
)
def test_parse_trust_anchor_rejects(text: str, error_part: str) -> None:
    with pytest.raises(ValueError, match=error_part):
        parse_trust_anchor(text)


def test_parse_trust_anchor_dsset_file() -> None:
    text = "; dsset\ngood.test.\t\tIN DS 1 13 2 " + "AB" * 32 + "\ngood.test. 3600 IN DS 2 13 4 " + "CD" * 48 + "\n"
    zone, rdatas = parse_trust_anchor(text)
    assert zone == dns.name.from_text("good.test.")
    assert [r.key_tag for r in rdatas] == [1, 2]
