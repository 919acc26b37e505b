"""Structural JSON schemas of the Strimzi resources k8s/ uses (Kafka, KafkaNodePool, KafkaTopic, v1beta2).

Strimzi publishes its CRDs only as release assets, not in a registry package this project can install, so
these cover the fields netobs sets -- names, types, allowed values and required keys, after the Strimzi
API reference -- and reject unknown keys, which is what catches a typo. They are not the full CRDs.
"""

from __future__ import annotations

from typing import Any

_QUANTITY = {"type": ["string", "integer", "number"]}
_RESOURCES = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "requests": {"type": "object", "additionalProperties": _QUANTITY},
        "limits": {"type": "object", "additionalProperties": _QUANTITY},
    },
}
_METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        "namespace": {"type": "string"},
    },
}
_CLUSTER_LABEL = {
    "type": "object",
    "required": ["labels"],
    "properties": {"labels": {"type": "object", "required": ["strimzi.io/cluster"]}},
}


def _resource(kind: str, spec: dict[str, Any], metadata_extra: dict[str, Any] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"allOf": [_METADATA, metadata_extra]} if metadata_extra else _METADATA
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "kafka.strimzi.io/v1beta2"},
            "kind": {"const": kind},
            "metadata": metadata,
            "spec": spec,
        },
    }


KAFKA_NODE_POOL = _resource(
    "KafkaNodePool",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["replicas", "roles", "storage"],
        "properties": {
            "replicas": {"type": "integer", "minimum": 0},
            "roles": {"type": "array", "minItems": 1, "items": {"enum": ["controller", "broker"]}},
            "storage": {
                "type": "object",
                "additionalProperties": False,
                "required": ["type"],
                "properties": {
                    "type": {"enum": ["jbod", "persistent-claim", "ephemeral"]},
                    "volumes": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["id", "type"],
                            "properties": {
                                "id": {"type": "integer", "minimum": 0},
                                "type": {"enum": ["persistent-claim", "ephemeral"]},
                                "size": {"type": "string", "pattern": r"^[0-9]+(Mi|Gi|Ti)$"},
                                "class": {"type": "string"},
                                "deleteClaim": {"type": "boolean"},
                                "kraftMetadata": {"enum": ["shared"]},
                            },
                        },
                    },
                },
            },
            "resources": _RESOURCES,
        },
    },
    _CLUSTER_LABEL,
)

KAFKA = _resource(
    "Kafka",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["kafka"],
        "properties": {
            "kafka": {
                "type": "object",
                "additionalProperties": False,
                "required": ["listeners"],
                "properties": {
                    "version": {"type": "string", "pattern": r"^[0-9]+\.[0-9]+\.[0-9]+$"},
                    "metadataVersion": {"type": "string"},
                    "listeners": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["name", "port", "type", "tls"],
                            "properties": {
                                "name": {"type": "string", "pattern": "^[a-z0-9]{1,11}$"},
                                "port": {"type": "integer", "minimum": 9092},
                                "type": {
                                    "enum": ["internal", "route", "loadbalancer", "nodeport", "ingress", "cluster-ip"]
                                },
                                "tls": {"type": "boolean"},
                            },
                        },
                    },
                    "config": {
                        "type": "object",
                        "additionalProperties": {"type": ["string", "integer", "boolean", "number"]},
                    },
                },
            },
            "entityOperator": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"topicOperator": {"type": "object"}, "userOperator": {"type": "object"}},
            },
        },
    },
    {
        "type": "object",
        "required": ["annotations"],
        "properties": {
            "annotations": {
                "type": "object",
                "required": ["strimzi.io/node-pools", "strimzi.io/kraft"],
                "properties": {"strimzi.io/node-pools": {"const": "enabled"}, "strimzi.io/kraft": {"const": "enabled"}},
            }
        },
    },
)

KAFKA_TOPIC = _resource(
    "KafkaTopic",
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["partitions", "replicas"],
        "properties": {
            "topicName": {"type": "string"},
            "partitions": {"type": "integer", "minimum": 1},
            "replicas": {"type": "integer", "minimum": 1, "maximum": 32767},
            "config": {"type": "object", "additionalProperties": {"type": ["string", "integer", "boolean", "number"]}},
        },
    },
    _CLUSTER_LABEL,
)

SCHEMAS: dict[str, dict[str, Any]] = {"Kafka": KAFKA, "KafkaNodePool": KAFKA_NODE_POOL, "KafkaTopic": KAFKA_TOPIC}
