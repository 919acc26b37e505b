"""k8s/: every overlay builds with kustomize; every manifest validates offline against the Kubernetes
schemas (kubernetes-validate, strict: unknown fields fail), the FlinkDeployment against the Flink
operator's own CRD schema, the Strimzi resources against structural schemas (strimzi_schemas.py); and
the deployment says the same as the code it deploys (topics, collector labels, dashboards, rules, agent
configs, security settings).
"""

from __future__ import annotations

import copy
import functools
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from netobs.config import load_config
from netobs.stack.topics import TOPICS
from tests.deploy.strimzi_schemas import SCHEMAS as STRIMZI_SCHEMAS

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
OVERLAYS = sorted(p.parent.name for p in (K8S / "overlays").glob("*/kustomization.yaml"))
POPS = sorted(p.parent.name for p in (K8S / "pops").glob("*/kustomization.yaml"))
KUBERNETES_VERSION = "1.33.0"
CUSTOM_KINDS = {"FlinkDeployment", *STRIMZI_SCHEMAS}
# Flink 2.x versions the job needs; the newest operator API jar on Maven Central (1.10.0) stops at v1_20.
NEWER_FLINK_VERSIONS = ["v2_0", "v2_1", "v2_2"]

pytestmark = pytest.mark.real


@functools.cache
def _tools() -> dict[str, str]:
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "setup.d" / "60-k8s.sh"), "--print"],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)


@functools.cache
def build(overlay: str) -> tuple[dict[str, Any], ...]:
    proc = subprocess.run(
        [_tools()["KUSTOMIZE"], "build", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return tuple(d for d in yaml.safe_load_all(proc.stdout) if d)


def _of(docs: tuple[dict[str, Any], ...], kind: str) -> Iterator[dict[str, Any]]:
    return (d for d in docs if d["kind"] == kind)


def _named(docs: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in _of(docs, kind) if d["metadata"]["name"] == name)


def _generated(docs: tuple[dict[str, Any], ...], kind: str, prefix: str) -> dict[str, Any]:
    """A generated ConfigMap/Secret, whose name carries a content hash."""
    return next(
        d for d in _of(docs, kind) if re.fullmatch(rf"{re.escape(prefix)}-[a-z0-9]{{10}}", d["metadata"]["name"])
    )


def test_there_are_overlays_and_pops() -> None:
    assert {"demo", "dev"} <= set(OVERLAYS)
    assert len(POPS) >= 3


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_builds(overlay: str) -> None:
    docs = build(overlay)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "StatefulSet", "HorizontalPodAutoscaler", "CronJob", "FlinkDeployment", "Kafka"} <= kinds
    assert all(d["metadata"].get("namespace") == "netobs" for d in docs if d["kind"] != "Namespace")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_builtin_resources_validate_strictly_against_the_kubernetes_schemas(overlay: str) -> None:
    errors = []
    checked = 0
    for doc in build(overlay):
        if doc["kind"] in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            checked += 1
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}")
    assert not errors, "\n".join(errors)
    assert checked >= 30


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (["spec", "template", "spec", "containers", 0, "imagePullPolicyy"], "Always"),  # unknown key
        (["spec", "replicas"], "two"),  # wrong type
        (["spec", "template", "spec", "securityContext", "sysctls", 0, "value"], 0),  # wrong type, nested
    ],
)
def test_kubernetes_validation_catches_a_broken_agent(path: list[str | int], value: object) -> None:
    agent = copy.deepcopy(_named(build("demo"), "Deployment", "netobs-agent-eu-west"))
    node: Any = agent
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(agent, KUBERNETES_VERSION, strict=True)


def _strict(schema: Any) -> Any:
    """An openAPIV3Schema as strict as the API server's pruning makes it: unknown keys are errors."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if out.get("type") == "object" and "properties" in out and not out.get("x-kubernetes-preserve-unknown-fields"):
            out.setdefault("additionalProperties", False)
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@functools.cache
def _flink_schema() -> dict[str, Any]:
    crd_file = Path(_tools()["FLINK_CRDS"]) / "flinkdeployments.flink.apache.org-v1.yml"
    crd = yaml.safe_load(crd_file.read_text())
    assert crd["kind"] == "CustomResourceDefinition"
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1beta1")
    schema: dict[str, Any] = _strict(version["schema"]["openAPIV3Schema"])
    flink_version = schema["properties"]["spec"]["properties"]["flinkVersion"]
    assert "v1_20" in flink_version["enum"]
    flink_version["enum"] = [*flink_version["enum"], *NEWER_FLINK_VERSIONS]
    # apiVersion, kind and metadata (ObjectMeta) are checked by the API server itself, not by the CRD schema.
    schema["properties"]["metadata"] = {"type": "object"}
    schema["properties"]["apiVersion"] = {"const": "flink.apache.org/v1beta1"}
    schema["properties"]["kind"] = {"const": "FlinkDeployment"}
    return schema


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_flink_deployment_validates_against_the_operator_crd(overlay: str) -> None:
    (flink,) = _of(build(overlay), "FlinkDeployment")
    jsonschema.validate(flink, _flink_schema())
    assert flink["spec"]["flinkVersion"] in NEWER_FLINK_VERSIONS  # PyFlink 2.2 (pipelines/flink)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_flink_job_parallelism_fits_the_task_slots(overlay: str) -> None:
    (flink,) = _of(build(overlay), "FlinkDeployment")
    spec = flink["spec"]
    args = spec["job"]["args"]
    assert args[-2] == "--parallelism" and int(args[-1]) == spec["job"]["parallelism"]
    slots = spec["taskManager"]["replicas"] * int(spec["flinkConfiguration"]["taskmanager.numberOfTaskSlots"])
    assert spec["job"]["parallelism"] <= slots


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda f: f["spec"]["taskManager"].__setitem__("replicas", "two"), "is not of type"),
        (lambda f: f["spec"]["job"].__setitem__("upgradeMode", "sometimes"), "is not one of"),
        (lambda f: f["spec"].__setitem__("taskmanager", {}), "Additional properties"),
    ],
)
def test_flink_crd_validation_catches_errors(mutate: Any, problem: str) -> None:
    (flink,) = _of(build("demo"), "FlinkDeployment")
    broken = copy.deepcopy(flink)
    mutate(broken)
    with pytest.raises(jsonschema.ValidationError, match=problem):
        jsonschema.validate(broken, _flink_schema())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_strimzi_resources_validate_structurally(overlay: str) -> None:
    docs = [d for d in build(overlay) if d["kind"] in STRIMZI_SCHEMAS]
    assert {d["kind"] for d in docs} == set(STRIMZI_SCHEMAS)
    for doc in docs:
        jsonschema.validate(doc, STRIMZI_SCHEMAS[doc["kind"]])


@pytest.mark.parametrize(
    ("kind", "mutate"),
    [
        ("KafkaTopic", lambda d: d["spec"].__setitem__("partitionz", 3)),
        ("KafkaNodePool", lambda d: d["spec"].__setitem__("roles", ["leader"])),
        ("Kafka", lambda d: d["metadata"]["annotations"].pop("strimzi.io/kraft")),
    ],
)
def test_strimzi_schemas_catch_errors(kind: str, mutate: Any) -> None:
    doc = copy.deepcopy(next(_of(build("demo"), kind)))
    mutate(doc)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, STRIMZI_SCHEMAS[kind])


def test_kafka_topics_match_the_stack_topics() -> None:
    topics = {d["metadata"]["name"]: d["spec"] for d in _of(build("demo"), "KafkaTopic")}
    assert set(topics) == {t.name for t in TOPICS}
    for topic in TOPICS:
        assert topics[topic.name]["partitions"] == topic.partitions
        assert topics[topic.name]["config"]["retention.ms"] == topic.retention_ms


def test_gateway_labels_metrics_like_the_local_collector() -> None:
    """Dashboards and rules depend on the label names the collector sets; both configs must set the same."""
    local = yaml.safe_load((ROOT / "otel-collector" / "config.local.yaml").read_text())
    gateway = yaml.safe_load((K8S / "base" / "collector" / "gateway-config.yaml").read_text())
    name = "transform/netobs_labels"
    assert gateway["processors"][name] == local["processors"][name]
    assert (
        gateway["service"]["pipelines"]["metrics"]["processors"]
        == local["service"]["pipelines"]["metrics"]["processors"]
    )


def test_gateway_config_is_accepted_by_the_netobs_collector(tmp_path: Path) -> None:
    binary = subprocess.run(
        ["bash", str(ROOT / "scripts" / "stack" / "build-collector.sh")], capture_output=True, text=True, check=True
    ).stdout.split()[-1]
    proc = subprocess.run(
        [binary, "validate", "--config", str(K8S / "base" / "collector" / "gateway-config.yaml")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        (K8S / "base" / "collector" / "gateway-config.yaml").read_text().replace("batch:\n", "batchh:\n", 1)
    )
    assert (
        subprocess.run([binary, "validate", "--config", str(broken)], capture_output=True, check=False).returncode != 0
    )


def test_load_balancing_tier_routes_to_the_autoscaled_gateway() -> None:
    docs = build("demo")
    lb_config = yaml.safe_load(_generated(docs, "ConfigMap", "otel-lb-config")["data"]["config.yaml"])
    headless = _named(docs, "Service", "otel-gateway-headless")
    assert headless["spec"]["clusterIP"] == "None"
    exporters = lb_config["exporters"]
    assert exporters["loadbalancing/traceid"]["routing_key"] == "traceID"
    for exporter in exporters.values():
        assert exporter["resolver"]["dns"]["hostname"].startswith("otel-gateway-headless.netobs.")
    pipelines = lb_config["service"]["pipelines"]
    assert pipelines["traces"]["exporters"] == ["loadbalancing/traceid"]
    hpa = _named(docs, "HorizontalPodAutoscaler", "otel-gateway")
    assert (
        hpa["spec"]["scaleTargetRef"]["name"] == "otel-gateway"
        and hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    )
    gateway = _named(docs, "Deployment", "otel-gateway")
    assert gateway["spec"]["selector"]["matchLabels"].items() <= headless["spec"]["selector"].items()
    agent_config = yaml.safe_load(_generated(docs, "ConfigMap", "netobs-agent-config-eu-west")["data"]["agent.yaml"])
    assert agent_config["exporter"]["endpoint"] == "otel-collector.netobs.svc.cluster.local:4317"
    assert _named(docs, "Service", "otel-collector")["spec"]["selector"] == {"app.kubernetes.io/name": "otel-lb"}


def test_generated_config_maps_carry_the_repository_files() -> None:
    docs = build("demo")
    dashboards = _generated(docs, "ConfigMap", "grafana-dashboards")["data"]
    assert dashboards == {p.name: p.read_text() for p in (ROOT / "grafana" / "dashboards").glob("*.json")}
    rules = _generated(docs, "ConfigMap", "prometheus-rules")["data"]
    assert rules == {"netobs.yml": (ROOT / "prometheus" / "rules" / "netobs.yml").read_text()}
    grafana = _named(docs, "Deployment", "grafana")
    volumes = {v["name"]: v for v in grafana["spec"]["template"]["spec"]["volumes"]}
    assert volumes["dashboards"]["configMap"]["name"].startswith("grafana-dashboards-")


@pytest.mark.parametrize("pop", POPS)
def test_pop_agent_configs_are_valid_agent_configs(pop: str) -> None:
    for name in ("agent.yaml", "agent-path.yaml"):
        cfg = load_config(str(K8S / "pops" / pop / name))
        assert cfg.pop == pop
        assert cfg.exporter is not None and cfg.exporter.endpoint.startswith("otel-collector.netobs.svc")
    raw_traceroutes = [
        c.name for c in load_config(str(K8S / "pops" / pop / "agent.yaml")).checks
        if c.type == "traceroute" and c.method != "udp"
    ]  # fmt: skip
    assert not raw_traceroutes, "raw-socket traceroutes belong in agent-path.yaml (the NET_RAW agent)"


def _pods(docs: tuple[dict[str, Any], ...]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in docs:
        spec = doc.get("spec", {})
        if doc["kind"] in ("Deployment", "StatefulSet"):
            yield doc["metadata"]["name"], spec["template"]["spec"]
        elif doc["kind"] == "CronJob":
            yield doc["metadata"]["name"], spec["jobTemplate"]["spec"]["template"]["spec"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_agents_run_unprivileged_with_net_raw_only_for_raw_traceroutes(overlay: str) -> None:
    docs = build(overlay)
    agents = {name: pod for name, pod in _pods(docs) if name.startswith("netobs-agent")}
    assert len(agents) == 2 * len(
        [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].startswith("netobs-agent-path")]
    )
    for name, pod in agents.items():
        sysctls = {s["name"]: s["value"] for s in pod["securityContext"]["sysctls"]}
        assert sysctls["net.ipv4.ping_group_range"] == "0 2147483647"
        assert pod["securityContext"]["runAsNonRoot"] is True
        (container,) = pod["containers"]
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["capabilities"]["drop"] == ["ALL"]
        expected_add = ["NET_RAW"] if name.startswith("netobs-agent-path") else None
        assert sc["capabilities"].get("add") == expected_add, name
        assert sc["allowPrivilegeEscalation"] is (expected_add is not None), name
    for name, pod in _pods(docs):
        if not name.startswith("netobs-agent-path"):
            for container in pod["containers"]:
                assert not container.get("securityContext", {}).get("capabilities", {}).get("add"), name
                assert container.get("securityContext", {}).get("privileged") is not True, name


def test_pops_get_their_own_selectors_and_config() -> None:
    docs = build("demo")
    selectors = [
        tuple(sorted(d["spec"]["selector"]["matchLabels"].items()))
        for d in _of(docs, "Deployment")
        if d["metadata"]["name"].startswith("netobs-agent")
    ]
    assert len(selectors) == len(set(selectors)) == 2 * len(POPS)
    for pop in POPS:
        agent = _named(docs, "Deployment", f"netobs-agent-{pop}")
        config_map = agent["spec"]["template"]["spec"]["volumes"][0]["configMap"]["name"]
        assert config_map.startswith(f"netobs-agent-config-{pop}-")
        assert yaml.safe_load(_named(docs, "ConfigMap", config_map)["data"]["agent.yaml"])["pop"] == pop


def test_alertmanager_config_in_the_cluster_passes_amtool() -> None:
    docs = build("demo")
    assert _generated(docs, "Secret", "alertmanager-config")["type"] == "Opaque"
    proc = subprocess.run(
        ["amtool", "check-config", str(K8S / "base" / "alertmanager" / "alertmanager.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# image -> (Dockerfile, stage or None, build context), all relative to the repository root.
DOCKERFILES = {
    "netobs/agent": ("docker/agent.Dockerfile", "agent", "."),
    "netobs/agent-path": ("docker/agent.Dockerfile", "agent-path", "."),
    "netobs/otelcol": ("docker/otelcol.Dockerfile", None, "."),
    "netobs/flink-job": ("docker/flink-job.Dockerfile", None, "."),
    "netobs/spark-job": ("pipelines/spark/Dockerfile", None, "pipelines/spark"),
}


def test_every_netobs_image_has_a_dockerfile_whose_sources_exist() -> None:
    images = set()
    for overlay in OVERLAYS:
        text = yaml.safe_dump_all(build(overlay))
        images |= set(re.findall(r"image: (netobs/[a-z-]+):", text))
    assert images == set(DOCKERFILES)
    for file_name, stage, context in DOCKERFILES.values():
        text = (ROOT / file_name).read_text()
        if stage is not None:
            assert re.search(rf"^FROM .* AS {stage}$", text, re.M), (file_name, stage)
        copies = re.findall(r"^COPY (?!--from)(.+)$", text, re.M)
        assert copies, file_name
        for line in copies:
            for source in line.split()[:-1]:
                assert (ROOT / context / source).exists(), f"{file_name}: COPY source {source} not in {context}"


def test_the_flink_job_image_carries_the_jobs_java_operators_and_compiled_package() -> None:
    # The job needs netobs-flink.jar next to the connector (its parser, windows, dedup, lake buckets: the
    # image once shipped only the connector) and runs the package build_native.py makes.
    text = (ROOT / "docker" / "flink-job.Dockerfile").read_text()
    java = sorted(p.name for p in (ROOT / "pipelines" / "flink" / "java" / "io" / "netobs" / "flink").glob("*.java"))
    assert java and re.search(r"javac .* java/io/netobs/flink/\*\.java", text)
    assert re.search(r"jar cf out/netobs-flink\.jar", text) and "COPY --from=jars /jars/out/ /opt/flink/usrlib/" in text
    assert re.search(r"build_native\.py /opt/netobs$", text, re.M)
    assert "COPY --from=native /opt/netobs /opt/netobs" in text
    flink = yaml.safe_load((K8S / "base" / "flink" / "flink.yaml").read_text())
    args = flink["spec"]["job"]["args"]
    assert args[args.index("--jars") + 1] == "/opt/flink/usrlib"
    assert "ENV PYTHONPATH=/opt/netobs " in text and args[args.index("-pym") + 1] == "netobs_flink.job"
