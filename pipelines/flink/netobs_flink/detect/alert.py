"""Alerts: what every detector emits, their stable identity, and their Alertmanager v2 / Kafka forms.

A detector emits an :class:`AlertEvent` at each transition of an alert's lifecycle: one ``firing``
event when it starts and one ``resolved`` event when it ends, both carrying the same labels (so the
same fingerprint) and the same ``started_at_ms``. Labels identify the alert and never change during
its life (severity included); annotations describe it and may change.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

FIRING = "firing"
RESOLVED = "resolved"

SEVERITIES = ("info", "warning", "critical")

# kind -> Alertmanager alertname. One place, so dashboards and routes can rely on the names.
ALERT_NAMES: dict[str, str] = {
    "latency_increase": "NetobsLatencyIncrease",
    "latency_decrease": "NetobsLatencyDecrease",
    "error_rate": "NetobsErrorRate",
    "packet_loss": "NetobsPacketLoss",
    "target_outage": "NetobsTargetOutage",
    "pop_issue": "NetobsPopOrNetworkIssue",
    "local_failure": "NetobsLocalFailure",
    "path_change": "NetobsPathChange",
    "tls_cert_expiry": "NetobsTlsCertExpiry",
}


@dataclass(frozen=True)
class AlertEvent:
    """One lifecycle transition of one alert.

    ``at_ms`` is the event time of the transition (epoch ms); ``started_at_ms`` is when the alert
    began firing (equal to ``at_ms`` on the firing event).
    """

    kind: str
    status: str
    severity: str
    at_ms: int
    started_at_ms: int
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in ALERT_NAMES:
            raise ValueError(f"unknown alert kind {self.kind!r}")
        if self.status not in (FIRING, RESOLVED):
            raise ValueError(f"status must be firing or resolved, not {self.status!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, not {self.severity!r}")

    @property
    def alertname(self) -> str:
        return ALERT_NAMES[self.kind]

    def all_labels(self) -> dict[str, str]:
        """The Alertmanager label set: alertname, severity, then the detector's identity labels."""
        out = {"alertname": self.alertname, "severity": self.severity}
        out.update({k: str(v) for k, v in self.labels.items() if v is not None and v != ""})
        return out

    @property
    def fingerprint(self) -> str:
        """Stable identity: a hash of the sorted label set (the same for the firing and resolved events)."""
        canonical = json.dumps(sorted(self.all_labels().items()), separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def event_id(self) -> str:
        """Identity of this transition (fingerprint, status, start): the dedup key on the alerts topic."""
        return f"{self.fingerprint}:{self.status}:{self.started_at_ms}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "fingerprint": self.fingerprint,
            "kind": self.kind,
            "status": self.status,
            "severity": self.severity,
            "at_ms": self.at_ms,
            "started_at_ms": self.started_at_ms,
            "labels": self.all_labels(),
            "annotations": dict(self.annotations),
        }

    def to_json(self) -> str:
        """The Kafka alerts-topic form: compact JSON, keys in a fixed order."""
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)


def event_from_dict(data: Mapping[str, Any]) -> AlertEvent:
    """Inverse of :meth:`AlertEvent.to_dict` (alertname/severity are taken out of the labels)."""
    labels = {k: v for k, v in data["labels"].items() if k not in ("alertname", "severity")}
    return AlertEvent(
        kind=data["kind"],
        status=data["status"],
        severity=data["severity"],
        at_ms=int(data["at_ms"]),
        started_at_ms=int(data["started_at_ms"]),
        labels=labels,
        annotations=dict(data.get("annotations", {})),
    )


def iso_utc(ms: int) -> str:
    """RFC 3339 timestamp with milliseconds, as Alertmanager's API expects."""
    return datetime.fromtimestamp(ms / 1000.0, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def to_alertmanager(event: AlertEvent, *, now_ms: int, resend_ttl_s: float, generator_url: str = "") -> dict[str, Any]:
    """One element of the body of ``POST /api/v2/alerts``.

    A firing alert carries ``endsAt = now + resend_ttl_s`` so that Alertmanager resolves it by itself if
    the job stops re-sending it (the job re-sends well within that time); a resolved alert carries its
    resolution time as ``endsAt``.
    """
    ends_ms = event.at_ms if event.status == RESOLVED else now_ms + int(resend_ttl_s * 1000)
    body: dict[str, Any] = {
        "labels": event.all_labels(),
        "annotations": dict(event.annotations),
        "startsAt": iso_utc(event.started_at_ms),
        "endsAt": iso_utc(ends_ms),
    }
    if generator_url:
        body["generatorURL"] = generator_url
    return body
