"""The fields of the result record the streaming job reads: a mirror of agent/netobs/result.py.

The job does not import the agent. This table is its one definition of what it reads; the SQL source
schema and the validity rule are generated from it, and tests/unit/test_flink_record.py checks it against
the contract's golden records (tests/contract/golden/result_<type>.json), so drift fails a test.
"""

from __future__ import annotations

# JSON path -> Flink SQL type, for every field the job reads. Nested records are nullable ROWs.
READ_FIELDS: dict[str, str] = {
    "result_id": "STRING",
    "started_at_ms": "BIGINT",
    "duration_ms": "DOUBLE",
    "agent_id": "STRING",
    "pop": "STRING",
    "check_name": "STRING",
    "check_type": "STRING",
    "target": "STRING",
    "success": "BOOLEAN",
    "error_type": "STRING",
    "trace_id": "STRING",
    "phases_ms": "MAP<STRING, DOUBLE>",
    "icmp": "ROW<`loss_ratio` DOUBLE>",
    "http": "ROW<`tls` ROW<`cert_expiry_days` DOUBLE, `cert_subject` STRING>>",
    "tcp": "ROW<`tls` ROW<`cert_expiry_days` DOUBLE, `cert_subject` STRING>>",
    "traceroute": "ROW<`path_hash` STRING, `hops` ARRAY<ROW<`rtt_ms` DOUBLE>>>",
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


def source_columns_sql() -> str:
    """The physical columns of the JSON source table."""
    return ",\n  ".join(f"`{name}` {sql_type}" for name, sql_type in READ_FIELDS.items())


def required_spec() -> str:
    """The rule for the job's Java check ``netobs_result_id(raw, spec)``: ``name:TYPE,...``."""
    return ",".join(f"{name}:{sql_type}" for name, sql_type in REQUIRED.items())


def valid_sql(column: str = "`raw`") -> str:
    """A SQL predicate on the raw message text: true when the record can be processed.

    The same rule with Flink's JSON functions (one parse per field); the job uses the Java check, which
    parses once. Kept for tools and as the reference the tests compare the two with.
    """
    checks = [f"{column} IS JSON OBJECT"]
    for name, sql_type in REQUIRED.items():
        # JSON_VALUE ... RETURNING of numbers fails at run time in Flink 2.2 (Long cast to BigDecimal):
        # test the text of the value instead.
        value = f"JSON_VALUE({column}, '$.{name}')"
        if sql_type == "BIGINT":
            checks.append(f"TRY_CAST({value} AS BIGINT) IS NOT NULL")
        elif sql_type == "BOOLEAN":
            checks.append(f"{value} IN ('true', 'false')")
        else:
            checks.append(f"{value} IS NOT NULL")
    return "(" + " AND ".join(checks) + ")"


def is_valid(record: object) -> bool:
    """The same rule as :func:`valid_sql`, in Python (tests and tools)."""
    if not isinstance(record, dict):
        return False
    python_types: dict[str, tuple[type, ...]] = {"STRING": (str,), "BIGINT": (int,), "BOOLEAN": (bool,)}
    for name, sql_type in REQUIRED.items():
        value = record.get(name)
        if value is None or not isinstance(value, python_types[sql_type]):
            return False
        if sql_type == "BIGINT" and isinstance(value, bool):
            return False
    return True
