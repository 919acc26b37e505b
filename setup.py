"""The build step pyproject.toml cannot state stably: the agent's C modules ``netobs._wire``
(agent/netobs/_wire.c: the OTLP span and log writers and the histogram buckets) and ``netobs._connect``
(agent/netobs/_connect.c: the runs of plain TCP and HTTP/1.1 checks, in a thread of their own).
``pip install -e .`` builds them in place, with gcc and the Python headers (scripts/apt-packages.txt)."""

from setuptools import Extension, setup

FLAGS = ["-O2", "-Wall", "-Wextra", "-Werror"]

setup(
    ext_modules=[
        Extension(
            "netobs._wire",
            sources=["agent/netobs/_wire.c"],
            extra_compile_args=FLAGS,
        ),
        Extension(
            "netobs._connect",
            sources=["agent/netobs/_connect.c"],
            extra_compile_args=[*FLAGS, "-pthread"],
            extra_link_args=["-pthread"],
        ),
    ]
)
