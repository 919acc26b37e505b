# syntax=docker/dockerfile:1
# The PyFlink anomaly job for the Flink Kubernetes Operator (k8s/base/flink/flink.yaml): the official
# Flink image, a Python virtualenv with PyFlink (pipelines/flink/requirements.txt, minus test tools)
# and the job's package, and the Kafka connector jar in /opt/flink/usrlib.
# Build from the repository root:
#   docker build -f docker/flink-job.Dockerfile -t netobs/flink-job:0.1.0 .
ARG FLINK_IMAGE=flink:2.2.1-scala_2.12-java17

FROM maven:3.9-eclipse-temurin-17 AS jars
WORKDIR /jars
COPY pipelines/flink/pom.xml .
RUN mvn -B -q -f pom.xml dependency:copy-dependencies -DoutputDirectory=/jars/out -DincludeScope=runtime

FROM ${FLINK_IMAGE}
USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
COPY pipelines/flink/requirements.txt /tmp/requirements.txt
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --upgrade pip \
 && grep -E '^apache-flink' /tmp/requirements.txt > /tmp/runtime.txt \
 && /opt/venv/bin/pip install --no-cache-dir -r /tmp/runtime.txt
COPY pipelines/flink/netobs_flink /opt/netobs/netobs_flink
COPY --from=jars /jars/out/ /opt/flink/usrlib/
RUN cp /opt/flink/opt/flink-python-*.jar /opt/flink/lib/ \
 && chown -R flink:flink /opt/netobs /opt/flink/usrlib
ENV PYTHONPATH=/opt/netobs PATH=/opt/venv/bin:$PATH
USER flink
