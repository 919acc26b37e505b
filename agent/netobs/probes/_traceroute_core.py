"""Traceroute maths, free of I/O: fold probe replies into hops, hash a path, summarise flows.

Contracts:
- a *reply* is the fate of one probe: who answered (or ``None`` when nothing did), after how long, with
  which ICMP type/code, and whether the answer came from the destination (``final``);
- :func:`fold_hops` turns every reply of one flow into one :class:`TracerouteHop` per TTL;
- :func:`path_hash` is a pure function of the ordered responder addresses; it does not change while
  the path does not (RTTs, partial loss, reply order and trailing silent hops do not count).
"""

from __future__ import annotations

import hashlib
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from netobs.result import TracerouteHop, TraceroutePath

SILENT = "*"  # a hop where no probe was answered, in the hashed form of a path


@dataclass(frozen=True, slots=True)
class ProbeReply:
    """What became of one probe. Times are Unix epoch nanoseconds (for spans); RTT in milliseconds."""

    ttl: int
    index: int  # the probe's number within its hop, 0-based
    address: str | None  # responder, None when unanswered
    rtt_ms: float | None = None
    icmp_type: int | None = None  # None for a TCP answer (SYN-ACK/RST) or a UDP reply
    icmp_code: int | None = None
    final: bool = False  # the destination itself answered
    stop: bool = False  # an answer that ends the trace short of the destination (e.g. net unreachable)
    sent_at_ns: int = 0


def fold_hops(replies: Iterable[ProbeReply]) -> list[TracerouteHop]:
    """One hop record per TTL present in ``replies``, in TTL order.

    Per hop: ``rtts_ms`` in probe order (None for a lost probe); ``rtt_ms`` the median of the answered
    ones; ``loss`` the unanswered share; ``address`` the responder that answered most
    (ties: the one that answered the lowest-numbered probe); ``addresses`` every distinct responder,
    sorted; ICMP type and code of ``address``'s first answer.
    """
    by_ttl: dict[int, list[ProbeReply]] = {}
    for reply in replies:
        by_ttl.setdefault(reply.ttl, []).append(reply)
    hops: list[TracerouteHop] = []
    for ttl in sorted(by_ttl):
        probes = sorted(by_ttl[ttl], key=lambda r: r.index)
        answered = [r for r in probes if r.address is not None]
        rtts = [r.rtt_ms for r in answered if r.rtt_ms is not None]
        counts: dict[str, int] = {}
        for r in answered:
            assert r.address is not None
            counts[r.address] = counts.get(r.address, 0) + 1
        main: ProbeReply | None = None
        if answered:
            best = max(counts.values())
            main = next(r for r in answered if counts[r.address or ""] == best)
        hops.append(
            TracerouteHop(
                ttl=ttl,
                address=main.address if main else None,
                rtt_ms=_round(statistics.median(rtts)) if rtts else None,
                loss=round(1.0 - len(answered) / len(probes), 4),
                rtts_ms=[_round(r.rtt_ms) if r.address is not None else None for r in probes],
                icmp_type=main.icmp_type if main else None,
                icmp_code=main.icmp_code if main else None,
                addresses=sorted(counts),
            )
        )
    return hops


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def path_hash(hops: Sequence[TracerouteHop]) -> str:
    """Hash (16 hex digits) of the ordered responders of ``hops``.

    A hop is its sorted responder set (``a|b`` when several answered at one TTL); a silent hop is
    ``*``. Trailing silent hops are dropped (how many there are depends on ``stop_after_silent_hops``
    and ``max_hops``, not on the path); a path with no responder at all hashes to ``""``.
    """
    items = [("|".join(sorted(set(h.addresses or ([h.address] if h.address else [])))) or SILENT) for h in hops]
    while items and items[-1] == SILENT:
        items.pop()
    if not items:
        return ""
    return hashlib.sha256("\n".join(items).encode()).hexdigest()[:16]


def paths_hash(paths: Sequence[TraceroutePath]) -> str:
    """The hash of a multi-flow trace: of the *set* of distinct per-flow path hashes, so it stays the same
    while the set of equal-cost paths does (which flow takes which path does not count)."""
    distinct = sorted({p.path_hash for p in paths if p.path_hash})
    if not distinct:
        return ""
    if len(distinct) == 1:
        return distinct[0]
    return hashlib.sha256("\n".join(distinct).encode()).hexdigest()[:16]


def trim_replies(
    replies: Sequence[ProbeReply], first_ttl: int, stop_after_silent_hops: int
) -> tuple[list[ProbeReply], bool, bool]:
    """Cut a flow's replies where the trace ends; returns (kept replies, reached, done).

    The trace ends at the first TTL where the destination answered (reached), or where an answer says
    to stop (unreachable), or after ``stop_after_silent_hops`` consecutive silent TTLs (those silent
    TTLs are kept). ``done`` says whether one of these happened within the TTLs present.
    """
    by_ttl: dict[int, list[ProbeReply]] = {}
    for r in replies:
        by_ttl.setdefault(r.ttl, []).append(r)
    silent_run = 0
    last = first_ttl - 1
    for ttl in range(first_ttl, max(by_ttl, default=first_ttl - 1) + 1):
        hop = by_ttl.get(ttl)
        if hop is None:
            break
        last = ttl
        if any(r.final for r in hop):
            return [r for r in replies if r.ttl <= ttl], True, True
        if any(r.stop for r in hop):
            return [r for r in replies if r.ttl <= ttl], False, True
        silent_run = silent_run + 1 if all(r.address is None for r in hop) else 0
        if silent_run >= stop_after_silent_hops:
            return [r for r in replies if r.ttl <= ttl], False, True
    return [r for r in replies if r.ttl <= last], False, False


def hop_count(hops: Sequence[TracerouteHop]) -> int:
    """TTL of the last hop that answered (the destination's when reached); 0 when none did."""
    answered = [h.ttl for h in hops if h.address is not None]
    return max(answered, default=0)
