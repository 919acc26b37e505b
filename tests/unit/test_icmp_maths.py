"""The ICMP probe's pure parts: statistics, checksums, packet building and parsing."""

from __future__ import annotations

import socket
import struct

import pytest

from netobs.probes import _icmp_socket as icmp_socket
from netobs.probes._icmp_socket import (
    describe_icmp_error,
    echo_payload,
    echo_request,
    icmp6_filter,
    internet_checksum,
    parse_dgram,
    parse_errqueue,
    parse_raw_v4,
    parse_raw_v6,
)
from netobs.probes.icmp import RttSummary, fill_statistics, jitter_ms, loss_ratio, rtt_summary
from netobs.result import IcmpResult


@pytest.mark.parametrize(
    ("sent", "received", "expected"),
    [
        (3, 3, 0.0),
        (4, 3, 0.25),
        (3, 0, 1.0),
        (0, 0, 0.0),  # nothing sent is no loss
        (5, 7, 0.0),  # duplicates never make a negative loss
        (100, 1, 0.99),
    ],
)
def test_loss_ratio(sent: int, received: int, expected: float) -> None:
    assert loss_ratio(sent, received) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("rtts", "expected"),
    [
        ([1.0], RttSummary(1.0, 1.0, 1.0, 0.0)),
        ([1.0, 3.0], RttSummary(1.0, 2.0, 3.0, 1.0)),
        ([2.0, None, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0], RttSummary(2.0, 5.0, 9.0, 2.0)),  # lost skipped
        ([None, None], None),
        ([], None),
    ],
)
def test_rtt_summary(rtts: list[float | None], expected: RttSummary | None) -> None:
    got = rtt_summary(rtts)
    if expected is None:
        assert got is None
    else:
        assert got is not None
        assert (got.min_ms, got.avg_ms, got.max_ms) == pytest.approx(
            (expected.min_ms, expected.avg_ms, expected.max_ms)
        )
        assert got.stddev_ms == pytest.approx(expected.stddev_ms)


@pytest.mark.parametrize(
    ("rtts", "expected"),
    [
        ([1.0], None),
        ([1.0, None], None),
        ([1.0, 3.0], 2.0),
        ([1.0, 3.0, 2.0], 1.5),
        ([1.0, None, 3.0, 2.0], 1.5),  # a lost packet is skipped, not counted as a zero RTT
        ([5.0, 5.0, 5.0], 0.0),
    ],
)
def test_jitter(rtts: list[float | None], expected: float | None) -> None:
    got = jitter_ms(rtts)
    assert got == (None if expected is None else pytest.approx(expected))


def test_fill_statistics_rounds_and_counts() -> None:
    detail = IcmpResult(sent=0, received=0, loss_ratio=0.0, rtts_ms=[1.0, None, 2.0004, None])
    fill_statistics(detail)
    assert (detail.sent, detail.received, detail.loss_ratio) == (4, 2, 0.5)
    assert (detail.rtt_min_ms, detail.rtt_max_ms, detail.rtt_avg_ms) == (1.0, 2.0, 1.5)
    assert detail.jitter_ms == 1.0
    assert detail.rtt_stddev_ms == 0.5


@pytest.mark.parametrize("rtt", [0.1234567, 12.0, None])
def test_fill_statistics_of_one_packet_is_the_general_formula(rtt: float | None) -> None:
    detail = IcmpResult(sent=0, received=0, loss_ratio=0.0, rtts_ms=[rtt])
    fill_statistics(detail)
    summary = rtt_summary([rtt])

    def r3(x: float | None) -> float | None:
        return None if x is None else round(x, 3)

    assert (detail.sent, detail.received, detail.loss_ratio) == (
        1,
        0 if rtt is None else 1,
        loss_ratio(1, 0 if rtt is None else 1),
    )
    assert (detail.rtt_min_ms, detail.rtt_avg_ms, detail.rtt_max_ms, detail.rtt_stddev_ms) == (
        (None, None, None, None)
        if summary is None
        else tuple(r3(v) for v in (summary.min_ms, summary.avg_ms, summary.max_ms, summary.stddev_ms))
    )
    assert detail.jitter_ms is None and jitter_ms([rtt]) is None


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (bytes.fromhex("0001f203f4f5f6f7"), 0x220D),  # RFC 1071's worked example
        (b"\x00\x00", 0xFFFF),
        (b"\xff", 0x00FF),  # odd length: padded with a zero byte
    ],
)
def test_internet_checksum(data: bytes, expected: int) -> None:
    assert internet_checksum(data) == expected


@pytest.mark.parametrize(("size", "ident", "seq"), [(56, 0x1234, 1), (0, 0xFFFF, 0xFFFF), (1401, 7, 42)])
def test_ipv4_echo_request_has_valid_checksum(size: int, ident: int, seq: int) -> None:
    payload = echo_payload(size)
    packet = echo_request(socket.AF_INET, ident, seq, payload)
    assert len(packet) == 8 + size
    assert packet[0] == 8 and packet[1] == 0
    assert struct.unpack("!HH", packet[4:8]) == (ident, seq)
    assert internet_checksum(packet) == 0  # a correct checksum sums to zero


def test_ipv6_and_dgram_requests_leave_the_checksum_to_the_kernel() -> None:
    v6 = echo_request(socket.AF_INET6, 1, 2, b"abc")
    assert v6[0] == 128 and v6[2:4] == b"\0\0"
    dgram = echo_request(socket.AF_INET, 1, 2, b"abc", checksum=False)
    assert dgram[2:4] == b"\0\0"


def _ipv4(proto: int, ttl: int, payload: bytes) -> bytes:
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, ttl, proto, 0, b"\0" * 4, b"\0" * 4) + payload


def test_parse_raw_v4_reply_reads_ttl_from_the_ip_header() -> None:
    reply = _ipv4(1, 61, struct.pack("!BBHHH", 0, 0, 0, 0xBEEF, 7) + b"x" * 56)
    parsed = parse_raw_v4(reply)
    assert parsed is not None
    assert (parsed.ident, parsed.seq, parsed.is_reply, parsed.ttl) == (0xBEEF, 7, True, 61)


@pytest.mark.parametrize(
    ("icmp_type", "code", "mtu"),
    [(3, 1, 0), (11, 0, 0), (3, 4, 1280)],
)
def test_parse_raw_v4_error_quoting_our_request(icmp_type: int, code: int, mtu: int) -> None:
    quoted = _ipv4(1, 1, struct.pack("!BBHHH", 8, 0, 0, 0x0102, 9))
    packet = _ipv4(1, 64, struct.pack("!BBHHH", icmp_type, code, 0, 0, mtu) + quoted)
    parsed = parse_raw_v4(packet)
    assert parsed is not None
    assert (parsed.ident, parsed.seq, parsed.is_reply) == (0x0102, 9, False)
    assert (parsed.icmp_type, parsed.icmp_code, parsed.info) == (icmp_type, code, mtu)


@pytest.mark.parametrize(
    "packet",
    [
        _ipv4(1, 64, struct.pack("!BBHHH", 8, 0, 0, 1, 1)),  # an echo request (ours, looped back)
        _ipv4(1, 64, struct.pack("!BBHHH", 3, 1, 0, 0, 0) + _ipv4(17, 1, b"\0" * 8)),  # quotes UDP
        b"\x45\x00",  # truncated
    ],
)
def test_parse_raw_v4_ignores_what_is_not_about_our_echoes(packet: bytes) -> None:
    assert parse_raw_v4(packet) is None


def test_parse_raw_v6() -> None:
    assert parse_raw_v6(struct.pack("!BBHHH", 129, 0, 0, 5, 6)) is not None
    inner = b"\x60" + b"\0" * 5 + bytes([58, 1]) + b"\0" * 32 + struct.pack("!BBHHH", 128, 0, 0, 5, 6)
    err = parse_raw_v6(struct.pack("!BBHI", 2, 0, 0, 1400) + inner)
    assert err is not None
    assert (err.ident, err.seq, err.is_reply, err.icmp_type, err.info) == (5, 6, False, 2, 1400)
    assert parse_raw_v6(struct.pack("!BBHHH", 128, 0, 0, 5, 6)) is None  # a request, not a reply


def test_parse_dgram() -> None:
    parsed = parse_dgram(struct.pack("!BBHHH", 0, 0, 0, 3, 4))
    assert parsed is not None and (parsed.ident, parsed.seq) == (3, 4)
    assert parse_dgram(struct.pack("!BBHHH", 8, 0, 0, 3, 4)) is None


def test_parse_errqueue_reads_the_extended_error_and_offender() -> None:
    ee = struct.pack("@IBBBBII", 113, 2, 3, 1, 0, 0, 0)
    offender = struct.pack("<H", socket.AF_INET) + b"\0\0" + socket.inet_aton("10.9.8.7") + b"\0" * 8
    request = struct.pack("!BBHHH", 8, 0, 0, 77, 5)
    found = parse_errqueue(request, [(0, icmp_socket.IP_RECVERR, ee + offender)])
    assert found is not None
    parsed, source = found
    assert (parsed.ident, parsed.seq, parsed.icmp_type, parsed.icmp_code, source) == (77, 5, 3, 1, "10.9.8.7")
    local = struct.pack("@IBBBBII", 90, 1, 0, 0, 0, 1500, 0)  # a local EMSGSIZE: sendto reported it
    assert parse_errqueue(request, [(0, icmp_socket.IP_RECVERR, local + offender)]) is None


@pytest.mark.parametrize(
    ("family", "icmp_type", "code", "unreachable", "fragment"),
    [
        (socket.AF_INET, 3, 1, True, "host unreachable from 10.0.0.1"),
        (socket.AF_INET, 3, 13, True, "administratively prohibited"),
        (socket.AF_INET, 11, 0, True, "time exceeded"),
        (socket.AF_INET, 3, 4, False, "next-hop MTU 1400"),
        (socket.AF_INET6, 1, 6, True, "reject route"),
        (socket.AF_INET6, 2, 0, False, "packet too big (MTU 1400)"),
        (socket.AF_INET6, 3, 0, True, "hop limit expired"),
    ],
)
def test_describe_icmp_error(family: int, icmp_type: int, code: int, unreachable: bool, fragment: str) -> None:
    got_unreachable, message = describe_icmp_error(family, icmp_type, code, 1400, "10.0.0.1")
    assert got_unreachable is unreachable
    assert fragment in message


def test_icmp6_filter_passes_replies_and_errors_only() -> None:
    words = struct.unpack("@8I", icmp6_filter())

    def blocked(t: int) -> bool:
        return bool(words[t >> 5] & (1 << (t & 31)))

    assert [blocked(t) for t in (129, 1, 2, 3)] == [False] * 4
    assert [blocked(t) for t in (128, 133, 135, 136, 4)] == [True] * 5
