"""TLS certificate expiry: thresholds with hysteresis; severity changes replace the alert."""

from __future__ import annotations

import pytest
from netobs_flink.detect.tls import TlsConfig, TlsExpiryDetector


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        ([90, 60, 30], []),
        ([20, 13.5, 13], [("firing", "warning")]),
        ([13, 14.5, 15.5], [("firing", "warning"), ("resolved", "warning")]),  # 14.5 is inside the hysteresis
        ([10, 2.5], [("firing", "warning"), ("resolved", "warning"), ("firing", "critical")]),
        ([2, 5, 90], [("firing", "critical"), ("resolved", "critical")]),  # renewal clears it at once
    ],
)
def test_expiry_table(days: list[float], expected: list[tuple[str, str]]) -> None:
    det = TlsExpiryDetector(labels={"check": "web", "target": "example.test"})
    got = [(e.status, e.severity) for i, d in enumerate(days) for e in det.observe(1_000 * i, d, "CN=example.test")]
    assert got == expected


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="critical_days"):
        TlsConfig(warning_days=3, critical_days=7)
