"""Where the local stack keeps things: the checkout it runs from, the build cache, the state dir.

- repo: the netobs checkout (configs live there); ``NETOBS_REPO`` or found from this file / cwd.
- cache: ``${NETOBS_CACHE:-~/.cache/netobs}``, built binaries and fetched jars, keyed by version.
- state: ``${NETOBS_STATE:-~/.local/state/netobs}/stack``: per-component data, ``logs/*.log``,
  ``run/*.pid`` and ``stack.json`` (the port offset the running stack was started with).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from netobs.stack.ports import StackPorts, stack_ports

_MARKER = Path("otel-collector") / "config.local.yaml"


class StackError(Exception):
    """The stack cannot do what was asked; the message says why and what to do."""


def find_repo(start: Path | None = None) -> Path:
    """The netobs checkout: ``NETOBS_REPO``, else the first parent of this file or of cwd with the configs."""
    env = os.environ.get("NETOBS_REPO")
    if env:
        repo = Path(env).resolve()
        if not (repo / _MARKER).is_file():
            raise StackError(f"NETOBS_REPO={env} has no {_MARKER}")
        return repo
    candidates = [Path(__file__).resolve(), (start or Path.cwd()).resolve()]
    for candidate in candidates:
        for parent in [candidate, *candidate.parents]:
            if (parent / _MARKER).is_file():
                return parent
    raise StackError(f"cannot find the netobs checkout (no {_MARKER}); run from it or set NETOBS_REPO")


def default_cache_dir() -> Path:
    return Path(os.environ.get("NETOBS_CACHE") or Path.home() / ".cache" / "netobs")


def default_state_dir() -> Path:
    root = os.environ.get("NETOBS_STATE") or Path.home() / ".local" / "state" / "netobs"
    return Path(root) / "stack"


@dataclass(frozen=True)
class StackLayout:
    repo: Path
    cache_dir: Path
    state_dir: Path
    port_offset: int
    ports: StackPorts

    @classmethod
    def create(
        cls,
        state_dir: Path | None = None,
        port_offset: int | None = None,
        repo: Path | None = None,
    ) -> StackLayout:
        """Settings from arguments, then the environment, then the running stack's ``stack.json``."""
        state = (state_dir or default_state_dir()).resolve()
        if port_offset is None:
            env_offset = os.environ.get("NETOBS_STACK_PORT_OFFSET")
            port_offset = int(env_offset) if env_offset else _recorded_offset(state)
        return cls(
            repo=(repo or find_repo()).resolve(),
            cache_dir=default_cache_dir().resolve(),
            state_dir=state,
            port_offset=port_offset,
            ports=stack_ports(port_offset),
        )

    def data_dir(self, component: str) -> Path:
        return self.state_dir / component

    def log_file(self, component: str) -> Path:
        return self.state_dir / "logs" / f"{component}.log"

    def pid_file(self, component: str) -> Path:
        return self.state_dir / "run" / f"{component}.pid"

    @property
    def record_file(self) -> Path:
        return self.state_dir / "stack.json"

    def record(self) -> None:
        """Remember the offset so ``status``/``down`` without arguments find the same ports."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        body = {"port_offset": self.port_offset, "ports": self.ports.as_dict(), "repo": str(self.repo)}
        self.record_file.write_text(json.dumps(body, indent=2) + "\n")


def _recorded_offset(state_dir: Path) -> int:
    try:
        body = json.loads((state_dir / "stack.json").read_text())
    except (OSError, ValueError):
        return 0
    offset = body.get("port_offset", 0) if isinstance(body, dict) else 0
    return offset if isinstance(offset, int) else 0
