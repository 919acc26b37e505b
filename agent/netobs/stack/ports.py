"""Every loopback port of the local stack, defined once.

Jaeger and the collector both default to 4317/4318/8888/13133, so each component gets its own
ports here. The collector's OTLP receiver keeps 4317 (gRPC) and 4318 (HTTP) because agents
default to those. A port offset moves the whole set (tests run a second stack beside a
developer's one with ``offset=11000``); the offset set must not overlap the default one, and
should stay below 32768, where the kernel's ephemeral range starts (a client connection
holding such a port makes a listener fail to bind). Offsets up to 13600 keep every port below
it (:data:`EPHEMERAL_PORT_START`).

The configs in ``otel-collector/``, ``jaeger/`` and ``prometheus/`` read these as
``NETOBS_<NAME>_PORT`` environment variables (see :meth:`StackPorts.env`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

HOST = "127.0.0.1"
EPHEMERAL_PORT_START = 32768  # Linux default net.ipv4.ip_local_port_range


@dataclass(frozen=True)
class StackPorts:
    """TCP ports on 127.0.0.1, one per listener."""

    otelcol_otlp_grpc: int = 4317
    otelcol_otlp_http: int = 4318
    otelcol_health: int = 13133
    otelcol_metrics: int = 8888
    jaeger_otlp_grpc: int = 14317
    jaeger_otlp_http: int = 14318
    jaeger_query_http: int = 16686
    jaeger_query_grpc: int = 16685
    jaeger_health: int = 13134
    jaeger_metrics: int = 8889
    kafka: int = 9092
    kafka_controller: int = 19093
    prometheus: int = 9090
    alertmanager: int = 9093

    def shifted(self, offset: int) -> StackPorts:
        """The same set moved by ``offset``; raises ValueError if a port leaves 1..65535."""
        moved = {f.name: getattr(self, f.name) + offset for f in dataclasses.fields(self)}
        bad = {name: port for name, port in moved.items() if not 0 < port < 65536}
        if bad:
            raise ValueError(f"port offset {offset} puts ports out of range: {bad}")
        return StackPorts(**moved)

    def in_ephemeral_range(self) -> list[int]:
        return sorted(p for p in self.as_dict().values() if p >= EPHEMERAL_PORT_START)

    def as_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def env(self) -> dict[str, str]:
        """``NETOBS_<NAME>_PORT`` variables, as the component configs expect them."""
        return {f"NETOBS_{name.upper()}_PORT": str(port) for name, port in self.as_dict().items()}


DEFAULT_PORTS = StackPorts()


def stack_ports(offset: int = 0) -> StackPorts:
    return DEFAULT_PORTS.shifted(offset) if offset else DEFAULT_PORTS
