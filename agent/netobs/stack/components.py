"""The stack's components: how each is built, configured, started and judged ready.

Each component is a small class; :mod:`netobs.stack.stack` owns the common lifecycle
(pid files, logs, waiting, reporting). Ports come from :mod:`netobs.stack.ports` and reach the
configs as ``NETOBS_*`` environment variables (Prometheus, which has no env substitution, gets
its config rendered from the template in ``prometheus/``).
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import string
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

from netobs.stack.layout import StackError, StackLayout
from netobs.stack.ports import HOST
from netobs.stack.topics import TOPICS, Topic

Say = Callable[[str], None]

JAEGER_MAX_TRACES = 100_000


def http_ok(url: str, timeout_s: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return 200 <= int(resp.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def tcp_open(port: int, timeout_s: float = 1.0) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def run_build_script(layout: StackLayout, script: str) -> Path:
    """Run ``scripts/stack/<script>`` (cached: a no-op once built); its last stdout line is the artefact."""
    path = layout.repo / "scripts" / "stack" / script
    env = {**os.environ, "NETOBS_CACHE": str(layout.cache_dir)}
    proc = subprocess.run(
        ["bash", str(path)], env=env, stdout=subprocess.PIPE, text=True, check=False
    )  # stderr passes through: build progress
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise StackError(f"{script} failed (exit {proc.returncode}); see its output above")
    return Path(lines[-1])


class Component:
    """Base: subclasses define ``port``, ``argv`` and ``is_ready``; the other hooks are optional."""

    name: str = ""
    ready_timeout_s: float = 60.0
    stop_timeout_s: float = 15.0

    def __init__(self, layout: StackLayout) -> None:
        self.layout = layout
        self.ports = layout.ports

    @property
    def port(self) -> int:
        """The main port, shown by ``status``."""
        raise NotImplementedError

    def urls(self) -> dict[str, str]:
        return {}

    def ensure_built(self, say: Say) -> None:
        """Build or fetch what the component runs (cached)."""

    def prepare(self, say: Say) -> None:
        """Write configs / initialise storage before a start."""

    def argv(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return {}

    def is_ready(self) -> bool:
        raise NotImplementedError

    def after_ready(self, say: Say) -> None:
        """Work that needs the running component (Kafka: topics)."""

    @property
    def data_dir(self) -> Path:
        return self.layout.data_dir(self.name)


def _which(binary: str, hint: str) -> str:
    found = shutil.which(binary)
    if found is None:
        raise StackError(f"{binary} not found; {hint}")
    return found


def kafka_cluster_id(new_uuid: Callable[[], uuid.UUID] = uuid.uuid4) -> str:
    """A KRaft cluster id: a random UUID in URL-safe base64, never starting with '-'.

    One id in 64 would start with '-', which the storage tool's argument parser then takes for an option
    ("argument --cluster-id/-t: expected one argument"): draw again, as Kafka's own ``random-uuid`` does.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(new_uuid().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


class Kafka(Component):
    name = "kafka"
    ready_timeout_s = 90.0
    stop_timeout_s = 30.0
    heap = "-Xmx768m"

    def __init__(self, layout: StackLayout) -> None:
        super().__init__(layout)
        self._lib: Path | None = None

    @property
    def port(self) -> int:
        return self.ports.kafka

    def urls(self) -> dict[str, str]:
        return {"bootstrap": f"{HOST}:{self.ports.kafka}"}

    @property
    def lib(self) -> Path:
        if self._lib is None:
            self._lib = run_build_script(self.layout, "fetch-kafka.sh")
        return self._lib

    def ensure_built(self, say: Say) -> None:
        _ = self.lib

    @property
    def properties_file(self) -> Path:
        return self.data_dir / "server.properties"

    def java(self, main: str, *args: str, heap: str = "-Xmx256m") -> list[str]:
        java = _which("java", "install a JDK 17+ (Debian: openjdk-17-jre-headless)")
        log4j = self.layout.repo / "scripts" / "stack" / "kafka" / "log4j2.xml"
        return [
            java,
            heap,
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            f"{self.lib}/*",
            main,
            *args,
        ]

    def prepare(self, say: Say) -> None:
        logs = self.data_dir / "data"
        p = self.ports
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.properties_file.write_text(
            "\n".join(
                [
                    "# written by `netobs stack up`; ports from agent/netobs/stack/ports.py",
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@{HOST}:{p.kafka_controller}",
                    f"listeners=PLAINTEXT://{HOST}:{p.kafka},CONTROLLER://{HOST}:{p.kafka_controller}",
                    f"advertised.listeners=PLAINTEXT://{HOST}:{p.kafka}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    "inter.broker.listener.name=PLAINTEXT",
                    f"log.dirs={logs}",
                    "num.partitions=1",
                    "offsets.topic.replication.factor=1",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=false",
                    "log.retention.hours=168",
                    "",
                ]
            )
        )
        if not (logs / "meta.properties").is_file():
            cluster_id = kafka_cluster_id()
            say(f"kafka: formatting KRaft storage in {logs} (first start)")
            argv = self.java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(self.properties_file))
            proc = subprocess.run(argv, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise StackError(f"kafka storage format failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")

    def argv(self) -> list[str]:
        return self.java("kafka.Kafka", str(self.properties_file), heap=self.heap)

    def is_ready(self) -> bool:
        return tcp_open(self.ports.kafka)

    def after_ready(self, say: Say) -> None:
        # The topics live in the data dir: once created from this exact spec, a restart skips the
        # (JVM-per-topic, several seconds) creation step.
        spec = "\n".join(f"{t.name} {t.partitions} {t.retention_ms}" for t in TOPICS) + "\n"
        marker = self.data_dir / "data" / "netobs-topics.txt"
        if marker.is_file() and marker.read_text() == spec:
            return
        say(f"kafka: creating topics {', '.join(t.name for t in TOPICS)}")
        with ThreadPoolExecutor(max_workers=len(TOPICS)) as pool:
            failures = [msg for msg in pool.map(self.create_topic, TOPICS) if msg]
        if failures:
            raise StackError("; ".join(failures))
        marker.write_text(spec)

    def create_topic(self, topic: Topic) -> str | None:
        argv = self.java(
            "org.apache.kafka.tools.TopicCommand",
            "--bootstrap-server",
            f"{HOST}:{self.ports.kafka}",
            "--create",
            "--if-not-exists",
            "--topic",
            topic.name,
            "--partitions",
            str(topic.partitions),
            "--replication-factor",
            "1",
            "--config",
            f"retention.ms={topic.retention_ms}",
        )
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            return f"creating topic {topic.name} failed: {(proc.stderr or proc.stdout)[-1500:]}"
        return None


class Prometheus(Component):
    name = "prometheus"

    @property
    def port(self) -> int:
        return self.ports.prometheus

    def urls(self) -> dict[str, str]:
        return {"ui/api": f"http://{HOST}:{self.ports.prometheus}"}

    @property
    def config_file(self) -> Path:
        return self.data_dir / "prometheus.yml"

    def ensure_built(self, say: Say) -> None:
        _which("prometheus", "install the Debian package 'prometheus' (scripts/setup.d/20-stack.sh does)")

    def prepare(self, say: Say) -> None:
        template = (self.layout.repo / "prometheus" / "prometheus.yml").read_text()
        values = {**self.ports.env(), "NETOBS_PROMETHEUS_RULES_DIR": str(self.layout.repo / "prometheus" / "rules")}
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(string.Template(template).substitute(values))

    def argv(self) -> list[str]:
        return [
            _which("prometheus", "install the Debian package 'prometheus'"),
            f"--config.file={self.config_file}",
            f"--storage.tsdb.path={self.data_dir / 'tsdb'}",
            "--storage.tsdb.retention.time=15d",
            f"--web.listen-address={HOST}:{self.ports.prometheus}",
            "--web.enable-remote-write-receiver",
            "--web.enable-lifecycle",
        ]

    def is_ready(self) -> bool:
        return http_ok(f"http://{HOST}:{self.ports.prometheus}/-/ready")


class Alertmanager(Component):
    name = "alertmanager"

    @property
    def port(self) -> int:
        return self.ports.alertmanager

    def urls(self) -> dict[str, str]:
        return {"api": f"http://{HOST}:{self.ports.alertmanager}/api/v2/alerts"}

    def ensure_built(self, say: Say) -> None:
        _which("prometheus-alertmanager", "install the Debian package 'prometheus-alertmanager'")

    def argv(self) -> list[str]:
        return [
            _which("prometheus-alertmanager", "install the Debian package 'prometheus-alertmanager'"),
            f"--config.file={self.layout.repo / 'prometheus' / 'alertmanager.yml'}",
            f"--storage.path={self.data_dir}",
            f"--web.listen-address={HOST}:{self.ports.alertmanager}",
            "--cluster.listen-address=",  # single node: no gossip port
        ]

    def is_ready(self) -> bool:
        return http_ok(f"http://{HOST}:{self.ports.alertmanager}/-/ready")


class Jaeger(Component):
    name = "jaeger"

    def __init__(self, layout: StackLayout) -> None:
        super().__init__(layout)
        self._binary: Path | None = None

    @property
    def port(self) -> int:
        return self.ports.jaeger_query_http

    def urls(self) -> dict[str, str]:
        return {"query api": f"http://{HOST}:{self.ports.jaeger_query_http}/api/services"}

    @property
    def binary(self) -> Path:
        if self._binary is None:
            self._binary = run_build_script(self.layout, "build-jaeger.sh")
        return self._binary

    def ensure_built(self, say: Say) -> None:
        _ = self.binary

    def argv(self) -> list[str]:
        return [str(self.binary), "--config", str(self.layout.repo / "jaeger" / "config.yaml")]

    def env(self) -> dict[str, str]:
        return {"NETOBS_JAEGER_MAX_TRACES": str(JAEGER_MAX_TRACES)}

    def is_ready(self) -> bool:
        return http_ok(f"http://{HOST}:{self.ports.jaeger_query_http}/api/services")


class Collector(Component):
    name = "otelcol"

    def __init__(self, layout: StackLayout) -> None:
        super().__init__(layout)
        self._binary: Path | None = None

    @property
    def port(self) -> int:
        return self.ports.otelcol_otlp_grpc

    def urls(self) -> dict[str, str]:
        return {
            "otlp grpc": f"{HOST}:{self.ports.otelcol_otlp_grpc}",
            "otlp http": f"http://{HOST}:{self.ports.otelcol_otlp_http}",
            "health": f"http://{HOST}:{self.ports.otelcol_health}/",
        }

    @property
    def binary(self) -> Path:
        if self._binary is None:
            self._binary = run_build_script(self.layout, "build-collector.sh")
        return self._binary

    def ensure_built(self, say: Say) -> None:
        _ = self.binary

    def argv(self) -> list[str]:
        return [str(self.binary), "--config", str(self.layout.repo / "otel-collector" / "config.local.yaml")]

    def env(self) -> dict[str, str]:
        return {"NETOBS_OTELCOL_STORAGE_DIR": str(self.data_dir / "storage")}

    def prepare(self, say: Say) -> None:
        (self.data_dir / "storage").mkdir(parents=True, exist_ok=True)

    def is_ready(self) -> bool:
        return http_ok(f"http://{HOST}:{self.ports.otelcol_health}/")


class Agent(Component):
    """A probe agent (``netobs agent run``) sending to the stack's collector."""

    name = "agent"
    ready_timeout_s = 20.0

    def __init__(self, layout: StackLayout, config: Path | None) -> None:
        super().__init__(layout)
        self.config = config.resolve() if config is not None else None

    @property
    def port(self) -> int:
        return self.ports.otelcol_otlp_grpc

    def ensure_built(self, say: Say) -> None:
        if self.config is None or not self.config.is_file():
            raise StackError(f"agent config {self.config} not found")
        endpoint = _exporter_endpoint(self.config)
        ours = {str(self.ports.otelcol_otlp_grpc), str(self.ports.otelcol_otlp_http)}
        if endpoint is not None and endpoint.rstrip("/").rsplit(":", 1)[-1] not in ours:
            say(
                f"warning: {self.config} exports to {endpoint}, not to this stack's collector "
                f"({HOST}:{self.ports.otelcol_otlp_grpc} gRPC, :{self.ports.otelcol_otlp_http} HTTP)"
            )

    def argv(self) -> list[str]:
        if self.config is None:
            raise StackError("the agent needs --config FILE")
        return [sys.executable, "-m", "netobs", "agent", "run", "--config", str(self.config)]

    def is_ready(self) -> bool:
        # No health endpoint: the stack's wait loop judges it alive (it fails fast on a bad config).
        return True


def _exporter_endpoint(config: Path) -> str | None:
    """``exporter.endpoint`` of an agent config, if it has one (validation is the agent's job)."""
    try:
        body = yaml.safe_load(config.read_text())
    except (OSError, yaml.YAMLError):
        return None
    exporter = body.get("exporter") if isinstance(body, dict) else None
    endpoint = exporter.get("endpoint", "127.0.0.1:4317") if isinstance(exporter, dict) else None
    return endpoint if isinstance(endpoint, str) else None


BACKENDS: tuple[type[Component], ...] = (Kafka, Prometheus, Alertmanager, Jaeger, Collector)
COMPONENT_NAMES: tuple[str, ...] = (*(c.name for c in BACKENDS), Agent.name)
