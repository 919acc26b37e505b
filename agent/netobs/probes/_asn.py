"""An offline IP-to-ASN table: CSV lines ``prefix,asn`` (IPv4 or IPv6), longest-prefix match.

No network look-ups: the table is a file the operator provides (e.g. exported from a RIR dump or a
route server). Blank lines, ``#`` comments and a ``prefix,asn`` header line are allowed; ``AS64500`` and
``64500`` are both accepted. A malformed line raises ``ValueError`` naming the file and the line.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AsnMatch:
    asn: int
    prefix: str  # the matching prefix in canonical form, e.g. "198.51.100.0/24"


class AsnTable:
    """Prefixes by (IP version, prefix length) -> {network as int: ASN}; a lookup tries the lengths present
    from the longest down, so it costs at most one dict probe per distinct length."""

    def __init__(self, rows: list[tuple[str, int]] | None = None) -> None:
        self._nets: dict[int, dict[int, dict[int, int]]] = {4: {}, 6: {}}
        self._lengths: dict[int, list[int]] = {4: [], 6: []}
        for prefix, asn in rows or []:
            self.add(prefix, asn)

    def add(self, prefix: str, asn: int) -> None:
        net = ipaddress.ip_network(prefix, strict=False)
        by_len = self._nets[net.version].setdefault(net.prefixlen, {})
        by_len[int(net.network_address)] = asn
        self._lengths[net.version] = sorted(self._nets[net.version], reverse=True)

    def __len__(self) -> int:
        return sum(len(m) for v in self._nets.values() for m in v.values())

    def lookup(self, address: str) -> AsnMatch | None:
        """The longest prefix containing ``address``, or None (also for a malformed address)."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return None
        bits = 32 if ip.version == 4 else 128
        value = int(ip)
        for length in self._lengths[ip.version]:
            network = value >> (bits - length) << (bits - length) if length else 0
            asn = self._nets[ip.version][length].get(network)
            if asn is not None:
                net = ipaddress.ip_network((network, length))
                return AsnMatch(asn, str(net))
        return None

    @classmethod
    def parse(cls, text: str, source: str = "<asn table>") -> AsnTable:
        table = cls()
        for lineno, raw in enumerate(text.splitlines(), 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            parts = [p.strip() for p in line.split(",")]
            if lineno == 1 and parts[0].lower() == "prefix":
                continue
            try:
                if len(parts) < 2:
                    raise ValueError("expected prefix,asn")
                asn_text = parts[1].upper().removeprefix("AS")
                asn = int(asn_text)
                if not 0 <= asn < 1 << 32:
                    raise ValueError("ASN out of range")
                table.add(parts[0], asn)
            except ValueError as exc:
                raise ValueError(f"{source}: line {lineno}: {raw.strip()!r}: {exc}") from None
        return table


class AsnTableCache:
    """Loads each table file once, and again only when its modification time changes."""

    def __init__(self) -> None:
        self._tables: dict[str, tuple[float, AsnTable]] = {}

    def get(self, path: str) -> AsnTable:
        mtime = os.stat(path).st_mtime
        cached = self._tables.get(path)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        with open(path, encoding="utf-8") as fh:
            table = AsnTable.parse(fh.read(), path)
        self._tables[path] = (mtime, table)
        return table
