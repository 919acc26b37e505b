"""Offline replay (netobs detect replay) and the NAB evaluation on the copied labeled series."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from netobs_flink.detect.replay import ReplayError, parse_timestamp_ms, read_series, replay_file

from netobs.cli import main

ROOT = Path(__file__).resolve().parents[2]
NAB = ROOT / "tests" / "data" / "nab"


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2014-04-01 00:05:00", 1_396_310_700_000),
        ("2014-04-01 00:05:00.250000", 1_396_310_700_250),
        ("2014-04-01T02:05:00+02:00", 1_396_310_700_000),
        ("2014-04-01T00:05:00Z", 1_396_310_700_000),
        ("1396310700", 1_396_310_700_000),  # epoch seconds
        ("1396310700250", 1_396_310_700_250),  # epoch milliseconds
    ],
)
def test_parse_timestamp(text: str, ms: int) -> None:
    assert parse_timestamp_ms(text) == ms


@pytest.mark.parametrize(
    ("csv_text", "message"),
    [
        ("time,value\n2014-04-01 00:00:00,1\n", "no column 'timestamp'"),
        ("timestamp,value\n2014-04-01 00:00:00,1\nyesterday,2\n", "x.csv:3"),
        ("timestamp,value\n2014-04-01 00:00:00,abc\n", "x.csv:2"),
    ],
)
def test_read_series_errors_name_the_place(csv_text: str, message: str) -> None:
    with pytest.raises(ReplayError, match=message):
        read_series(io.StringIO(csv_text), name="x.csv")


def test_read_series_sorts_and_skips_empty_values() -> None:
    text = "timestamp,value\n2014-04-01 00:10:00,3\n2014-04-01 00:00:00,1\n2014-04-01 00:05:00,\n"
    assert read_series(io.StringIO(text)) == [(1_396_310_400_000, 1.0), (1_396_311_000_000, 3.0)]


@pytest.mark.parametrize(
    ("name", "alerts"),
    [
        ("artificialNoAnomaly/art_daily_no_noise.csv", 0),
        ("artificialNoAnomaly/art_noisy.csv", 0),
    ],
)
def test_no_alert_on_series_without_anomalies(name: str, alerts: int) -> None:
    assert len(replay_file(NAB / name)) == alerts


@pytest.mark.parametrize(
    ("name", "min_hits"),
    [
        ("artificialWithAnomaly/art_daily_jumpsup.csv", 1),
        ("realKnownCause/ec2_request_latency_system_failure.csv", 3),
    ],
)
def test_labeled_windows_are_hit_without_false_positives(name: str, min_hits: int) -> None:
    windows = json.loads((NAB / "windows.json").read_text())[name]
    spans = [(parse_timestamp_ms(lo), parse_timestamp_ms(hi)) for lo, hi in windows]
    alerts = replay_file(NAB / name)
    hit = {i for a in alerts for i, (lo, hi) in enumerate(spans) if lo <= a.fired_at_ms <= hi}
    outside = [a for a in alerts if not any(lo <= a.fired_at_ms <= hi for lo, hi in spans)]
    assert len(hit) >= min_hits
    assert outside == []


def test_cli_replay_prints_one_json_line_per_alert(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", "replay", "--csv", str(NAB / "artificialWithAnomaly/art_daily_jumpsup.csv")]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert lines == [
        {
            "fired_at": lines[0]["fired_at"],
            "resolved_at": lines[0]["resolved_at"],
            "kind": "latency_increase",
            "severity": "warning",
            "trigger": lines[0]["trigger"],
        }
    ]
    assert "2014-04-11 09:00:00" <= lines[0]["fired_at"] <= "2014-04-11 09:15:00"  # the jump is at 09:00
    assert lines[0]["resolved_at"] > lines[0]["fired_at"]


def test_cli_replay_custom_columns_and_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv_path = tmp_path / "rtt.csv"
    rows = [f"{1_700_000_000 + 60 * i},{30.0 + (40.0 if 300 <= i < 320 else (i % 3))}" for i in range(400)]
    csv_path.write_text("time,rtt_ms\n" + "\n".join(rows) + "\n")
    argv = ["detect", "replay", "--csv", str(csv_path), "--timestamp-column", "time", "--value-column", "rtt_ms"]
    assert main([*argv, "--warmup-s", "3600", "--season-s", "0"]) == 0
    kinds = [json.loads(line)["kind"] for line in capsys.readouterr().out.splitlines()]
    assert kinds == ["latency_increase"]
    assert main(["detect", "replay", "--csv", str(tmp_path / "missing.csv")]) == 2
    assert "missing.csv" in capsys.readouterr().err


def test_eval_nab_prints_the_table() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "eval_nab.py"), "--data", str(NAB)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line.split() for line in proc.stdout.splitlines()[1:]}
    assert rows["artificialNoAnomaly/art_daily_no_noise.csv"][3] == "0"  # alerts
    assert rows["realKnownCause/ec2_request_latency_system_failure.csv"][1:5] == ["3", "3", "3", "1.00"]
