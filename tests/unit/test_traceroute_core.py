"""Traceroute maths as tables: hop folding, path hashing, where a trace ends, the ASN table, packets."""

from __future__ import annotations

import hashlib
import socket
import struct

import pytest

from netobs.probes._asn import AsnTable
from netobs.probes._sockio import SO_TIMESTAMPNS
from netobs.probes._traceroute_core import ProbeReply, fold_hops, hop_count, path_hash, paths_hash, trim_replies
from netobs.probes._traceroute_net import (
    IP_RECVERR,
    Answer,
    classify,
    icmp_echo,
    inet_checksum,
    parse_ipv4_icmp,
    parse_ipv4_tcp,
    parse_recverr,
    tcp_syn,
)
from netobs.result import TracerouteHop, TraceroutePath

A, B, C, D = "10.0.1.1", "10.0.2.1", "10.0.3.1", "10.0.4.2"


def R(ttl: int, index: int, address: str | None, rtt_ms: float | None = None, **kw: object) -> ProbeReply:
    return ProbeReply(ttl, index, address, rtt_ms, **kw)  # type: ignore[arg-type]


# -- hop folding ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("replies", "expected"),
    [
        pytest.param(
            [R(1, 0, A, 1.0, icmp_type=11, icmp_code=0), R(1, 1, A, 3.0), R(1, 2, A, 2.0)],
            [(1, A, 2.0, 0.0, [1.0, 3.0, 2.0], [A], 11)],
            id="three-answers-median",
        ),
        pytest.param(
            [R(2, 0, B, 4.0), R(2, 1, None), R(2, 2, B, 6.0)],
            [(2, B, 5.0, 0.3333, [4.0, None, 6.0], [B], None)],
            id="one-lost-of-three",
        ),
        pytest.param(
            [R(3, 0, None), R(3, 1, None)],
            [(3, None, None, 1.0, [None, None], [], None)],
            id="silent-hop",
        ),
        pytest.param(
            [R(4, 0, C, 1.0), R(4, 1, B, 9.0), R(4, 2, B, 8.0)],
            [(4, B, 8.0, 0.0, [1.0, 9.0, 8.0], [B, C], None)],
            id="two-responders-majority-wins",
        ),
        pytest.param(
            [R(5, 1, A, 2.0), R(5, 0, C, 1.0)],
            [(5, C, 1.5, 0.0, [1.0, 2.0], [A, C], None)],
            id="tie-goes-to-lowest-probe-number",
        ),
        pytest.param(
            [R(2, 1, B, 2.25), R(1, 0, A, 1.0), R(2, 0, B, 2.0), R(1, 1, None)],
            [(1, A, 1.0, 0.5, [1.0, None], [A], None), (2, B, 2.125, 0.0, [2.0, 2.25], [B], None)],
            id="unordered-input-two-ttls",
        ),
        pytest.param([], [], id="nothing"),
    ],
)
def test_fold_hops(replies: list[ProbeReply], expected: list[tuple[object, ...]]) -> None:
    hops = fold_hops(replies)
    got = [(h.ttl, h.address, h.rtt_ms, h.loss, h.rtts_ms, h.addresses, h.icmp_type) for h in hops]
    assert got == expected


def test_fold_hops_takes_type_and_code_of_the_main_responder() -> None:
    hops = fold_hops([R(1, 0, C, 1.0, icmp_type=3, icmp_code=1), R(1, 1, A, 1.0, icmp_type=11, icmp_code=0)])
    assert (hops[0].address, hops[0].icmp_type, hops[0].icmp_code) == (C, 3, 1)


# -- path hashing -----------------------------------------------------------------------------------
def H(ttl: int, *addresses: str) -> TracerouteHop:
    return TracerouteHop(
        ttl=ttl,
        address=addresses[0] if addresses else None,
        rtt_ms=1.0 if addresses else None,
        loss=0.0 if addresses else 1.0,
        addresses=sorted(addresses),
    )


def _sha(*items: str) -> str:
    return hashlib.sha256("\n".join(items).encode()).hexdigest()[:16]


@pytest.mark.parametrize(
    ("hops", "expected"),
    [
        pytest.param([H(1, A), H(2, B), H(3, D)], _sha(A, B, D), id="plain"),
        pytest.param([H(1, A), H(2), H(3, D)], _sha(A, "*", D), id="silent-inside-kept"),
        pytest.param([H(1, A), H(2, B), H(3), H(4)], _sha(A, B), id="trailing-silent-dropped"),
        pytest.param([H(1, A), H(2, C, B)], _sha(A, f"{B}|{C}"), id="several-responders-sorted"),
        pytest.param([H(1), H(2)], "", id="all-silent"),
        pytest.param([], "", id="empty"),
    ],
)
def test_path_hash(hops: list[TracerouteHop], expected: str) -> None:
    assert path_hash(hops) == expected


@pytest.mark.parametrize(
    ("left", "right", "same"),
    [
        pytest.param([H(1, A), H(2, B)], [H(1, A), H(2, B), H(3)], True, id="more-trailing-silence"),
        pytest.param([H(1, A), H(2, B)], [H(1, B), H(2, A)], False, id="order-matters"),
        pytest.param([H(1, A), H(2, B)], [H(1, A), H(2, C)], False, id="other-router"),
        pytest.param([H(1, A), H(2), H(3, C)], [H(1, A), H(2, C)], False, id="silent-hop-is-a-hop"),
        pytest.param([H(1, A, B)], [H(1, B, A)], True, id="responder-set-unordered"),
    ],
)
def test_path_hash_equality(left: list[TracerouteHop], right: list[TracerouteHop], same: bool) -> None:
    assert (path_hash(left) == path_hash(right)) is same


def test_path_hash_ignores_rtt_and_loss() -> None:
    one = [TracerouteHop(ttl=1, address=A, rtt_ms=1.0, loss=0.0, rtts_ms=[1.0], addresses=[A])]
    two = [TracerouteHop(ttl=1, address=A, rtt_ms=9.0, loss=0.5, rtts_ms=[9.0, None], addresses=[A])]
    assert path_hash(one) == path_hash(two) != ""


@pytest.mark.parametrize(
    ("hashes", "expected"),
    [
        pytest.param(["aa", "aa"], "aa", id="one-distinct"),
        pytest.param(["aa", "bb"], _sha("aa", "bb"), id="two-distinct"),
        pytest.param(["bb", "aa", "bb"], _sha("aa", "bb"), id="which-flow-took-which-does-not-count"),
        pytest.param(["", ""], "", id="no-responders"),
    ],
)
def test_paths_hash(hashes: list[str], expected: str) -> None:
    paths = [TraceroutePath(flow_id=i, path_hash=h, reached=True) for i, h in enumerate(hashes)]
    assert paths_hash(paths) == expected


# -- where a trace ends -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("replies", "silent_limit", "kept_ttls", "reached", "done"),
    [
        pytest.param(
            [R(1, 0, A), R(2, 0, D, final=True), R(3, 0, D, final=True)], 5, [1, 2], True, True, id="destination-at-2"
        ),
        pytest.param([R(1, 0, A), R(2, 0, B, stop=True), R(3, 0, None)], 5, [1, 2], False, True, id="unreachable"),
        pytest.param(
            [R(1, 0, A), R(2, 0, None), R(3, 0, None), R(4, 0, None)], 2, [1, 2, 3], False, True, id="two-silent-stop"
        ),
        pytest.param([R(1, 0, None), R(2, 0, A), R(3, 0, None)], 2, [1, 2, 3], False, False, id="silence-resets"),
        pytest.param([R(1, 0, A), R(2, 0, B)], 5, [1, 2], False, False, id="not-yet"),
        pytest.param([R(2, 0, None), R(2, 1, D, final=True)], 5, [2], True, True, id="any-probe-final-first-hop-2"),
    ],
)
def test_trim_replies(
    replies: list[ProbeReply], silent_limit: int, kept_ttls: list[int], reached: bool, done: bool
) -> None:
    first = min(r.ttl for r in replies)
    kept, got_reached, got_done = trim_replies(replies, first, silent_limit)
    assert (sorted({r.ttl for r in kept}), got_reached, got_done) == (kept_ttls, reached, done)


@pytest.mark.parametrize(("hops", "expected"), [([H(1, A), H(2), H(3, D)], 3), ([H(1, A), H(2), H(3)], 1), ([H(1)], 0)])
def test_hop_count(hops: list[TracerouteHop], expected: int) -> None:
    assert hop_count(hops) == expected


# -- the ASN table ----------------------------------------------------------------------------------
TABLE = """prefix,asn
# comment
10.0.0.0/8,64500
10.1.0.0/16,AS64501
10.1.2.0/24,64502
192.0.2.0/24 , 64503
2001:db8::/32,64510
0.0.0.0/0,1
"""


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("10.1.2.3", (64502, "10.1.2.0/24")),
        ("10.1.3.3", (64501, "10.1.0.0/16")),
        ("10.9.9.9", (64500, "10.0.0.0/8")),
        ("192.0.2.255", (64503, "192.0.2.0/24")),
        ("203.0.113.1", (1, "0.0.0.0/0")),
        ("2001:db8:1::1", (64510, "2001:db8::/32")),
        ("2001:db9::1", None),
        ("not-an-ip", None),
    ],
)
def test_asn_longest_prefix(address: str, expected: tuple[int, str] | None) -> None:
    match = AsnTable.parse(TABLE).lookup(address)
    assert (None if match is None else (match.asn, match.prefix)) == expected


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("10.0.0.0/8\n", "line 1"),
        ("10.0.0.0/8,64500\n10.0.0.0/33,1\n", "line 2"),
        ("x,1\n", "line 1"),
        ("10.0.0.0/8,ASx\n", "line 1"),
    ],
)
def test_asn_table_rejects_malformed_lines(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        AsnTable.parse(text, "t.csv")


# -- packets and answers ----------------------------------------------------------------------------
@pytest.mark.parametrize("seqs", [(1, 2, 3), (0x1234, 0xFFFE, 7)])
def test_icmp_echo_checksum_is_valid_and_constant(seqs: tuple[int, ...]) -> None:
    packets = [icmp_echo(0xBEEF, s) for s in seqs]
    assert all(inet_checksum(p) == 0 for p in packets)  # a valid checksum sums to zero
    assert len({p[2:4] for p in packets}) == 1
    assert [struct.unpack_from("!H", p, 6)[0] for p in packets] == list(seqs)


def test_tcp_syn_checksum_over_pseudo_header() -> None:
    seg = tcp_syn("10.0.0.1", "10.0.9.2", 40000, 443, 0xDEADBEEF)
    pseudo = socket.inet_aton("10.0.0.1") + socket.inet_aton("10.0.9.2") + struct.pack("!BBH", 0, 6, len(seg))
    assert inet_checksum(pseudo + seg) == 0
    assert struct.unpack_from("!HHI", seg) == (40000, 443, 0xDEADBEEF)
    assert seg[13] == 0x02


def _ip(src: str, dst: str, proto: int, payload: bytes) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, 1, proto, 0, socket.inet_aton(src), socket.inet_aton(dst)
    )
    return header + payload


def _icmp(icmp_type: int, code: int, body: bytes) -> bytes:
    return struct.pack("!BBHI", icmp_type, code, 0, 0) + body


@pytest.mark.parametrize(
    ("packet", "expected"),
    [
        pytest.param(
            _ip(B, "10.0.0.1", 1, _icmp(11, 0, _ip("10.0.0.1", D, 6, tcp_syn("10.0.0.1", D, 40000, 443, 77)))),
            (B, 11, 0, ("tcp", 40000, 443, 77)),
            id="time-exceeded-quoting-syn",
        ),
        pytest.param(
            _ip(A, "10.0.0.1", 1, _icmp(11, 0, _ip("10.0.0.1", D, 1, icmp_echo(9, 5)))),
            (A, 11, 0, ("icmp", 9, 5)),
            id="time-exceeded-quoting-echo",
        ),
        pytest.param(
            _ip(D, "10.0.0.1", 1, _icmp(3, 3, _ip("10.0.0.1", D, 17, struct.pack("!HHHH", 5000, 33434, 8, 0)))),
            (D, 3, 3, ("udp", 5000, 33434)),
            id="port-unreachable-quoting-udp",
        ),
        pytest.param(
            _ip(D, "10.0.0.1", 1, struct.pack("!BBHHH", 0, 0, 0, 9, 6)),
            (D, 0, 0, ("icmp", 9, 6)),
            id="echo-reply",
        ),
        pytest.param(_ip(D, "10.0.0.1", 1, _icmp(5, 0, b"")), (D, 5, 0, None), id="redirect-no-key"),
        pytest.param(_ip(D, "10.0.0.1", 6, b"x" * 20), None, id="not-icmp"),
    ],
)
def test_parse_ipv4_icmp(packet: bytes, expected: object) -> None:
    assert parse_ipv4_icmp(packet) == expected


def test_parse_ipv4_tcp_synack() -> None:
    segment = struct.pack("!HHIIBBHHH", 443, 40000, 1, 78, 5 << 4, 0x12, 100, 0, 0)
    assert parse_ipv4_tcp(_ip(D, "10.0.0.1", 6, segment)) == (D, 443, 40000, 0x12, 78)


def test_parse_recverr_reads_offender_and_kernel_time() -> None:
    ext = struct.pack("=IBBBBII", 113, 2, 11, 0, 0, 0, 0)
    offender = struct.pack("=HH4s8x", socket.AF_INET, 0, socket.inet_aton(B))
    stamp = struct.pack("=qq", 1_700_000_000, 5)
    answer, ts = parse_recverr(
        [(socket.SOL_SOCKET, SO_TIMESTAMPNS, stamp), (socket.IPPROTO_IP, IP_RECVERR, ext + offender)]
    )
    assert answer == Answer(B, 11, 0, 1_700_000_000_000_000_005)
    assert ts == 1_700_000_000_000_000_005


def test_parse_recverr_ignores_local_errors() -> None:
    ext = struct.pack("=IBBBBII", 90, 1, 0, 0, 0, 0, 0)  # SO_EE_ORIGIN_LOCAL (e.g. EMSGSIZE)
    answer, _ = parse_recverr([(socket.IPPROTO_IP, IP_RECVERR, ext)])
    assert answer is None


@pytest.mark.parametrize(
    ("answer", "v6", "expected"),
    [
        (Answer(A, 11, 0, 0), False, (False, False)),
        (Answer(D, 3, 3, 0), False, (True, False)),
        (Answer(B, 3, 1, 0), False, (False, True)),
        (Answer(D, 0, 0, 0), False, (True, False)),
        (Answer(D, None, None, 0), False, (True, False)),
        (Answer(B, None, None, 0), False, (False, False)),
        (Answer("2001:db8::1", 3, 0, 0), True, (False, False)),
        (Answer("2001:db8::9", 1, 4, 0), True, (True, False)),
    ],
)
def test_classify(answer: Answer, v6: bool, expected: tuple[bool, bool]) -> None:
    destination = "2001:db8::9" if v6 else D
    assert classify(answer, destination, v6) == expected
