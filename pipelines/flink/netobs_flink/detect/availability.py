"""Availability: per-series up/down, then cross-POP correlation into one of three diagnoses.

Per series (agent/POP, check, target), :class:`SeriesAvailability` turns results into up/down changes:
down after ``down_after`` consecutive failures, up after ``up_after`` consecutive successes. Between its
first failure and ``down_after`` the series is *suspect* (a change with ``suspect=True``); a success clears
it (an up change). A suspect series never alerts by itself: it only corroborates another POP's outage.

:class:`Correlator` sees every change (the job runs it on one key: changes are rare) and keeps, per
target, which POPs report it and which of them see it down. After each change it re-derives the set of
alerts that should fire and emits the difference:
- **target outage** (critical): at least ``max(min_pops, ceil(outage_ratio * n))`` of the n POPs that
  reported the target within ``member_ttl_s`` see it failing, at least one of them *down* (confirmed by
  ``down_after`` failures) and the others down or *suspect* (their latest result failed). So the outage
  fires one interval after the first failure (when the first POP is confirmed down and the others have
  failed once), not after every POP's own ``down_after`` failures; one failure from one POP, or single
  failures from many POPs, never page; labels check, target;
- **POP or network issue** (critical): one POP sees at least ``max(min_targets, ceil(pop_ratio * m))`` of
  its m targets down; labels pop;
- **local failure** (warning): a POP sees a target down that neither of the above explains; labels pop,
  check, target. When an outage or POP issue forms later, the local alerts it explains resolve with
  ``superseded_by`` naming it, so a page carries the diagnosis, not a list of symptoms.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from netobs_flink.detect.alert import FIRING, RESOLVED, AlertEvent


@dataclass(frozen=True)
class AvailabilityConfig:
    down_after: int = 2
    up_after: int = 2
    min_pops: int = 2
    outage_ratio: float = 0.5
    min_targets: int = 3
    pop_ratio: float = 0.5
    member_ttl_s: float = 900.0

    def __post_init__(self) -> None:
        if self.down_after < 1 or self.up_after < 1 or self.min_pops < 2 or self.min_targets < 2:
            raise ValueError("down_after, up_after >= 1; min_pops, min_targets >= 2")


@dataclass(frozen=True)
class Change:
    """One series went down (``down=True``) or came back up, at event time ``at_ms``."""

    pop: str
    check: str
    target: str
    down: bool
    at_ms: int
    error_type: str | None = None
    trace_id: str | None = None
    suspect: bool = False  # with down=True: failing, not yet confirmed (fewer than down_after failures)


@dataclass(frozen=True)
class Heartbeat:
    """ "This POP reports on (check, target)": membership for the correlator's k of n."""

    pop: str
    check: str
    target: str
    at_ms: int


@dataclass
class SeriesAvailability:
    """Consecutive-result state for one series; ``observe`` returns a :class:`Change` when it flips, when
    an up series fails for the first time (suspect), and when a suspect series has had ``up_after``
    consecutive successes (up). A series that fails now and then stays suspect (one change, no flapping)."""

    pop: str
    check: str
    target: str
    down: bool = False
    streak: int = 0  # consecutive results against the current state (failures while up, successes while down)
    last_ms: int = 0
    suspect: bool = False  # up, with a failure not yet followed by ``up_after`` consecutive successes
    ok_streak: int = 0  # consecutive successes while suspect

    def observe(
        self,
        at_ms: int,
        success: bool,
        config: AvailabilityConfig,
        error_type: str | None = None,
        trace_id: str | None = None,
    ) -> Change | None:
        if at_ms < self.last_ms:
            return None
        self.last_ms = at_ms
        if success != self.down:  # agrees with the current state
            self.streak = 0
            if not self.suspect:
                return None
            self.ok_streak += 1
            if self.ok_streak < config.up_after:
                return None
            self.suspect, self.ok_streak = False, 0
            return Change(self.pop, self.check, self.target, False, at_ms)
        self.streak += 1
        if self.streak < (config.up_after if self.down else config.down_after):
            if self.down:
                return None
            self.ok_streak = 0
            if self.suspect:
                return None
            self.suspect = True
            return Change(self.pop, self.check, self.target, True, at_ms, error_type, trace_id, suspect=True)
        self.down = not self.down
        self.streak = 0
        self.suspect, self.ok_streak = False, 0
        return Change(self.pop, self.check, self.target, self.down, at_ms, error_type, trace_id)

    def heartbeat(self) -> tuple[str, str, str, int]:
        return (self.pop, self.check, self.target, self.last_ms)


@dataclass
class _Down:
    since_ms: int
    error_type: str | None
    trace_id: str | None


@dataclass
class CorrelatorState:
    seen: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)  # (check, target) -> pop -> last ms
    down: dict[tuple[str, str, str], _Down] = field(default_factory=dict)  # (pop, check, target) -> since
    suspect: dict[tuple[str, str, str], _Down] = field(default_factory=dict)  # failing, not yet down
    active: dict[tuple[str, ...], AlertEvent] = field(default_factory=dict)  # alert key -> its firing event
    ended: dict[tuple[str, ...], int] = field(default_factory=dict)  # alert key -> when it last resolved

    def __setstate__(self, data: dict[str, object]) -> None:
        # State pickled before ``suspect`` existed (checkpoints of an older job) restores with none.
        self.__dict__.update({"suspect": {}, **data})


def split_state(state: CorrelatorState) -> tuple[CorrelatorState, dict[tuple[str, str], dict[str, int]]]:
    """(everything but the membership, the membership): the first is small and changes with every alert,
    the second holds every (target, POP) and changes with every heartbeat, so the job stores them apart."""
    return CorrelatorState(seen={}, down=state.down, suspect=state.suspect, active=state.active, ended=state.ended), (
        state.seen
    )


def join_state(core: CorrelatorState, seen: dict[tuple[str, str], dict[str, int]] | None) -> CorrelatorState:
    """Inverse of :func:`split_state`; ``seen`` None keeps the core's own (a state stored whole)."""
    if seen is not None:
        core.seen = seen
    return core


class Correlator:
    def __init__(self, config: AvailabilityConfig | None = None, state: CorrelatorState | None = None) -> None:
        self.config = config or AvailabilityConfig()
        self.state = state or CorrelatorState()
        self.members_added = 0  # (pop, check, target) memberships that ``seen`` or ``apply`` created

    def seen(self, pop: str, check: str, target: str, at_ms: int) -> None:
        """Record that ``pop`` reported on (check, target) at ``at_ms`` (membership for k of n); a new
        member counts in ``members_added``."""
        pops = self.state.seen.setdefault((check, target), {})
        self.members_added += pop not in pops
        pops[pop] = max(pops.get(pop, 0), at_ms)

    def apply(self, change: Change) -> list[AlertEvent]:
        """Apply one up/down change; returns the alert transitions it causes (resolutions first)."""
        self.seen(change.pop, change.check, change.target, change.at_ms)
        key = (change.pop, change.check, change.target)
        if change.down and change.suspect:
            if key not in self.state.down:
                self.state.suspect.setdefault(key, _Down(change.at_ms, change.error_type, change.trace_id))
        elif change.down:
            # Confirmed: the failure started with the first failed result (when it was suspect).
            first = self.state.suspect.pop(key, None) or _Down(change.at_ms, change.error_type, change.trace_id)
            self.state.down.setdefault(key, first)
        else:
            self.state.down.pop(key, None)
            self.state.suspect.pop(key, None)
        return self._reconcile(change.at_ms)

    # -- derivation --------------------------------------------------------------------------------
    def _members(self, check: str, target: str, now_ms: int) -> set[str]:
        ttl_ms = self.config.member_ttl_s * 1000
        pops = self.state.seen.get((check, target), {})
        members = {p for p, ms in pops.items() if now_ms - ms <= ttl_ms}
        members |= {p for (p, c, t) in self.state.down if (c, t) == (check, target)}
        members |= {p for (p, c, t) in self.state.suspect if (c, t) == (check, target)}
        return members

    def _live_suspect(self, key: tuple[str, str, str], now_ms: int) -> bool:
        """A suspect series counts while it failed, or reported (heartbeat), within ``member_ttl_s``."""
        pop, check, target = key
        last_ms = max(self.state.suspect[key].since_ms, self.state.seen.get((check, target), {}).get(pop, 0))
        return now_ms - last_ms <= self.config.member_ttl_s * 1000

    def _wanted(self, now_ms: int) -> dict[tuple[str, ...], AlertEvent]:
        c, down, suspect = self.config, self.state.down, self.state.suspect
        wanted: dict[tuple[str, ...], AlertEvent] = {}
        by_target: dict[tuple[str, str], list[str]] = {}
        by_pop: dict[str, list[tuple[str, str]]] = {}
        for pop, check, target in down:
            by_target.setdefault((check, target), []).append(pop)
            by_pop.setdefault(pop, []).append((check, target))

        suspect_by_target: dict[tuple[str, str], list[str]] = {}
        for pop, check, target in suspect:
            if not self._live_suspect((pop, check, target), now_ms):
                continue  # a series that stopped reporting while suspect corroborates nothing
            suspect_by_target.setdefault((check, target), []).append(pop)

        outages: set[tuple[str, str]] = set()
        for (check, target), pops in by_target.items():  # at least one POP confirmed down
            n = len(self._members(check, target, now_ms))
            need = max(c.min_pops, math.ceil(c.outage_ratio * n))
            failing = {p: down[(p, check, target)] for p in pops}
            failing.update({p: suspect[(p, check, target)] for p in suspect_by_target.get((check, target), [])})
            if n >= c.min_pops and len(failing) >= need:
                outages.add((check, target))
                since = min(d.since_ms for d in failing.values())
                wanted[("target_outage", check, target)] = self._fire(
                    "target_outage",
                    "critical",
                    since,
                    {"check": check, "target": target},
                    {
                        "summary": f"{target} ({check}) is down from {len(failing)} of {n} POPs",
                        "pops_failing": ",".join(sorted(failing)),
                        "pops_confirmed": ",".join(sorted(pops)),
                        "pops_total": str(n),
                        **self._details(failing.values()),
                    },
                )
        pop_issues: set[str] = set()
        for pop, series in by_pop.items():
            m = sum(1 for pops in self.state.seen.values() if pop in pops)
            need = max(c.min_targets, math.ceil(c.pop_ratio * m))
            if len(series) >= need:
                pop_issues.add(pop)
                since = min(down[(pop, ch, t)].since_ms for ch, t in series)
                wanted[("pop_issue", pop)] = self._fire(
                    "pop_issue",
                    "critical",
                    since,
                    {"pop": pop},
                    {
                        "summary": f"POP {pop} fails {len(series)} of {m} targets: POP or network issue",
                        "targets_failing": ",".join(sorted(t for _, t in series)),
                        **self._details([down[(pop, ch, t)] for ch, t in series]),
                    },
                )
        for (pop, check, target), d in down.items():
            if (check, target) in outages or pop in pop_issues:
                continue
            wanted[("local_failure", pop, check, target)] = self._fire(
                "local_failure",
                "warning",
                d.since_ms,
                {"pop": pop, "check": check, "target": target},
                {"summary": f"{target} ({check}) fails from POP {pop} only", **self._details([d])},
            )
        return wanted

    @staticmethod
    def _details(downs: Iterable[_Down]) -> dict[str, str]:
        downs = list(downs)
        out: dict[str, str] = {}
        errors = sorted({d.error_type for d in downs if d.error_type})
        if errors:
            out["error_types"] = ",".join(errors)
        traces = [d.trace_id for d in sorted(downs, key=lambda d: d.since_ms) if d.trace_id]
        if traces:
            out["trace_id"] = traces[0]
        return out

    @staticmethod
    def _fire(kind: str, severity: str, since_ms: int, labels: dict[str, str], ann: dict[str, str]) -> AlertEvent:
        return AlertEvent(kind, FIRING, severity, since_ms, since_ms, labels, ann)

    def _reconcile(self, now_ms: int) -> list[AlertEvent]:
        wanted = self._wanted(now_ms)
        active = self.state.active
        events: list[AlertEvent] = []
        superseding = [k for k in wanted if k not in active and k[0] != "local_failure"]
        for key in [k for k in active if k not in wanted]:
            fired = active.pop(key)
            annotations = dict(fired.annotations)
            annotations["summary"] = "recovered"
            if key[0] == "local_failure":
                pop, check, target = key[1:]
                for other in superseding:
                    if other in {("target_outage", check, target), ("pop_issue", pop)}:
                        annotations["summary"] = "superseded"
                        annotations["superseded_by"] = wanted[other].alertname
            events.append(
                AlertEvent(fired.kind, RESOLVED, fired.severity, now_ms, fired.started_at_ms, fired.labels, annotations)
            )
            self.state.ended[key] = now_ms
        for key, event in wanted.items():
            if key not in active:
                # Fires now (the transition's time), started when the first POP saw the failure, or when
                # the same alert last ended: a second episode is a new alert with its own start.
                started = max(event.started_at_ms, self.state.ended.pop(key, event.started_at_ms))
                fired = AlertEvent(event.kind, FIRING, event.severity, now_ms, started, event.labels, event.annotations)
                active[key] = fired
                events.append(fired)
        ttl_ms = self.config.member_ttl_s * 1000
        self.state.ended = {k: ms for k, ms in self.state.ended.items() if now_ms - ms <= ttl_ms}
        self.state.suspect = {k: d for k, d in self.state.suspect.items() if self._live_suspect(k, now_ms)}
        return events
