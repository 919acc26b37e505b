# syntax=docker/dockerfile:1
# The probe agent. Two targets:
#   agent       no capabilities needed (ICMP via unprivileged datagram sockets; k8s sets ping_group_range)
#   agent-path  the same, plus the file capability cap_net_raw on its Python, for ICMP/TCP-method
#               traceroutes (k8s: netobs-agent-path adds NET_RAW to the bounding set)
# Build from the repository root:
#   docker build -f docker/agent.Dockerfile --target agent -t netobs/agent:0.1.0 .
#   docker build -f docker/agent.Dockerfile --target agent-path -t netobs/agent-path:0.1.0 .
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY agent ./agent
# The build needs the package directories listed in pyproject.toml; the pipelines are not installed.
RUN mkdir -p pipelines/flink pipelines/spark \
 && python -m venv /opt/netobs \
 && /opt/netobs/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/netobs/bin/pip install --no-cache-dir .

FROM python:${PYTHON_VERSION}-slim-bookworm AS agent
RUN groupadd --gid 10001 netobs && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin netobs
COPY --from=build /opt/netobs /opt/netobs
ENV PATH=/opt/netobs/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 10001:10001
ENTRYPOINT ["netobs"]
CMD ["agent", "run", "--config", "/etc/netobs/agent.yaml"]

FROM agent AS agent-path
USER root
# setcap works on the real binary, not the venv's symlink.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libcap2-bin \
 && setcap cap_net_raw+ep "$(readlink -f /opt/netobs/bin/python)" \
 && apt-get purge -y libcap2-bin && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*
USER 10001:10001
