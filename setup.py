"""The build step pyproject.toml cannot state stably: the agent's C module ``netobs._wire``
(agent/netobs/_wire.c: the OTLP span and log writers and the histogram buckets). ``pip install -e .`` builds
it in place, with gcc and the Python headers (scripts/apt-packages.txt)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "netobs._wire",
            sources=["agent/netobs/_wire.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Werror"],
        )
    ]
)
