"""TLS certificate expiry: a threshold with hysteresis on ``cert_expiry_days`` (http.tls or tcp.tls).

Below ``warning_days`` a warning fires, below ``critical_days`` a critical alert replaces it (the warning
resolves: severity is part of an alert's identity). Both resolve once the days left reach
``warning_days + hysteresis_days`` (a renewed certificate).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from netobs_flink.detect.alert import FIRING, RESOLVED, AlertEvent


@dataclass(frozen=True)
class TlsConfig:
    warning_days: float = 14.0
    critical_days: float = 3.0
    hysteresis_days: float = 1.0

    def __post_init__(self) -> None:
        if not 0 <= self.critical_days < self.warning_days:
            raise ValueError("need 0 <= critical_days < warning_days")


@dataclass
class TlsState:
    severity: str | None = None
    since_ms: int = 0


class TlsExpiryDetector:
    def __init__(
        self, config: TlsConfig | None = None, labels: Mapping[str, str] | None = None, state: TlsState | None = None
    ) -> None:
        self.config = config or TlsConfig()
        self.labels = dict(labels or {})
        self.state = state or TlsState()

    def observe(self, at_ms: int, expiry_days: float, subject: str | None = None) -> list[AlertEvent]:
        c, s = self.config, self.state
        if expiry_days < c.critical_days:
            wanted: str | None = "critical"
        elif expiry_days < c.warning_days:
            wanted = "warning" if s.severity != "critical" else "critical"
        elif expiry_days < c.warning_days + c.hysteresis_days:
            wanted = s.severity
        else:
            wanted = None
        if wanted == s.severity:
            return []
        events = []
        annotations = {"expiry_days": f"{expiry_days:.2f}"}
        if subject:
            annotations["certificate_subject"] = subject
        if s.severity is not None:
            events.append(
                self._event(
                    RESOLVED,
                    s.severity,
                    at_ms=at_ms,
                    since_ms=s.since_ms,
                    annotations=annotations,
                    summary="certificate renewed",
                )
            )
        if wanted is not None:
            events.append(
                self._event(
                    FIRING,
                    wanted,
                    at_ms=at_ms,
                    since_ms=at_ms,
                    annotations=annotations,
                    summary="certificate expires soon",
                )
            )
            s.since_ms = at_ms
        s.severity = wanted
        return events

    def _event(
        self, status: str, severity: str, *, at_ms: int, since_ms: int, annotations: dict[str, str], summary: str
    ) -> AlertEvent:
        return AlertEvent(
            kind="tls_cert_expiry",
            status=status,
            severity=severity,
            at_ms=at_ms,
            started_at_ms=since_ms,
            labels=self.labels,
            annotations={"summary": summary, **annotations},
        )
