# syntax=docker/dockerfile:1
# The nightly rollup/report job (k8s/base/spark/report.yaml): PySpark in local mode, so a plain Python
# image with a JRE is enough (no Spark distribution needed).
# Build from the repository root:
#   docker build -f docker/spark-job.Dockerfile -t netobs/spark-job:0.1.0 .
FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 185 spark && useradd --uid 185 --gid 185 --no-create-home --shell /usr/sbin/nologin spark
COPY pipelines/spark/requirements.txt /tmp/requirements.txt
# Runtime dependencies only (the file also lists the test tools).
RUN grep -E '^(pyspark|pyarrow|PyYAML)==' /tmp/requirements.txt > /tmp/runtime.txt \
 && pip install --no-cache-dir -r /tmp/runtime.txt
COPY pipelines/spark/netobs_spark /opt/netobs/netobs_spark
ENV PYTHONPATH=/opt/netobs PYTHONDONTWRITEBYTECODE=1 JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64
USER 185:185
ENTRYPOINT ["python", "-m", "netobs_spark"]
