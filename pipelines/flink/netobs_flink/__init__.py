"""netobs_flink: the streaming side of netobs.

``netobs_flink.detect`` is the pure detector core (standard library only, no Flink): it is what the unit
tests and ``netobs detect replay`` run. ``netobs_flink.job`` wraps it in a PyFlink DataStream job and must
only be imported inside the Flink virtualenv. The job runs the core compiled with mypyc
(``pipelines/flink/build_native.py``); :func:`detector_build` tells which build a process imported.
"""

from pathlib import Path

__all__ = ["detector_build"]


def detector_build() -> str:
    """``compiled (mypyc), from <dir>`` or ``interpreted, from <dir>``: the detector core this process runs."""
    from netobs_flink.detect import latency

    origin = latency.__file__ or ""
    kind = "compiled (mypyc)" if origin.endswith(".so") else "interpreted"
    return f"{kind}, from {Path(origin).resolve().parents[1]}"
