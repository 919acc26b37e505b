"""Prometheus names of the netobs metrics as the collector writes them, and the datasources' uids.

OTel instrument ``netobs.icmp.rtt`` (unit ``s``) becomes ``netobs_icmp_rtt_seconds``; counters get
``_total``; annotation units (``{run}``) vanish; unit ``1`` gauges get ``_ratio``
(docs/metrics.md, tests/contract/golden/metric_catalogue.json).
"""

from __future__ import annotations

from typing import Final

# Labels (collector path).
AGENT: Final = "agent"
POP: Final = "pop"
CHECK: Final = "check"
CHECK_TYPE: Final = "check_type"
TARGET: Final = "target"
ERROR_TYPE: Final = "error_type"
SUCCESS: Final = "netobs_probe_success"
PHASE: Final = "netobs_phase"
RELOAD_OUTCOME: Final = "netobs_reload_outcome"

# Probe metrics.
RUNS: Final = "netobs_probe_runs_total"
DURATION: Final = "netobs_probe_duration_seconds"
PHASE_DURATION: Final = "netobs_probe_phase_duration_seconds"
ICMP_RTT: Final = "netobs_icmp_rtt_seconds"
ICMP_SENT: Final = "netobs_icmp_packets_sent_total"
ICMP_LOST: Final = "netobs_icmp_packets_lost_total"
ICMP_JITTER: Final = "netobs_icmp_jitter_seconds"
CERT_EXPIRY: Final = "netobs_tls_cert_expiry_seconds"
HOPS: Final = "netobs_traceroute_hops"
REACHED: Final = "netobs_traceroute_reached_ratio"
PATH_ID: Final = "netobs_traceroute_path_id_ratio"
LAST_HOP_RTT: Final = "netobs_traceroute_last_hop_rtt_seconds"

# Agent metrics.
LATENESS: Final = "netobs_agent_schedule_lateness_seconds"
SCHEDULED: Final = "netobs_agent_scheduled"
RELOADS: Final = "netobs_agent_config_reloads_total"
SKIPPED: Final = "netobs_agent_runs_skipped_total"

# The agent process (OTel process metrics; other services' carry no agent label).
PROCESS_CPU: Final = "process_cpu_time_seconds_total"
PROCESS_MEMORY: Final = "process_memory_usage_bytes"
PROCESS_FDS: Final = "process_unix_file_descriptor_count"

# The agent's export threads (OTel SDK self-observability counters, agent/netobs/export_metrics.py): items
# handed to an exporter or dropped (processors), sent or failed (exporters); error_type says what went wrong.
EXPORT_PROCESSED: Final = "otel_sdk_processor_(span|log)_processed_total"  # regular expressions of names
EXPORT_EXPORTED: Final = "otel_sdk_exporter_(span|log|metric_data_point)_exported_total"
COMPONENT_NAME: Final = "otel_component_name"

# Kafka topics (agent/netobs/stack/topics.py).
RESULTS_TOPIC: Final = "netobs.results"
ALERTS_TOPIC: Final = "netobs.alerts"

# Provisioned datasources (grafana/provisioning/datasources/netobs.yaml).
PROMETHEUS_UID: Final = "netobs-prometheus"
JAEGER_UID: Final = "netobs-jaeger"
AGENT_SERVICE: Final = "netobs-agent"  # service.name of the agent's spans
