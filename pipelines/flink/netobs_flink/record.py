"""The fields of the result record the streaming job reads: a mirror of agent/netobs/result.py.

The job does not import the agent. These tables are its one definition of what it reads: the Java parser
(pipelines/flink/java/io/netobs/flink/ResultParser.java) gets them as specs generated here. Tests check them
against the contract's golden records (tests/contract/golden/result_<type>.json; test_flink_record.py), so
drift fails a test, and the parser against :func:`extract` (tests/flink/test_java_helpers.py).
"""

from __future__ import annotations

PHASES = ("dns", "connect", "tls", "ttfb", "transfer")

# The flat row the job's Java parser (io.netobs.flink.ResultParser) makes of each record, in one JSON parse:
# column -> (JSON path, Flink SQL type). A path is dotted; ``[-1]`` takes an array's last element; ``a|b``
# is the first of the paths that gives a value (SQL COALESCE). A value of another JSON type is NULL.
READ_FIELDS: dict[str, tuple[str, str]] = {
    "agent_id": ("agent_id", "STRING"),
    "pop": ("pop", "STRING"),
    "check_name": ("check_name", "STRING"),
    "check_type": ("check_type", "STRING"),
    "target": ("target", "STRING"),
    "started_at_ms": ("started_at_ms", "BIGINT"),
    "success": ("success", "BOOLEAN"),
    "duration_ms": ("duration_ms", "DOUBLE"),
    **{f"phase_{p}_ms": (f"phases_ms.{p}", "DOUBLE") for p in PHASES},
    "loss_ratio": ("icmp.loss_ratio", "DOUBLE"),
    "path_hash": ("traceroute.path_hash", "STRING"),
    "path_rtt_ms": ("traceroute.hops[-1].rtt_ms", "DOUBLE"),
    "cert_expiry_days": ("http.tls.cert_expiry_days|tcp.tls.cert_expiry_days", "DOUBLE"),
    "cert_subject": ("http.tls.cert_subject|tcp.tls.cert_subject", "STRING"),
    "error_type": ("error_type", "STRING"),
    "trace_id": ("trace_id", "STRING"),
}

# A record without any of these (or with the wrong JSON type) goes to the dead-letter topic.
REQUIRED: dict[str, str] = {
    "result_id": "STRING",
    "started_at_ms": "BIGINT",
    "agent_id": "STRING",
    "check_name": "STRING",
    "check_type": "STRING",
    "target": "STRING",
    "success": "BOOLEAN",
}


def fields_spec() -> str:
    """READ_FIELDS for the Java parser: ``name=path|path:TYPE,...``."""
    return ",".join(f"{name}={path}:{sql_type}" for name, (path, sql_type) in READ_FIELDS.items())


def required_spec() -> str:
    """REQUIRED for the Java parser: ``name:TYPE,...``."""
    return ",".join(f"{name}:{sql_type}" for name, sql_type in REQUIRED.items())


_PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "STRING": (str,),
    "BIGINT": (int,),
    "DOUBLE": (int, float),
    "BOOLEAN": (bool,),
}


def typed(value: object, sql_type: str) -> object:
    """``value`` if its JSON type fits ``sql_type``, else None (a bool is no number)."""
    if isinstance(value, bool) and sql_type != "BOOLEAN":
        return None
    if not isinstance(value, _PYTHON_TYPES[sql_type]):
        return None
    if sql_type == "BIGINT" and not -(2**63) <= value < 2**63:  # type: ignore[operator]
        return None
    return float(value) if sql_type == "DOUBLE" else value  # type: ignore[arg-type]


def value_at(record: object, path: str) -> object:
    """The JSON value at one path of READ_FIELDS (no ``|``), untyped; None where the path ends early."""
    node = record
    for segment in path.split("."):
        last = segment.endswith("[-1]")
        node = node.get(segment.removesuffix("[-1]")) if isinstance(node, dict) else None
        if last:
            node = node[-1] if isinstance(node, list) and node else None
    return node


def extract(record: object, path: str, sql_type: str) -> object:
    """The value READ_FIELDS' ``path`` gives in ``record``, as the Java parser reads it (tests and tools)."""
    for alternative in path.split("|"):
        value = typed(value_at(record, alternative), sql_type)
        if value is not None:
            return value
    return None


def is_valid(record: object) -> bool:
    """REQUIRED in Python (tests and tools): the rule the Java parser applies."""
    if not isinstance(record, dict):
        return False
    return all(typed(record.get(name), sql_type) is not None for name, sql_type in REQUIRED.items())
