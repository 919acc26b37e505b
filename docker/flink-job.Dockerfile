# syntax=docker/dockerfile:1
# The PyFlink anomaly job for the Flink Kubernetes Operator (k8s/base/flink/flink.yaml): the official
# Flink image, a Python virtualenv with PyFlink (pipelines/flink/requirements.txt, minus test and build
# tools), the job's package with its detector core compiled by mypyc (pipelines/flink/build_native.py, built
# here on the same base image, so for the same Python), and in /opt/flink/usrlib the Kafka connector jar and
# netobs-flink.jar (the job's Java operators, compiled against the image's own Flink jars).
# Build from the repository root:
#   docker build -f docker/flink-job.Dockerfile -t netobs/flink-job:0.1.0 .
ARG FLINK_IMAGE=flink:2.2.1-scala_2.12-java17

FROM ${FLINK_IMAGE} AS flink

FROM maven:3.9-eclipse-temurin-17 AS jars
WORKDIR /jars
COPY pipelines/flink/pom.xml .
RUN mvn -B -q -f pom.xml dependency:copy-dependencies -DoutputDirectory=/jars/out -DincludeScope=runtime
COPY --from=flink /opt/flink/lib /flink-lib
COPY pipelines/flink/java /jars/java
RUN mkdir classes \
 && javac -nowarn -d classes -cp "/flink-lib/*" java/io/netobs/flink/*.java \
 && jar cf out/netobs-flink.jar -C classes .

FROM ${FLINK_IMAGE} AS native
USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-dev gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
COPY pipelines/flink/requirements.txt pipelines/flink/build_native.py /src/
COPY pipelines/flink/netobs_flink /src/netobs_flink
RUN python3 -m venv /opt/build \
 && /opt/build/bin/pip install --no-cache-dir setuptools "$(grep -E '^mypy==' /src/requirements.txt | cut -d' ' -f1)" \
 && /opt/build/bin/python /src/build_native.py /opt/netobs

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
COPY --from=native /opt/netobs /opt/netobs
COPY --from=jars /jars/out/ /opt/flink/usrlib/
RUN cp /opt/flink/opt/flink-python-*.jar /opt/flink/lib/ \
 && chown -R flink:flink /opt/netobs /opt/flink/usrlib
ENV PYTHONPATH=/opt/netobs PATH=/opt/venv/bin:$PATH
USER flink
