"""The local pipeline stack: collector, Jaeger, Kafka, Prometheus and Alertmanager on loopback.

``netobs stack up|status|down|build`` (see :mod:`netobs.stack.cli`); ports are defined once in
:mod:`netobs.stack.ports`, Kafka topics in :mod:`netobs.stack.topics`.
"""
