"""The KRaft cluster id the stack formats Kafka's storage with."""

from __future__ import annotations

import base64
import uuid

from netobs.stack.components import kafka_cluster_id


def test_an_id_starting_with_a_dash_is_drawn_again() -> None:
    dash_first = uuid.UUID(bytes=b"\xf8" + bytes(15))  # URL-safe base64 of 0xf8... begins with '-'
    assert base64.urlsafe_b64encode(dash_first.bytes).decode().startswith("-")
    plain = uuid.UUID(int=1)
    drawn = iter([dash_first, dash_first, plain])
    assert kafka_cluster_id(lambda: next(drawn)) == base64.urlsafe_b64encode(plain.bytes).rstrip(b"=").decode()


def test_ids_are_22_url_safe_characters() -> None:
    for _ in range(200):
        cluster_id = kafka_cluster_id()
        assert len(cluster_id) == 22 and not cluster_id.startswith("-")
        assert set(cluster_id) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
