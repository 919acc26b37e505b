"""The streaming job (PyFlink DataStream API): detect, alert, dead-letter, archive.

    python -m netobs_flink.job --bootstrap-servers 127.0.0.1:9092 --alertmanager-url http://127.0.0.1:9093 \\
        --lake /data/lake --checkpoint-dir /data/checkpoints

Only import this inside the Flink virtualenv. Dataflow (per-record work stays in the JVM):

    Kafka netobs.results ─ Java parser: one JSON parse per message, event time per partition
      ├─ not a result record ─ Kafka netobs.deadletter
      ├─ flat fields ─ Java, keyed by shard: per series and tumbling window (window_s) one summary line,
      │    the lines of a shard's series sent as one batch when the watermark passes the window  (JVM)
      │    └─ Python, keyed by shard: per-series detectors (live states, MapState written behind) ─┬─ alerts
      │         │ lists of up/down changes                                                        │
      │         └─ Python: cross-POP correlator (one key) ────────────────────────────────────────┤
      │                                                                                           ▼
      │           Kafka netobs.alerts (exactly-once)  +  Alertmanager (POST /api/v2/alerts, re-sent while firing)
      └─ (result_id hash, raw bytes) ─ Java dedup (--archive-dedup-s) ─ FileSink
             <lake>/date=YYYY-MM-DD/hour=HH/part-*.jsonl (files completed on checkpoints)

Python is called once per (shard, window) with the lines of many series (``--shards``, default 64), not
once per series: per-call overhead (row conversion, state access through PEMJA) is paid per batch.
The Python functions run in Beam worker processes by default (``--python-mode process``), one per
subtask, so the detectors of the two subtasks run in parallel; ``--python-mode thread`` runs them inside
the JVM (PEMJA: no row transfer over gRPC, but one interpreter, so one GIL, for all subtasks: draining a
backlog of 20,000 series it reached ~12k records/s at most, process mode ~19k; bench/README.md).

Event time is ``started_at_ms``; the watermark trails the largest one by ``--allowed-lateness-s`` and idle
partitions stop holding it back after ``--idle-timeout-s``. A restart with ``--restore auto`` resumes
from the newest retained checkpoint: Kafka offsets, detector state and open alerts come back together,
and the transactional Kafka sinks neither lose nor repeat what the checkpoint covered.
"""

from __future__ import annotations

import argparse
import atexit
import json
import logging
import os
import shutil
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pyflink.common import Configuration, Row, Types, WatermarkStrategy
from pyflink.common.serialization import DeserializationSchema, Encoder, SerializationSchema, SimpleStringSchema
from pyflink.common.typeinfo import _from_java_type
from pyflink.datastream import (
    DataStream,
    KeyedProcessFunction,
    KeyedStream,
    OutputTag,
    RuntimeContext,
    StreamExecutionEnvironment,
)
from pyflink.datastream.connectors.file_system import BucketAssigner, FileSink, OutputFileConfig, RollingPolicy
from pyflink.datastream.connectors.kafka import (
    DeliveryGuarantee,
    KafkaOffsetResetStrategy,
    KafkaOffsetsInitializer,
    KafkaRecordSerializationSchema,
    KafkaSink,
    KafkaSource,
)
from pyflink.datastream.state import MapState, MapStateDescriptor, ValueStateDescriptor
from pyflink.java_gateway import get_gateway

from netobs_flink import detector_build
from netobs_flink.alertmanager import AlertmanagerClient, AlertmanagerError
from netobs_flink.detect.alert import FIRING, RESOLVED, AlertEvent, event_from_dict
from netobs_flink.detect.availability import Change, Correlator, CorrelatorState, Heartbeat, join_state, split_state
from netobs_flink.detect.latency import LatencyConfig
from netobs_flink.record import PHASES, READ_FIELDS, fields_spec, required_spec
from netobs_flink.series import (
    LINE_FIELDS,
    LINE_SEP,
    DetectorConfigs,
    LiveBudget,
    SeriesState,
    WriteBehindSeries,
    configs_from_dict,
    configs_to_dict,
    parse_batch,
)

log = logging.getLogger("netobs_flink.job")
PACKAGE_DIR = Path(__file__).resolve().parent


def scratch_dir() -> Path:
    """Flink's ``io.tmp.dirs`` for this run: ``<tmp>/netobs-flink/<pid>``.

    The mini-cluster unpacks ~100 MB of jars and keeps its working files there, and leaves them behind
    when it is killed; so each run removes the folders of earlier runs whose process is gone, and its own
    when it ends normally."""
    root = Path(tempfile.gettempdir()) / "netobs-flink"
    root.mkdir(exist_ok=True)
    for old in root.iterdir():
        if old.name.isdigit() and not _pid_alive(int(old.name)):
            shutil.rmtree(old, ignore_errors=True)
    mine = root / str(os.getpid())
    mine.mkdir(exist_ok=True)
    atexit.register(shutil.rmtree, mine, True)
    return mine


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's: alive
        return True
    return True


@dataclass(frozen=True)
class JobConfig:
    bootstrap_servers: str
    results_topic: str = "netobs.results"
    alerts_topic: str = "netobs.alerts"
    deadletter_topic: str = "netobs.deadletter"
    group_id: str = "netobs-flink"
    alertmanager_url: str = ""
    jaeger_url: str = ""
    lake: str = ""
    checkpoint_dir: str = ""
    checkpoint_interval_s: float = 10.0
    state_backend: str = "hashmap"  # hashmap (the JVM heap) | rocksdb (on disk, incremental checkpoints)
    restore: str = "auto"  # auto | none | <checkpoint path>
    parallelism: int = 2
    window_s: int = 1
    allowed_lateness_s: float = 2.0
    idle_timeout_s: float = 5.0
    resend_interval_s: float = 60.0
    dedup_ttl_s: float = 3 * 3600.0  # alert transitions: each one once
    archive_dedup_s: float = 600.0  # archive: a result_id seen again within this is not written again
    detectors: DetectorConfigs = field(default_factory=DetectorConfigs)
    job_name: str = "netobs-detect"
    python_mode: str = "process"  # process (a Beam worker process per subtask) | thread (inside the JVM, PEMJA)
    shards: int = 64  # series batches per window: one Python call per (shard, window)
    persist_every: int = 16  # windows a series (lists the correlator) may go without writing its state
    max_live_series: int = 50_000  # live detector states per subtask (~33 KB each), beyond: evicted


# -- Python functions (they run in the Python workers) ---------------------------------------------


BYTES = Types.PRIMITIVE_ARRAY(Types.BYTE())  # byte[]: messages as they came, for the archive and dead letters
CORRELATE = OutputTag("correlate", Types.PICKLED_BYTE_ARRAY())


class _MapStore:
    """:class:`netobs_flink.series.SeriesStore` over the MapState of the current key (shard)."""

    def __init__(self, state: MapState) -> None:
        self.state = state

    def get(self, key: str) -> SeriesState | None:
        value: SeriesState | None = self.state.get(key)
        return value

    def put(self, key: str, state: SeriesState) -> None:
        self.state.put(key, state)


class SeriesBatchFunction(KeyedProcessFunction):  # type: ignore[misc]
    """Keyed by shard; each element is one (shard, window) batch of window lines, many series.

    Per series, :class:`netobs_flink.series.WriteBehindSeries` runs the detectors on a live state kept
    in memory and writes it to MapState (series -> state) with every output and every ``persist_every``
    windows; the correlator gets one list of changes and heartbeats per batch.
    """

    def __init__(self, configs: DetectorConfigs, persist_every: int, max_live_series: int) -> None:
        self.config_data = configs_to_dict(configs)  # plain data crosses to the workers
        self.persist_every = persist_every
        self.max_live_series = max_live_series

    def open(self, runtime_context: RuntimeContext) -> None:
        self.configs = configs_from_dict(self.config_data)
        state = runtime_context.get_map_state(MapStateDescriptor("series", Types.STRING(), Types.PICKLED_BYTE_ARRAY()))
        self.store = _MapStore(state)
        self.shards: dict[int, WriteBehindSeries] = {}  # MapState is per key: one cache per shard
        self.budget = LiveBudget(self.max_live_series)  # shared by this subtask's shards
        self.bad_lines = 0

    def _bad_line(self, exc: ValueError) -> None:
        self.bad_lines += 1
        if self.bad_lines <= 10 or self.bad_lines % 10000 == 0:
            log.warning("skipped a window line (%d so far): %s", self.bad_lines, exc)

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context) -> Iterable[Any]:
        shard = int(value[0])
        cache = self.shards.get(shard)
        if cache is None:
            cache = self.shards[shard] = WriteBehindSeries(self.store, self.configs, self.persist_every, self.budget)
        to_correlator: list[Change | Heartbeat] = []
        for summary in parse_batch((value[1] or "").split(LINE_SEP), self._bad_line):
            alerts, outputs = cache.process(summary)
            for alert in alerts:
                yield alert.to_json()
            to_correlator += outputs
        if to_correlator:
            yield CORRELATE, to_correlator


class CorrelatorFunction(KeyedProcessFunction):  # type: ignore[misc]
    """One key: the cross-POP view (target outage / POP issue / local failure).

    Each element is the list of changes and heartbeats of one batch. The correlator lives in memory and is
    written to state in two parts (``split_state``): the core (down and suspect series, active and ended
    alerts: small) after every list with a change in it, so a restored correlator knows every change the
    series states claim to have sent; the membership (every (target, POP) and when it last reported: large,
    4.7 ms to pickle at 20,000 series) after every list that added a member, otherwise every
    ``persist_every`` lists. A restore may then only find some members' last-seen times a little older,
    which matters only at the edge of ``member_ttl_s`` (15 min; heartbeats come every minute).
    """

    def __init__(self, configs: DetectorConfigs, persist_every: int) -> None:
        self.config_data = configs_to_dict(configs)
        self.persist_every = persist_every

    def open(self, runtime_context: RuntimeContext) -> None:
        self.configs = configs_from_dict(self.config_data)
        self.state = runtime_context.get_state(ValueStateDescriptor("correlator", Types.PICKLED_BYTE_ARRAY()))
        self.members = runtime_context.get_state(ValueStateDescriptor("correlator-members", Types.PICKLED_BYTE_ARRAY()))
        self.correlator: Correlator | None = None
        self.unsaved = 0

    def process_element(self, value: list[Change | Heartbeat], ctx: KeyedProcessFunction.Context) -> Iterable[str]:
        if self.correlator is None:
            state = join_state(self.state.value() or CorrelatorState(), self.members.value())
            self.correlator = Correlator(self.configs.availability, state)
        correlator = self.correlator
        added = correlator.members_added
        events: list[AlertEvent] = []
        changed = False
        for item in value:
            if isinstance(item, Heartbeat):
                correlator.seen(item.pop, item.check, item.target, item.at_ms)
            else:
                events += correlator.apply(item)
                changed = True
        core, members = split_state(correlator.state)
        if changed:
            self.state.update(core)
        self.unsaved += 1
        if correlator.members_added != added or self.unsaved >= self.persist_every:
            self.members.update(members)
            self.unsaved = 0
        for event in events:
            yield event.to_json()


class OnceFunction(KeyedProcessFunction):  # type: ignore[misc]
    """Keyed by event_id (fingerprint:status:start): lets each alert transition through once.

    The detectors emit each transition once; this stage makes the sinks' contract independent of that
    (e2e runs once showed a local-failure transition twice). It remembers an id for ``remember_s``."""

    def __init__(self, remember_s: float) -> None:
        self.remember_s = remember_s

    def open(self, runtime_context: RuntimeContext) -> None:
        self.seen = runtime_context.get_state(ValueStateDescriptor("seen", Types.BOOLEAN()))

    def process_element(self, value: str, ctx: KeyedProcessFunction.Context) -> Iterable[str]:
        if self.seen.value():
            return
        self.seen.update(True)
        now = ctx.timer_service().current_processing_time()
        ctx.timer_service().register_processing_time_timer(now + int(self.remember_s * 1000))
        yield value

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterable[str]:
        self.seen.clear()
        return []


class AlertmanagerFunction(KeyedProcessFunction):  # type: ignore[misc]
    """Keyed by fingerprint: posts each transition, re-sends a firing alert every ``resend_interval_s``.

    A post that fails is retried on the next timer; Alertmanager deduplicates on the label set, so a
    re-post after a restart is harmless.
    """

    def __init__(self, url: str, resend_interval_s: float, generator_url: str) -> None:
        self.url = url
        self.resend_interval_s = resend_interval_s
        self.generator_url = generator_url

    def open(self, runtime_context: RuntimeContext) -> None:
        self.pending = runtime_context.get_state(ValueStateDescriptor("alert", Types.STRING()))
        self.client = AlertmanagerClient(
            self.url, resend_ttl_s=3 * self.resend_interval_s, generator_url=self.generator_url
        )

    def _send(self, text: str) -> bool:
        event = event_from_dict(json.loads(text))
        try:
            self.client.send([event], now_ms=int(time.time() * 1000))
        except AlertmanagerError as exc:
            log.warning("alertmanager: %s (will retry)", exc)
            return False
        return True

    def process_element(self, value: str, ctx: KeyedProcessFunction.Context) -> Iterable[str]:
        ok = self._send(value)
        status = json.loads(value)["status"]
        now = ctx.timer_service().current_processing_time()
        if status == FIRING or not ok:
            self.pending.update(value)
            retry_s = self.resend_interval_s if ok else min(5.0, self.resend_interval_s)
            ctx.timer_service().register_processing_time_timer(now + int(retry_s * 1000))
        else:
            self.pending.clear()
        return []

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterable[str]:
        text = self.pending.value()
        if text is None:
            return []
        ok = self._send(text)
        if json.loads(text)["status"] == RESOLVED and ok:
            self.pending.clear()
            return []
        retry_s = self.resend_interval_s if ok else min(5.0, self.resend_interval_s)
        ctx.timer_service().register_processing_time_timer(timestamp + int(retry_s * 1000))
        return []


# -- the job graph ----------------------------------------------------------------------------------


def _kafka_options(cfg: JobConfig, group_suffix: str) -> str:
    return (
        f"'connector' = 'kafka', 'topic' = '{cfg.results_topic}', "
        f"'properties.bootstrap.servers' = '{cfg.bootstrap_servers}', "
        f"'properties.group.id' = '{cfg.group_id}-{group_suffix}', "
        "'scan.startup.mode' = 'group-offsets', 'properties.auto.offset.reset' = 'earliest'"
    )


def latest_checkpoint(checkpoint_dir: str) -> str | None:
    """The newest completed checkpoint (``chk-N`` with a ``_metadata`` file) under ``checkpoint_dir``."""
    root = Path(checkpoint_dir.removeprefix("file://"))
    found = sorted(
        (p for p in root.glob("*/chk-*") if (p / "_metadata").is_file()),
        key=lambda p: p.stat().st_mtime,
    )
    return str(found[-1]) if found else None


def build(cfg: JobConfig, jars: Sequence[str]) -> StreamExecutionEnvironment:
    """Build the whole graph; ``env.execute`` runs it."""
    conf = Configuration()
    conf.set_string("python.executable", sys.executable)
    conf.set_string("python.client.executable", sys.executable)
    conf.set_string("pipeline.name", cfg.job_name)
    conf.set_string("io.tmp.dirs", str(scratch_dir()))
    conf.set_string("python.execution-mode", cfg.python_mode)
    if cfg.python_mode == "process":
        # On a local mini-cluster PyFlink otherwise runs every subtask's Python functions in this client
        # process ("loopback" workers): one interpreter, one GIL, i.e. no parallelism at all. This switch
        # (read by StreamExecutionEnvironment.execute) gives each subtask its own worker process, as on a
        # real cluster.
        os.environ.setdefault("_python_worker_execution_mode", "process")
    if cfg.python_mode == "thread":
        # The interpreter embedded in the JVM (PEMJA) starts from the base Python, not this venv: give it
        # the venv's packages (pemja itself, pyflink) and the job's own.
        paths = sysconfig.get_paths()
        conf.set_string("python.pythonpath", os.pathsep.join(dict.fromkeys((paths["purelib"], paths["platlib"]))))
    conf.set_string("python.fn-execution.bundle.time", "200")  # ms: bounds the Python stages' added delay
    # Watermarks every 50 ms (default 200): a window closes at most 50 ms after the result that ends it.
    conf.set_string("pipeline.auto-watermark-interval", "50 ms")
    conf.set_string("pipeline.object-reuse", "true")  # no defensive copies between chained JVM operators
    # Keep the series' detector state deserialized in the Python workers between windows.
    conf.set_string("python.state.cache-size", "100000")
    if cfg.checkpoint_dir:
        conf.set_string("execution.checkpointing.interval", f"{int(cfg.checkpoint_interval_s * 1000)} ms")
        # hashmap: state on the JVM heap, each checkpoint copies all of it (~12 KB per series, plus the
        # archive's result ids). rocksdb: on disk, checkpoints copy what changed, for state beyond the heap;
        # but every state access goes through RocksDB: ~5k records/s here against ~18k (bench/README.md).
        conf.set_string("state.backend.type", cfg.state_backend)
        conf.set_string("execution.checkpointing.incremental", str(cfg.state_backend == "rocksdb").lower())
        conf.set_string("execution.checkpointing.mode", "EXACTLY_ONCE")
        conf.set_string("execution.checkpointing.dir", _uri(cfg.checkpoint_dir))
        conf.set_string("execution.checkpointing.externalized-checkpoint-retention", "RETAIN_ON_CANCELLATION")
        conf.set_string("execution.checkpointing.num-retained", "3")
        restore = latest_checkpoint(cfg.checkpoint_dir) if cfg.restore == "auto" else None
        if cfg.restore not in ("auto", "none"):
            restore = cfg.restore
        if restore:
            log.info("restoring from %s", restore)
            conf.set_string("execution.state-recovery.path", restore)
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(cfg.parallelism)
    env.add_jars(*(_uri(j) for j in jars))
    env.add_python_file(str(PACKAGE_DIR))
    # One Kafka read and one JSON parse per message, in the JVM, for all three paths.
    parser = _java_function("io.netobs.flink.ResultParser").configure(fields_spec(), required_spec())
    parsed = env.from_source(_kafka_source(cfg, parser), _watermarks(cfg, parser), "results from Kafka").uid(
        "results-kafka"
    )
    dead_letters = _java_function("io.netobs.flink.InvalidRaw")
    invalid = DataStream(parsed._j_data_stream.flatMap(dead_letters, BYTES.get_java_type_info()))
    invalid.sink_to(_kafka_sink(cfg, cfg.deadletter_topic, "deadletter", SerializationSchema(dead_letters))).name(
        "dead letter to Kafka"
    ).uid("deadletter-kafka")
    fields = parsed._j_data_stream.flatMap(_java_function("io.netobs.flink.RecordFields"), parser.fieldsType())

    # Detection: per (series, window) summaries, sent as one batch of lines per (shard, window) (JVM) ->
    # Python detectors keyed by shard -> Python correlator.
    windows = _java_function("io.netobs.flink.ShardWindows").configure(
        ",".join(READ_FIELDS), ",".join(PHASES), ",".join(LINE_FIELDS), cfg.shards, cfg.window_s * 1000
    )
    batches = DataStream(
        fields.keyBy(windows).process(windows, windows.batchType()).name("series windows").uid("series-windows")
    )
    series = _keyed_by_shard(batches).process(
        SeriesBatchFunction(cfg.detectors, cfg.persist_every, cfg.max_live_series), output_type=Types.STRING()
    )
    series = series.name("series detectors").uid("series-detectors-batched")
    correlated = (
        series.get_side_output(CORRELATE)
        .key_by(lambda _: 0, key_type=Types.INT())
        .process(CorrelatorFunction(cfg.detectors, cfg.persist_every), output_type=Types.STRING())
        .name("cross-POP correlator")
        .uid("correlator")
    )
    alerts: DataStream = (
        series.union(correlated)
        .key_by(lambda s: json.loads(s)["event_id"], key_type=Types.STRING())
        .process(OnceFunction(cfg.dedup_ttl_s), output_type=Types.STRING())
        .name("each transition once")
        .uid("alerts-once")
    )
    alerts.sink_to(_kafka_sink(cfg, cfg.alerts_topic, "alerts")).name("alerts to Kafka").uid("alerts-kafka")
    if cfg.alertmanager_url:
        alerts.key_by(lambda s: json.loads(s)["fingerprint"], key_type=Types.STRING()).process(
            AlertmanagerFunction(cfg.alertmanager_url, cfg.resend_interval_s, cfg.jaeger_url),
            output_type=Types.STRING(),
        ).name("alertmanager").uid("alertmanager")

    if cfg.lake:
        key = _java_function("io.netobs.flink.ArchiveKey")
        ids = parsed._j_data_stream.flatMap(key, Types.TUPLE([Types.LONG(), BYTES]).get_java_type_info())
        once = _java_function("io.netobs.flink.ArchiveOnce").withHorizonMs(int(cfg.archive_dedup_s * 1000))
        lines = DataStream(ids.keyBy(key).process(once, BYTES.get_java_type_info()))
        lines = lines.name("each result_id once").uid("archive-once")
        assigner = _java_function("io.netobs.flink.EventTimeHourBucketAssigner")
        sink = (
            FileSink.for_row_format(_uri(cfg.lake), Encoder(assigner))
            .with_bucket_assigner(BucketAssigner(assigner))
            .with_output_file_config(
                OutputFileConfig.builder().with_part_prefix("part").with_part_suffix(".jsonl").build()
            )
            .with_rolling_policy(RollingPolicy.on_checkpoint_rolling_policy())
            .build()
        )
        lines.sink_to(sink).name("archive to the lake").uid("archive")
    return env


def _java_function(class_name: str) -> Any:
    """An instance of one of the job's Java helpers (netobs-flink.jar, loaded with the job's jars)."""
    loader = get_gateway().jvm.Thread.currentThread().getContextClassLoader()
    return loader.loadClass(class_name).newInstance()


def results_group(group_id: str) -> str:
    """The Kafka group of the job's one source. It commits on checkpoints, i.e. once every path (detection,
    dead letter, archive) has everything up to that offset: what tools follow to see the job's progress."""
    return f"{group_id}-results"


def _kafka_source(cfg: JobConfig, parser: Any) -> KafkaSource:
    """The results topic from the group's committed offsets (the earliest without any), committed on
    checkpoints, each message read by ``parser`` (io.netobs.flink.ResultParser)."""
    return (
        KafkaSource.builder()
        .set_bootstrap_servers(cfg.bootstrap_servers)
        .set_topics(cfg.results_topic)
        .set_group_id(results_group(cfg.group_id))
        .set_starting_offsets(KafkaOffsetsInitializer.committed_offsets(KafkaOffsetResetStrategy.EARLIEST))
        .set_value_only_deserializer(DeserializationSchema(parser))
        .build()
    )


def _watermarks(cfg: JobConfig, parser: Any) -> WatermarkStrategy:
    """Event time from the parser (started_at_ms), per Kafka partition: the watermark trails the largest
    result's by the allowed lateness (dead letters do not count), and a partition idle for
    ``idle_timeout_s`` stops holding it back."""
    jvm = get_gateway().jvm
    generator = _java_function("io.netobs.flink.RecordWatermarks").withLatenessMs(int(cfg.allowed_lateness_s * 1000))
    j_strategy = (
        jvm.org.apache.flink.api.common.eventtime.WatermarkStrategy.forGenerator(generator)
        .withTimestampAssigner(parser)
        .withIdleness(jvm.java.time.Duration.ofMillis(int(cfg.idle_timeout_s * 1000)))
    )
    return WatermarkStrategy(j_strategy)


def _keyed_by_shard(batches: DataStream) -> KeyedStream:
    """The batch rows keyed by shard (field 0), keyed in the JVM.

    PyFlink's ``key_by`` runs the key function in Python: one more JVM -> Python -> JVM trip per row
    before the detectors. The Java map makes the same shape (Row(key, row), keyed on field 0).
    """
    gateway = get_gateway()
    row_type = _from_java_type(batches._j_data_stream.getTransformation().getOutputType())
    keyed_type = Types.ROW([Types.INT(), row_type]).get_java_type_info()
    with_key = batches._j_data_stream.map(_java_function("io.netobs.flink.FirstFieldKey"), keyed_type)
    j_keyed = with_key.keyBy(gateway.jvm.KeyByKeySelector(), Types.ROW([Types.INT()]).get_java_type_info())
    return KeyedStream(j_keyed, row_type, batches)


def _kafka_sink(cfg: JobConfig, topic: str, name: str, values: SerializationSchema | None = None) -> KafkaSink:
    return (
        KafkaSink.builder()
        .set_bootstrap_servers(cfg.bootstrap_servers)
        .set_record_serializer(
            KafkaRecordSerializationSchema.builder()
            .set_topic(topic)
            .set_value_serialization_schema(values or SimpleStringSchema())
            .build()
        )
        .set_delivery_guarantee(
            DeliveryGuarantee.EXACTLY_ONCE if cfg.checkpoint_dir else DeliveryGuarantee.AT_LEAST_ONCE
        )
        .set_transactional_id_prefix(f"{cfg.group_id}-{name}")
        .set_property("transaction.timeout.ms", "600000")
        .build()
    )


def _uri(path: str) -> str:
    return path if "://" in path else "file://" + os.path.abspath(path)


# -- command line ---------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> tuple[JobConfig, list[str]]:
    p = argparse.ArgumentParser(
        prog="netobs flink run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--bootstrap-servers", required=True)
    p.add_argument("--results-topic", default=JobConfig.results_topic)
    p.add_argument("--alerts-topic", default=JobConfig.alerts_topic)
    p.add_argument("--deadletter-topic", default=JobConfig.deadletter_topic)
    p.add_argument("--group-id", default=JobConfig.group_id, help="Kafka group id and transactional id prefix")
    p.add_argument("--alertmanager-url", default="", help="e.g. http://127.0.0.1:9093 (none: Kafka only)")
    p.add_argument("--jaeger-url", default="", help="link put in the alerts' generatorURL")
    p.add_argument("--lake", default="", help="archive folder (none: no archive)")
    p.add_argument("--checkpoint-dir", default="", help="checkpoints (none: no checkpoints, at-least-once)")
    p.add_argument("--checkpoint-interval-s", type=float, default=JobConfig.checkpoint_interval_s)
    p.add_argument(
        "--state-backend",
        choices=("hashmap", "rocksdb"),
        default=JobConfig.state_backend,
        help="where keyed state lives: rocksdb (on disk, incremental checkpoints) or hashmap (the JVM heap)",
    )
    p.add_argument("--restore", default="auto", help="auto (newest retained checkpoint), none, or a path")
    p.add_argument("--parallelism", type=int, default=JobConfig.parallelism)
    p.add_argument("--window-s", type=int, default=JobConfig.window_s, help="pre-aggregation window")
    p.add_argument("--allowed-lateness-s", type=float, default=JobConfig.allowed_lateness_s)
    p.add_argument("--idle-timeout-s", type=float, default=JobConfig.idle_timeout_s)
    p.add_argument("--resend-interval-s", type=float, default=JobConfig.resend_interval_s)
    p.add_argument(
        "--archive-dedup-s",
        type=float,
        default=JobConfig.archive_dedup_s,
        help="a result_id archived is not archived again for this long (state: ~10 bytes per id)",
    )
    # (Defaults from an instance: the compiled LatencyConfig's class attributes are descriptors, not values.)
    latency_defaults = LatencyConfig()
    p.add_argument("--latency-warmup-s", type=float, default=latency_defaults.warmup_s)
    p.add_argument("--latency-season-s", type=float, default=latency_defaults.season_s)
    p.add_argument("--latency-min-samples", type=int, default=latency_defaults.min_samples)
    p.add_argument(
        "--python-mode",
        choices=("process", "thread"),
        default=JobConfig.python_mode,
        help="Python functions in worker processes, or inside the JVM (PEMJA)",
    )
    p.add_argument("--shards", type=int, default=JobConfig.shards, help="series batches per window")
    p.add_argument(
        "--persist-every",
        type=int,
        default=JobConfig.persist_every,
        help="write a series' detector state at least every N windows (and with every alert or change)",
    )
    p.add_argument(
        "--max-live-series",
        type=int,
        default=JobConfig.max_live_series,
        help="series states kept live in memory per subtask (~33 KB each); beyond, the oldest are evicted",
    )
    p.add_argument("--jars", default=os.environ.get("NETOBS_FLINK_JARS", ""), help="folder of the connector jars")
    args = p.parse_args(argv)
    latency = replace(
        LatencyConfig(),
        warmup_s=args.latency_warmup_s,
        season_s=args.latency_season_s,
        min_samples=args.latency_min_samples,
    )
    cfg = JobConfig(
        bootstrap_servers=args.bootstrap_servers,
        results_topic=args.results_topic,
        alerts_topic=args.alerts_topic,
        deadletter_topic=args.deadletter_topic,
        group_id=args.group_id,
        alertmanager_url=args.alertmanager_url,
        jaeger_url=args.jaeger_url,
        lake=args.lake,
        checkpoint_dir=args.checkpoint_dir,
        checkpoint_interval_s=args.checkpoint_interval_s,
        state_backend=args.state_backend,
        restore=args.restore,
        parallelism=args.parallelism,
        window_s=args.window_s,
        allowed_lateness_s=args.allowed_lateness_s,
        idle_timeout_s=args.idle_timeout_s,
        resend_interval_s=args.resend_interval_s,
        archive_dedup_s=args.archive_dedup_s,
        detectors=replace(DetectorConfigs(), latency=latency),
        python_mode=args.python_mode,
        shards=args.shards,
        persist_every=args.persist_every,
        max_live_series=args.max_live_series,
    )
    if cfg.shards < 1 or cfg.persist_every < 1 or cfg.max_live_series < 1:
        p.error("--shards, --persist-every and --max-live-series must be >= 1")
    if cfg.archive_dedup_s <= 0:
        p.error(f"--archive-dedup-s must be > 0 s, got {cfg.archive_dedup_s}")
    if not args.jars:
        p.error("--jars (or NETOBS_FLINK_JARS) must name the folder with the connector jars")
    jars = sorted(str(j) for j in Path(args.jars).glob("*.jar"))
    return cfg, jars


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg, jars = parse_args(argv)
    log.info("detector core: %s", detector_build())
    env = build(cfg, jars)
    env.execute(cfg.job_name)
    return 0


if __name__ == "__main__":
    # Run through the importable module, not __main__: the functions shipped to the Python workers
    # must be pickled by reference to netobs_flink.job, not by value.
    from netobs_flink import job as _job  # noqa: PLW0406 - on purpose, see above

    sys.exit(_job.main())
