"""The stack's configs agree with the one definition of ports and topics (no stack needed)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from netobs.stack.components import JAEGER_MAX_TRACES
from netobs.stack.ports import DEFAULT_PORTS, stack_ports
from netobs.stack.topics import RESULTS, TOPICS
from tests.e2e.conftest import E2E_SLOTS

REPO = Path(__file__).resolve().parents[2]
ENV_REF = re.compile(r"\$\{env:(NETOBS_[A-Z0-9_]+)(?::-[^}]*)?\}")
TEMPLATE_REF = re.compile(r"\$\{(NETOBS_[A-Z0-9_]+)\}")

# Variables the stack sets besides the ports (components.py), and the gateway's deployment inputs.
STACK_EXTRA = {"NETOBS_OTELCOL_STORAGE_DIR", "NETOBS_JAEGER_MAX_TRACES", "NETOBS_PROMETHEUS_RULES_DIR"}


@pytest.mark.parametrize(
    "config", ["otel-collector/config.local.yaml", "jaeger/config.yaml", "prometheus/prometheus.yml"]
)
def test_every_variable_a_local_config_reads_is_one_the_stack_sets(config: str) -> None:
    text = (REPO / config).read_text()
    used = set(ENV_REF.findall(text)) | set(TEMPLATE_REF.findall(text))
    assert used, f"{config} reads no NETOBS_* variable"
    assert used <= set(DEFAULT_PORTS.env()) | STACK_EXTRA, used - set(DEFAULT_PORTS.env())
    assert JAEGER_MAX_TRACES > 0


@pytest.mark.parametrize("config", ["otel-collector/config.local.yaml", "otel-collector/config.gateway.yaml"])
def test_collector_sends_results_to_the_defined_topic_raw(config: str) -> None:
    body = yaml.safe_load((REPO / config).read_text())
    kafka = body["exporters"]["kafka/results"]
    assert kafka["logs"] == {"topic": RESULTS.name, "encoding": "raw"}
    assert kafka["sending_queue"]["storage"] == "file_storage"
    pipelines = body["service"]["pipelines"]
    assert pipelines["logs/results"]["exporters"] == ["kafka/results"]
    assert "transform/netobs_labels" in pipelines["metrics"]["processors"]


def test_collector_keeps_the_agent_default_otlp_ports() -> None:
    assert (DEFAULT_PORTS.otelcol_otlp_grpc, DEFAULT_PORTS.otelcol_otlp_http) == (4317, 4318)


@pytest.mark.parametrize("offset", [0, 11000, 12150, 13500])
def test_ports_are_distinct_and_offsets_do_not_overlap_the_default_set(offset: int) -> None:
    ports = list(stack_ports(offset).as_dict().values())
    assert len(set(ports)) == len(ports)
    assert not stack_ports(offset).in_ephemeral_range()
    if offset:
        assert not set(ports) & set(DEFAULT_PORTS.as_dict().values())


def test_offset_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="out of range"):
        stack_ports(60000)


def test_topic_names_are_unique_and_prefixed() -> None:
    names = [t.name for t in TOPICS]
    assert len(set(names)) == len(names)
    assert all(n.startswith("netobs.") for n in names)
    assert {"netobs.results", "netobs.alerts", "netobs.deadletter"} == set(names)


@pytest.mark.parametrize("slot", E2E_SLOTS)
def test_e2e_slots_do_not_share_ports(slot: int) -> None:
    # A slot's stack (offset) and its broken-component stack (offset + 1000) against every other
    # slot's, the default set, and the bench's --start stack (13500).
    def ports(offset: int) -> set[int]:
        return set(stack_ports(offset).as_dict().values())

    mine = ports(slot) | ports(slot + 1000)
    assert not ports(slot) & ports(slot + 1000)
    assert not mine & (ports(0) | ports(13500))
    assert not stack_ports(slot + 1000).in_ephemeral_range()
    for other in E2E_SLOTS:
        if other != slot:
            assert not mine & (ports(other) | ports(other + 1000))
