"""Probe types. Each module holds only what is specific to its type; see ``base`` for the contract."""

from __future__ import annotations

from netobs.probes.base import Outcome, Probe, ProbeContext, Resolver, SystemResolver


def default_probes() -> dict[str, Probe]:
    """One production instance of every probe type, keyed by check type."""
    from netobs.probes.dns import DnsProbe
    from netobs.probes.http import HttpProbe
    from netobs.probes.icmp import IcmpProbe
    from netobs.probes.tcp import TcpProbe
    from netobs.probes.traceroute import TracerouteProbe

    probes: dict[str, Probe] = {"tcp": TcpProbe(), "http": HttpProbe()}
    probes["dns"] = DnsProbe()
    probes["traceroute"] = TracerouteProbe()
    probes["icmp"] = IcmpProbe()
    return probes


__all__ = ["Outcome", "Probe", "ProbeContext", "Resolver", "SystemResolver", "default_probes"]
