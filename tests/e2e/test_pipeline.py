"""OTLP in, each backend out: metrics in Prometheus, spans in Jaeger, result records in Kafka."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from netobs.stack.stack import Stack
from netobs.stack.topics import RESULTS, TOPICS
from tests.e2e.backends import TopicReader, jaeger_trace, promql, result_ids, wait_for
from tests.e2e.emitter import BUCKETS_S, Emitter

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]


@pytest.fixture
def emitter(otlp_endpoint: str) -> Iterator[Emitter]:
    em = Emitter(otlp_endpoint)
    yield em
    em.shutdown()


def test_histogram_reaches_prometheus_with_agent_pop_check_target_labels(stack: Stack, emitter: Emitter) -> None:
    durations_s = [0.003, 0.02, 0.02, 0.3, 2.0]
    for d in durations_s:
        emitter.record_duration("web", "https://example.test/", d)
    emitter.record_duration("dns-root", "a.root-servers.test", 0.007)
    emitter.flush()

    selector = f'agent="{emitter.agent_id}",pop="e2e-pop",check="web",target="https://example.test/"'
    series = wait_for(
        "histogram buckets in Prometheus",
        lambda: promql(stack.layout.ports, f"netobs_probe_duration_seconds_bucket{{{selector}}}"),
        timeout_s=60,
    )
    by_le = {s["metric"]["le"]: float(s["value"][1]) for s in series}
    expected_le = {format(b, "g") for b in BUCKETS_S} | {"+Inf"}
    assert {str(float(le)) if le != "+Inf" else le for le in by_le} == {
        str(float(le)) if le != "+Inf" else le for le in expected_le
    }
    cumulative = {le: sum(1 for d in durations_s if d <= float(le)) for le in by_le}
    assert by_le == cumulative
    for s in series:
        assert s["metric"]["check_type"] == "http"
        assert "netobs_check_name" not in s["metric"]  # renamed to check, not duplicated

    count = promql(stack.layout.ports, f"netobs_probe_duration_seconds_count{{{selector}}}")
    assert [float(c["value"][1]) for c in count] == [len(durations_s)]
    total = promql(stack.layout.ports, f"netobs_probe_duration_seconds_sum{{{selector}}}")
    assert float(total[0]["value"][1]) == pytest.approx(sum(durations_s))
    other = promql(stack.layout.ports, f'netobs_probe_duration_seconds_count{{agent="{emitter.agent_id}"}}')
    assert {s["metric"]["check"] for s in other} == {"web", "dns-root"}


def test_span_tree_reaches_jaeger(stack: Stack, emitter: Emitter) -> None:
    trace_id = emitter.span_tree("http web", ["dns", "connect", "tls", "ttfb", "transfer"])
    emitter.flush()

    found = wait_for("trace in Jaeger", lambda: jaeger_trace(stack.layout.ports, trace_id), timeout_s=60)
    spans = found["spans"]
    assert len(spans) == 6
    by_id = {s["spanID"]: s for s in spans}
    roots = [s for s in spans if not s.get("references")]
    assert [r["operationName"] for r in roots] == ["http web"]
    children = sorted(s["operationName"] for s in spans if s.get("references"))
    assert children == sorted(["dns", "connect", "tls", "ttfb", "transfer"])
    for s in spans:
        for ref in s.get("references", []):
            assert ref["refType"] == "CHILD_OF"
            assert by_id[ref["spanID"]]["operationName"] == "http web"
    process = found["processes"][spans[0]["processID"]]
    assert process["serviceName"] == "netobs-agent"
    tags = {t["key"]: t["value"] for t in process["tags"]}
    assert tags["netobs.pop"] == "e2e-pop"
    assert tags["service.instance.id"] == emitter.agent_id


def test_result_records_reach_kafka_as_raw_json(stack: Stack, emitter: Emitter) -> None:
    reader = TopicReader(stack.layout.ports, RESULTS.name)
    try:
        emitter.emit_plain_log(f"not a result {emitter.agent_id}")
        as_string = [emitter.emit_result("web", f"https://t{i}.test/") for i in range(5)]
        as_bytes = emitter.emit_result("web", "https://bytes.test/", as_bytes=True)
        emitter.flush()
        wanted = {r.result_id for r in [*as_string, as_bytes]}
        values = reader.wait_for(lambda vs: wanted <= set(result_ids(vs)), timeout_s=60)
    finally:
        reader.close()

    # Keyed by the agent's resource: one partition, so an agent's results stay in order.
    placements = {reader.placement[v] for v in values if emitter.agent_id.encode() in v}
    assert len(placements) == 1
    assert next(iter(placements))[1]

    mine = {}
    for value in values:
        body = json.loads(value)  # every message is one JSON object: the raw encoding
        assert isinstance(body, dict)
        if body.get("agent_id") == emitter.agent_id:
            mine[body["result_id"]] = value
    assert set(mine) == wanted  # one message per record, nothing else of ours (the plain log stayed out)
    for sent in as_string:
        assert json.loads(mine[sent.result_id]) == sent.body
    # A bytes body is passed through verbatim.
    assert mine[as_bytes.result_id] == as_bytes.raw.encode()
    assert not any(b"not a result" in v for v in values)


def test_collector_reports_its_own_metrics_to_prometheus(stack: Stack) -> None:
    up = wait_for(
        "the otelcol scrape job up",
        lambda: [s for s in promql(stack.layout.ports, 'up{job="otelcol"}') if s["value"][1] == "1"],
        timeout_s=45,
        interval_s=2.0,
    )
    assert up[0]["metric"]["instance"] == f"127.0.0.1:{stack.layout.ports.otelcol_metrics}"
    own = promql(stack.layout.ports, 'count({job="otelcol", __name__=~"otelcol_.+"})')
    assert own and float(own[0]["value"][1]) > 5, "collector self-metrics missing"


def test_stack_created_the_topics_with_retention(stack: Stack) -> None:
    from confluent_kafka.admin import AdminClient, ConfigResource

    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{stack.layout.ports.kafka}"})
    metadata = admin.list_topics(timeout=30)
    for topic in TOPICS:
        assert topic.name in metadata.topics, sorted(metadata.topics)
        assert len(metadata.topics[topic.name].partitions) == topic.partitions
    resources = [ConfigResource(ConfigResource.Type.TOPIC, t.name) for t in TOPICS]
    for resource, future in admin.describe_configs(resources).items():
        configs = future.result(timeout=30)
        wanted = next(t for t in TOPICS if t.name == resource.name)
        assert int(configs["retention.ms"].value) == wanted.retention_ms


def test_otlp_http_receiver_routes_results_too(stack: Stack) -> None:
    from opentelemetry._logs import SeverityNumber
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor

    provider = LoggerProvider()
    endpoint = f"http://127.0.0.1:{stack.layout.ports.otelcol_otlp_http}/v1/logs"
    provider.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=endpoint, timeout=10)))
    rid = f"http-{uuid.uuid4()}"
    body = {"result_id": rid, "check_name": "via-http", "duration_ms": 0.5}
    provider.get_logger("netobs.e2e").emit(
        body=json.dumps(body), severity_number=SeverityNumber.INFO, attributes={"netobs.result.id": rid}
    )
    assert provider.force_flush(20_000)
    provider.shutdown()
    reader = TopicReader(stack.layout.ports, RESULTS.name)
    try:
        values = reader.wait_for(lambda vs: rid in result_ids(vs), timeout_s=60)
    finally:
        reader.close()
    assert [json.loads(v) for v in values if rid.encode() in v] == [body]
