"""Local DNSSEC validation of one reply against a configured trust anchor.

Theory of operation. The reply's RRsets are checked against their RRSIGs with the signer zone's DNSKEY
RRset; that DNSKEY RRset is trusted when it is self-signed by a key that the trust anchor names (anchor
zone) or that a DS record of the zone names, and that DS RRset is in turn validated with the parent
zone's keys, recursively, until the anchor zone is reached (at most ``MAX_CHAIN_DEPTH`` zones). DNSKEY
and DS records are fetched from the same server and transport as the checked query (``Fetch``).

Statuses: ``validated`` (every checked RRset verified up to the anchor), ``insecure`` (the name is not
at or under the anchor's zone, so the anchor says nothing about it), ``bogus`` (anything else: a missing
or failing signature, expired signatures, no key matching the anchor or DS, a broken chain).

Limits, stated: for a negative answer (NXDOMAIN or NODATA) the signatures of the SOA and NSEC/NSEC3
records of the authority section are verified, but not that the NSEC records cover the name; an unsigned
delegation under the anchor is reported ``bogus`` (insecure delegations are not proven).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import dns.dnssec
import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdataset
import dns.rdatatype
import dns.rrset

MAX_CHAIN_DEPTH = 8
# Record types of the authority section that carry a signed denial of existence.
_DENIAL_TYPES = (dns.rdatatype.SOA, dns.rdatatype.NSEC, dns.rdatatype.NSEC3)

Fetch = Callable[[dns.name.Name, dns.rdatatype.RdataType], Awaitable[dns.message.Message]]


class Bogus(Exception):
    """The chain does not validate; the message says where."""


def _find(section: list[dns.rrset.RRset], name: dns.name.Name, rdtype: int) -> dns.rrset.RRset | None:
    for rrset in section:
        if rrset.name == name and rrset.rdtype == rdtype:
            return rrset
    return None


def _sigs(section: list[dns.rrset.RRset], rrset: dns.rrset.RRset) -> dns.rrset.RRset:
    for candidate in section:
        if (
            candidate.name == rrset.name
            and candidate.rdtype == dns.rdatatype.RRSIG
            and candidate.covers == rrset.rdtype
        ):
            return candidate
    raise Bogus(f"no RRSIG for {rrset.name} {dns.rdatatype.to_text(rrset.rdtype)}")


def _verify(rrset: dns.rrset.RRset, sigs: dns.rrset.RRset, zone: dns.name.Name, keys: Any) -> None:
    """Pass when one signature verifies; otherwise say why each failed (expired, bad signature, ...)."""
    reasons: list[str] = []
    for rrsig in sigs:
        try:
            dns.dnssec.validate_rrsig(rrset, rrsig, {zone: keys})
            return
        except dns.exception.DNSException as exc:  # ValidationFailure, UnsupportedAlgorithm, DeniedByPolicy
            reason = f"key {rrsig.key_tag}: {exc}"
            if reason not in reasons:
                reasons.append(reason)
    what = f"{rrset.name} {dns.rdatatype.to_text(rrset.rdtype)}"
    raise Bogus(f"{what}: no signature verifies ({'; '.join(reasons) or 'no RRSIG'})")


def _key_matches_ds(zone: dns.name.Name, key: Any, ds: Any) -> bool:
    if dns.dnssec.key_id(key) != ds.key_tag or key.algorithm != ds.algorithm:
        return False
    try:
        return bool(dns.dnssec.make_ds(zone, key, ds.digest_type) == ds)
    except dns.exception.DNSException:
        return False


class _Chain:
    def __init__(self, anchor_zone: dns.name.Name, anchor: list[Any], fetch: Fetch) -> None:
        self.anchor_zone = anchor_zone
        self.anchor = anchor
        self.fetch = fetch
        self.trusted: dict[dns.name.Name, dns.rdataset.Rdataset] = {}

    async def _answer(self, name: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> dns.message.Message:
        response = await self.fetch(name, rdtype)
        if response.rcode() != dns.rcode.NOERROR:
            raise Bogus(f"{name} {dns.rdatatype.to_text(rdtype)} query: rcode {dns.rcode.to_text(response.rcode())}")
        return response

    def _matches_anchor(self, zone: dns.name.Name, key: Any, trusted_by: list[Any]) -> bool:
        for item in trusted_by:
            if item.rdtype == dns.rdatatype.DNSKEY and item == key:
                return True
            if item.rdtype == dns.rdatatype.DS and _key_matches_ds(zone, key, item):
                return True
        return False

    async def keys(self, zone: dns.name.Name, depth: int = 0) -> dns.rdataset.Rdataset:
        """The validated DNSKEY RRset of ``zone``; raises Bogus."""
        cached = self.trusted.get(zone)
        if cached is not None:
            return cached
        if depth > MAX_CHAIN_DEPTH:
            raise Bogus(f"chain longer than {MAX_CHAIN_DEPTH} zones at {zone}")
        if not zone.is_subdomain(self.anchor_zone):
            raise Bogus(f"signer {zone} is outside the trust anchor {self.anchor_zone}")
        response = await self._answer(zone, dns.rdatatype.DNSKEY)
        dnskeys = _find(response.answer, zone, dns.rdatatype.DNSKEY)
        if dnskeys is None:
            raise Bogus(f"no DNSKEY records for {zone}")
        dnskey_sigs = _sigs(response.answer, dnskeys)
        if zone == self.anchor_zone:
            trusted_by: list[Any] = list(self.anchor)
            what = "the trust anchor"
        else:
            ds_response = await self._answer(zone, dns.rdatatype.DS)
            ds_set = _find(ds_response.answer, zone, dns.rdatatype.DS)
            if ds_set is None:
                raise Bogus(f"no DS records for {zone} (insecure delegations are not followed)")
            ds_sigs = _sigs(ds_response.answer, ds_set)
            parent = ds_sigs[0].signer
            if zone == parent or not zone.is_subdomain(parent):
                raise Bogus(f"DS of {zone} signed by {parent}, not by a parent zone")
            _verify(ds_set, ds_sigs, parent, await self.keys(parent, depth + 1))
            trusted_by = list(ds_set)
            what = f"the DS records of {zone}"
        matching = [key for key in dnskeys if self._matches_anchor(zone, key, trusted_by)]
        if not matching:
            raise Bogus(f"no DNSKEY of {zone} matches {what}")
        # The DNSKEY RRset must be signed by one of the keys the anchor/DS vouches for.
        _verify(dnskeys, dnskey_sigs, zone, dns.rdataset.from_rdata_list(dnskeys.ttl, matching))
        keys = dns.rdataset.from_rdata_list(dnskeys.ttl, list(dnskeys))
        self.trusted[zone] = keys
        return keys


async def validate_chain(
    response: dns.message.Message,
    qname: dns.name.Name,
    rdtype: dns.rdatatype.RdataType,
    *,
    anchor_zone: dns.name.Name,
    anchor: list[Any],
    fetch: Fetch,
) -> tuple[str, str | None]:
    """Validate ``response`` (to ``qname``/``rdtype``) against the anchor. Returns (status, reason),
    status one of validated | insecure | bogus; network errors of ``fetch`` propagate."""
    if not qname.is_subdomain(anchor_zone):
        return "insecure", f"{qname} is outside the trust anchor's zone {anchor_zone}"
    chain = _Chain(anchor_zone, anchor, fetch)
    try:
        if response.answer:
            section = response.answer
            to_check = [r for r in section if r.rdtype != dns.rdatatype.RRSIG]
        else:
            section = response.authority
            to_check = [r for r in section if r.rdtype in _DENIAL_TYPES]
            if not to_check:
                raise Bogus("negative answer without SOA/NSEC records to validate")
        if not to_check:
            raise Bogus("answer has only signatures")
        for rrset in to_check:
            sigs = _sigs(section, rrset)
            signer = sigs[0].signer
            if not rrset.name.is_subdomain(signer):
                raise Bogus(f"{rrset.name} signed by {signer}, which is not its zone")
            _verify(rrset, sigs, signer, await chain.keys(signer))
    except Bogus as exc:
        return "bogus", str(exc)
    return "validated", None


__all__ = ["MAX_CHAIN_DEPTH", "Bogus", "Fetch", "validate_chain"]
