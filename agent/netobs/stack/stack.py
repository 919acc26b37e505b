"""Bring the local stack up, report on it, take it down.

``up`` builds or fetches what is missing, starts each component as a detached background process
(pid file, log file), waits until each is ready, and returns the failures: a component that
exits or never gets ready is reported with the reason (the telling lines of its log) and the log
path. Components already running are left alone, so ``up`` is idempotent.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import signal
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from netobs.stack import procs
from netobs.stack.components import BACKENDS, COMPONENT_NAMES, Agent, Component, Say
from netobs.stack.layout import StackError, StackLayout

_POLL_S = 0.25
_TELLING = re.compile(r"error|fatal|panic|exception|failed|address already in use|cannot|invalid", re.I)


@dataclass(frozen=True)
class StartFailure:
    component: str
    reason: str
    log_file: Path

    def __str__(self) -> str:
        return f"{self.component}: {self.reason}\n    log: {self.log_file}"


@dataclass(frozen=True)
class ComponentStatus:
    component: str
    running: bool
    ready: bool
    pid: int | None
    port: int
    log_file: Path

    @property
    def state(self) -> str:
        if not self.running:
            return "down"
        return "up" if self.ready else "starting/unhealthy"


class Stack:
    def __init__(self, layout: StackLayout, agent_config: Path | None = None, say: Say = print) -> None:
        self.layout = layout
        self.say = say
        self.components: dict[str, Component] = {cls.name: cls(layout) for cls in BACKENDS}
        self.components[Agent.name] = Agent(layout, agent_config)
        self.agent_config = agent_config

    # -- selection ----------------------------------------------------------------------------------
    def select(self, names: Sequence[str] | None) -> list[Component]:
        if not names:
            chosen = [cls.name for cls in BACKENDS]
            if self.agent_config is not None:
                chosen.append(Agent.name)
        else:
            unknown = sorted(set(names) - set(COMPONENT_NAMES))
            if unknown:
                raise StackError(f"unknown component(s) {unknown}; known: {', '.join(COMPONENT_NAMES)}")
            chosen = [n for n in COMPONENT_NAMES if n in names]
        if Agent.name in chosen and self.agent_config is None:
            raise StackError("the agent needs --config FILE")
        return [self.components[n] for n in chosen]

    # -- queries -------------------------------------------------------------------------------------
    def pid_record(self, name: str) -> procs.PidRecord | None:
        record = procs.read_pid(self.layout.pid_file(name))
        return record if record is not None and procs.is_alive(record) else None

    def status(self) -> list[ComponentStatus]:
        rows = []
        for name in COMPONENT_NAMES:
            comp = self.components[name]
            record = self.pid_record(name)
            rows.append(
                ComponentStatus(
                    component=name,
                    running=record is not None,
                    ready=record is not None and comp.is_ready(),
                    pid=record.pid if record else None,
                    port=comp.port,
                    log_file=self.layout.log_file(name),
                )
            )
        return rows

    # -- lifecycle -----------------------------------------------------------------------------------
    def build(self, names: Sequence[str] | None = None) -> None:
        for comp in self.select(names):
            self.say(f"{comp.name}: checking build/fetch")
            comp.ensure_built(self.say)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One ``up``/``down`` at a time per state dir (two callers would start everything twice)."""
        self.layout.state_dir.mkdir(parents=True, exist_ok=True)
        with (self.layout.state_dir / ".lock").open("w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def up(self, names: Sequence[str] | None = None) -> list[StartFailure]:
        """Start what is not running and wait for readiness; returns the components that failed."""
        with self._locked():
            return self._up(names)

    def _up(self, names: Sequence[str] | None) -> list[StartFailure]:
        selected = self.select(names)
        risky = self.layout.ports.in_ephemeral_range()
        if risky:
            self.say(
                f"warning: port offset {self.layout.port_offset} puts ports {risky} in the kernel's "
                "ephemeral range, where client connections may hold them; offsets <= 13600 avoid that"
            )
        self.layout.record()
        failures: list[StartFailure] = []
        for comp in selected:
            comp.ensure_built(self.say)
        backends = [c for c in selected if c.name != Agent.name]
        failures += self._start_and_wait(backends)
        agents = [c for c in selected if c.name == Agent.name]
        if agents and not failures:
            failures += self._start_and_wait(agents)
        return failures

    def _start_and_wait(self, comps: Sequence[Component]) -> list[StartFailure]:
        failures: list[StartFailure] = []
        started: dict[str, tuple[procs.PidRecord, int]] = {}
        for comp in comps:
            launched = self._launch(comp)
            if isinstance(launched, StartFailure):
                failures.append(launched)
            else:
                started[comp.name] = launched
        return failures + self._wait(started)

    def _launch(self, comp: Component) -> StartFailure | tuple[procs.PidRecord, int]:
        """Start ``comp`` unless it runs; returns its pid record and the log offset to read reasons from."""
        log_file = self.layout.log_file(comp.name)
        offset = log_file.stat().st_size if log_file.exists() else 0
        running = self.pid_record(comp.name)
        if running is not None:
            self.say(f"{comp.name}: already running (pid {running.pid})")
            return running, offset
        try:
            comp.prepare(self.say)
        except (StackError, OSError, ValueError, KeyError) as exc:
            return StartFailure(comp.name, f"could not prepare: {exc}", log_file)
        env = {**os.environ, **self.layout.ports.env(), **comp.env()}
        pid = procs.spawn(comp.argv(), env, log_file, self.layout.pid_file(comp.name), cwd=self.layout.repo)
        self.say(f"{comp.name}: started (pid {pid}), log {log_file}")
        record = procs.read_pid(self.layout.pid_file(comp.name))
        assert record is not None
        return record, offset

    def _wait(self, started: dict[str, tuple[procs.PidRecord, int]]) -> list[StartFailure]:
        """Poll until every started component is ready (then run its after-ready hook) or failed."""
        failures: list[StartFailure] = []
        pending = dict(started)
        start = time.monotonic()
        ready_at: dict[str, float] = {}
        while pending:
            for name in list(pending):
                comp = self.components[name]
                record, log_offset = pending[name]
                log_file = self.layout.log_file(name)
                if not procs.is_alive(record):
                    code = procs.exit_code(record.pid)
                    how = f"exited with code {code}" if code is not None else "exited"
                    reason = f"{how}: {_reason(log_file, log_offset)}"
                    failures.append(StartFailure(name, reason, log_file))
                    del pending[name]
                    continue
                if comp.is_ready():
                    first = ready_at.setdefault(name, time.monotonic())
                    if time.monotonic() - first < _min_uptime_s(comp):
                        continue
                    hooks_done = self.layout.pid_file(name).with_suffix(".hooks")
                    if _read_text(hooks_done) != str(record.pid):
                        try:
                            comp.after_ready(self.say)
                        except StackError as exc:
                            failures.append(StartFailure(name, str(exc), log_file))
                            del pending[name]
                            continue
                        hooks_done.write_text(str(record.pid))
                    self.say(f"{name}: ready after {time.monotonic() - start:.1f} s")
                    del pending[name]
                elif time.monotonic() - start > comp.ready_timeout_s:
                    reason = f"not ready after {comp.ready_timeout_s:.0f} s (still running): {_reason(log_file, 0)}"
                    failures.append(StartFailure(name, reason, log_file))
                    del pending[name]
            if pending:
                time.sleep(_POLL_S)
        return failures

    def stop(self, name: str, sig: signal.Signals = signal.SIGTERM) -> bool:
        """Stop one component; returns whether it was running."""
        record = self.pid_record(name)
        if record is None:
            self.layout.pid_file(name).unlink(missing_ok=True)
            return False
        killed = procs.stop(record, self.components[name].stop_timeout_s, sig=sig)
        self.layout.pid_file(name).unlink(missing_ok=True)
        self.say(f"{name}: stopped (pid {record.pid}){' with SIGKILL' if killed else ''}")
        return True

    def kill(self, name: str) -> None:
        """SIGKILL a component at once (fault injection)."""
        record = self.pid_record(name)
        if record is not None:
            procs.stop(record, timeout_s=5.0, sig=signal.SIGKILL)
            self.say(f"{name}: killed (pid {record.pid})")

    def down(self, names: Sequence[str] | None = None) -> None:
        with self._locked():
            self._down(names)

    def _down(self, names: Sequence[str] | None) -> None:
        chosen = list(names) if names else list(COMPONENT_NAMES)
        unknown = sorted(set(chosen) - set(COMPONENT_NAMES))
        if unknown:
            raise StackError(f"unknown component(s) {unknown}; known: {', '.join(COMPONENT_NAMES)}")
        # Producers first, so the collector can hand its queue on while the backends still run.
        for first in (Agent.name, "otelcol"):
            if first in chosen:
                self.stop(first)
        rest = [n for n in chosen if n not in (Agent.name, "otelcol")]
        with ThreadPoolExecutor(max_workers=max(1, len(rest))) as pool:
            list(pool.map(self.stop, rest))


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _min_uptime_s(comp: Component) -> float:
    # The agent has no readiness endpoint: it must stay up a moment (a bad config exits at once).
    return 2.0 if comp.name == Agent.name else 0.0


def _reason(log_file: Path, offset: int) -> str:
    """The telling lines of what a component logged since ``offset``."""
    try:
        with log_file.open("rb") as fh:
            fh.seek(offset)
            text = fh.read()[-256 * 1024 :].decode(errors="replace")
    except OSError:
        return "(no log)"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("==== ")]
    telling = [ln for ln in lines if _TELLING.search(ln)]
    chosen = (telling or lines)[-4:]
    return " | ".join(ln[:400] for ln in chosen) if chosen else "(nothing logged)"
