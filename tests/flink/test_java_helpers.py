"""The job's Java helpers (netobs-flink.jar) in a real JVM: the parser against the Python reference of what
it reads (netobs_flink/record.py), and the archive's id tables."""

from __future__ import annotations

import copy
import gc
import json
import os
import random
import warnings
from pathlib import Path
from typing import Any

import pytest
from netobs_flink.record import PHASES, READ_FIELDS, extract, fields_spec, is_valid, required_spec
from netobs_flink.series import LINE_FIELDS, LINE_SEP, WindowSummary, parse_batch
from py4j.protocol import Py4JJavaError
from pyflink.java_gateway import get_gateway
from pyflink.util.java_utils import add_jars_to_context_class_loader

from tests.flink.records import MALFORMED

GOLDEN = Path(__file__).resolve().parents[1] / "contract" / "golden"
CHECK_TYPES = ("icmp", "dns", "http", "tcp", "traceroute")


@pytest.fixture(scope="module")
def jvm() -> Any:
    jars = os.environ.get("NETOBS_FLINK_JARS", "")
    jar = Path(jars) / "netobs-flink.jar"
    assert jar.is_file(), f"netobs-flink.jar not found in NETOBS_FLINK_JARS={jars!r} (scripts/setup.d/50-flink.sh)"
    with warnings.catch_warnings():
        # PyFlink drops its handle of the JVM it starts (which runs until this process ends): a ResourceWarning.
        warnings.simplefilter("ignore", ResourceWarning)
        gateway = get_gateway()
        gc.collect()
    add_jars_to_context_class_loader([jar.as_uri()])
    return gateway.jvm


@pytest.fixture(scope="module")
def parser(jvm: Any) -> Any:
    return jvm.io.netobs.flink.ResultParser().configure(fields_spec(), required_spec())


def golden(check_type: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((GOLDEN / f"result_{check_type}.json").read_text())
    return data


def parse(parser: Any, message: bytes) -> tuple[bytes, int | None, dict[str, Any] | None]:
    row = parser.deserialize(message)
    fields = row.getField(2)
    named = None if fields is None else {name: fields.getField(i) for i, name in enumerate(READ_FIELDS)}
    return bytes(row.getField(0)), row.getField(1), named


def expected(record: dict[str, Any]) -> dict[str, Any]:
    return {name: extract(record, path, sql_type) for name, (path, sql_type) in READ_FIELDS.items()}


def variants() -> list[dict[str, Any]]:
    """The golden records, and changes of them that exercise the parser's paths."""
    out = [golden(t) for t in CHECK_TYPES]
    http, tcp, trace = golden("http"), golden("tcp"), golden("traceroute")
    no_tls = copy.deepcopy(http)
    no_tls["http"]["tls"] = None  # the certificate then comes from tcp.tls, if any
    no_tls["tcp"] = tcp["tcp"]
    out.append(no_tls)
    last_hop_silent = copy.deepcopy(trace)
    last_hop_silent["traceroute"]["hops"].append({"ttl": 9, "address": None})  # no rtt_ms: NULL
    out.append(last_hop_silent)
    no_hops = copy.deepcopy(trace)
    no_hops["traceroute"]["hops"] = []
    out.append(no_hops)
    out.append({**http, "duration_ms": "slow", "phases_ms": {"dns": 3, "tls": True, "other": 1.0}})
    out.append({**http, "pop": None, "icmp": 7, "traceroute": [1, 2], "error_type": 5, "labels": {"a": [{}]}})
    return out


@pytest.mark.parametrize("index", range(len(variants())))
def test_the_parser_reads_what_record_py_says(parser: Any, index: int) -> None:
    record = variants()[index]
    message = json.dumps(record).encode()
    raw, rid, fields = parse(parser, message)
    assert raw == message  # the bytes as they came
    assert rid is not None
    assert fields == expected(record)


def test_a_field_given_twice_counts_with_its_last_value(parser: Any) -> None:
    record = golden("icmp")
    text = json.dumps(record)[:-1] + ', "target": "second", "icmp": {"loss_ratio": 0.75}}'
    _, rid, fields = parse(parser, text.encode())
    assert rid is not None and fields is not None
    assert fields["target"] == "second"
    assert fields["loss_ratio"] == 0.75


def test_the_id_is_a_hash_of_the_result_id(parser: Any) -> None:
    record = golden("tcp")
    ids = {parse(parser, json.dumps({**record, "result_id": f"r-{i}"}).encode())[1] for i in range(1000)}
    assert len(ids) == 1000
    again = parse(parser, json.dumps({**record, "result_id": "r-7", "target": "x"}).encode())[1]
    assert again in ids  # the same id, whatever else differs


@pytest.mark.parametrize(
    "change",
    [
        {"result_id": None},
        {"started_at_ms": "yesterday"},
        {"started_at_ms": 1.5},
        {"started_at_ms": 10**30},  # beyond BIGINT
        {"success": "true"},
        {"check_type": 3},
        {"agent_id": None},
    ],
)
def test_records_missing_what_is_required_are_dead_letters(parser: Any, change: dict[str, Any]) -> None:
    record = {**golden("dns"), **change}
    assert not is_valid(record)
    raw, rid, fields = parse(parser, json.dumps(record).encode())
    assert (rid, fields) == (None, None)
    assert raw == json.dumps(record).encode()


@pytest.mark.parametrize(
    "message", [*MALFORMED, b'{"result_id": "x"} trailing', b'{"a": [1, 2}', b'{"result_id": "\xff\xfe"}']
)
def test_malformed_messages_are_dead_letters(parser: Any, message: bytes) -> None:
    raw, rid, fields = parse(parser, message)
    assert (raw, rid, fields) == (message, None, None)


def test_event_time_is_started_at_and_a_dead_letter_keeps_its_kafka_time(parser: Any) -> None:
    record = golden("http")
    assert parser.extractTimestamp(parser.deserialize(json.dumps(record).encode()), 5) == record["started_at_ms"]
    assert parser.extractTimestamp(parser.deserialize(b"not json"), 5) == 5


def test_a_spec_without_result_id_is_refused(jvm: Any) -> None:
    with pytest.raises(Py4JJavaError, match="result_id must be required"):
        jvm.io.netobs.flink.ResultParser().configure(fields_spec(), "agent_id:STRING")


def test_the_archive_id_tables_hold_every_id_they_were_given(jvm: Any) -> None:
    once = jvm.io.netobs.flink.ArchiveOnce
    rng = random.Random(7)
    added = [rng.getrandbits(63) + 1 for _ in range(5000)]
    table = get_gateway().new_array(jvm.long, 1 + 64)
    for i, value in enumerate(added):
        table = once.add(table, value)
        if i in (0, 47, 48, 4999):  # around the first growth (3/4 of 64) and at the end
            assert table[0] == i + 1
    assert len(table) - 1 >= len(added) * 4 // 3  # grown, never fuller than 3/4
    assert all(once.contains(table, v) for v in added)
    others = [rng.getrandbits(63) + 1 for _ in range(5000)]
    assert not any(once.contains(table, v) for v in others if v not in set(added))


def test_the_archive_horizon_must_be_positive(jvm: Any) -> None:
    with pytest.raises(Py4JJavaError, match="must be > 0 ms"):
        jvm.io.netobs.flink.ArchiveOnce().withHorizonMs(0)


def test_the_archive_writes_each_record_as_one_line_of_its_bytes(jvm: Any) -> None:
    encoder = jvm.io.netobs.flink.EventTimeHourBucketAssigner()
    stream = jvm.java.io.ByteArrayOutputStream()
    for line in (b'{"a": "\xc3\xa9"}', b"{}"):
        encoder.encode(line, stream)
    assert bytes(stream.toByteArray()) == b'{"a": "\xc3\xa9"}\n{}\n'


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _last(records: list[dict[str, Any]], name: str) -> Any:
    values = [r[name] for r in records if r[name] is not None]
    return values[-1] if values else None


def expected_summary(fields: list[dict[str, Any]]) -> WindowSummary:
    """What one series' window should sum up to (the rules in ShardWindows' doc), from the parsed fields."""
    ok = [f for f in fields if f["success"]]
    failed = [f for f in fields if not f["success"]]
    phases = {p: _mean([f[f"phase_{p}_ms"] for f in ok if f[f"phase_{p}_ms"] is not None]) for p in PHASES}
    certs = [f["cert_expiry_days"] for f in fields if f["cert_expiry_days"] is not None]
    first = fields[0]

    def text(value: str | None) -> str | None:  # separators inside text become spaces
        return None if value is None else value.replace("\x1f", " ").replace("\x1e", " ")

    return WindowSummary(
        agent_id=first["agent_id"],
        pop=first["pop"],
        check_name=first["check_name"],
        check_type=first["check_type"],
        target=text(first["target"]) or "",
        first_ms=min(f["started_at_ms"] for f in fields),
        last_ms=max(f["started_at_ms"] for f in fields),
        count=len(fields),
        failures=len(failed),
        last_success=fields[-1]["success"],
        total_ms=_mean([f["duration_ms"] for f in ok if f["duration_ms"] is not None]),
        phases_ms={p: v for p, v in phases.items() if v is not None},
        loss_ratio=_mean([f["loss_ratio"] for f in fields if f["loss_ratio"] is not None]),
        path_hash=_last(fields, "path_hash"),
        path_rtt_ms=_last(fields, "path_rtt_ms"),
        cert_expiry_days=min(certs) if certs else None,
        cert_subject=text(_last(fields, "cert_subject")),
        error_type=_last(fields, "error_type"),
        trace_id=_last(fields, "trace_id"),
        failed_trace_id=_last(failed, "trace_id"),
    )


def window_records() -> list[dict[str, Any]]:
    """Results of four series in one window: mixed outcomes, phases, loss, paths, certificates, odd text."""
    http, icmp, tcp, trace = golden("http"), golden("icmp"), golden("tcp"), golden("traceroute")
    out = []
    for i, success in enumerate((True, False, True, True)):
        out.append({**http, "success": success, "duration_ms": 10.0 + i, "phases_ms": {"dns": 1.0 + i, "tls": 2}})
    out.append({**http, "success": True, "phases_ms": {}, "duration_ms": 3})  # an int duration, no phases
    for loss in (0.0, 0.5, None):
        out.append({**icmp, "icmp": None if loss is None else {**icmp["icmp"], "loss_ratio": loss}})
    for days, subject in ((30.5, "CN=a\x1fb"), (12.0, None), (40.0, "CN=c\x1eafter")):
        out.append({**tcp, "tcp": {**tcp["tcp"], "tls": {"cert_expiry_days": days, "cert_subject": subject}}})
    for path, rtt in (("p1", 5.0), ("p2", None), (None, 7.0)):
        hops = [{"ttl": 1, "rtt_ms": 1.0}, {"ttl": 2, "rtt_ms": rtt}]
        out.append(
            {**trace, "target": "odd\x1ftarget", "traceroute": {**trace["traceroute"], "path_hash": path, "hops": hops}}
        )
    out.append({**trace, "target": "odd\x1ftarget", "success": False, "trace_id": None, "error_type": "timeout"})
    return out


def test_the_window_lines_sum_up_each_series_as_the_detectors_expect(jvm: Any, parser: Any) -> None:
    windows = jvm.io.netobs.flink.ShardWindows().configure(
        ",".join(READ_FIELDS), ",".join(PHASES), ",".join(LINE_FIELDS), 64, 1000
    )
    rows = jvm.java.util.ArrayList()
    fields: dict[str, list[dict[str, Any]]] = {}
    for record in window_records():
        row = parser.deserialize(json.dumps(record).encode())
        rows.add(row.getField(2))
        parsed = expected(record)
        key = "|".join(str(parsed[k]) for k in ("agent_id", "pop", "check_name", "check_type", "target"))
        fields.setdefault(key.replace("\x1f", " "), []).append(parsed)
    lines = windows.linesOf(rows).split(LINE_SEP)
    bad: list[ValueError] = []
    got = {f"{s.agent_id}|{s.pop}|{s.check_name}|{s.check_type}|{s.target}": s for s in parse_batch(lines, bad.append)}
    assert not bad
    assert len(got) == len(fields) == 4
    for key, series in fields.items():
        assert got[key] == expected_summary(series), key


def test_the_window_layout_is_checked_when_the_job_is_built(jvm: Any) -> None:
    windows = jvm.io.netobs.flink.ShardWindows()
    with pytest.raises(Py4JJavaError, match="unknown window line field"):
        windows.configure(",".join(READ_FIELDS), ",".join(PHASES), "agent_id,no_such_field", 64, 1000)
    with pytest.raises(Py4JJavaError, match="has no field phase_nope_ms"):
        windows.configure(",".join(READ_FIELDS), "nope", ",".join(LINE_FIELDS), 64, 1000)
    with pytest.raises(Py4JJavaError, match="must be >= 1"):
        windows.configure(",".join(READ_FIELDS), ",".join(PHASES), ",".join(LINE_FIELDS), 0, 1000)
