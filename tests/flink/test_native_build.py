"""The mypyc-compiled detector core (pipelines/flink/build_native.py), which the job runs, against the
plain sources: the suite really runs the compiled build, both builds output the same bit for bit, and
series states pickled by one build restore in the other (a checkpoint survives a switch of build).

Each build runs ``detector_trace.py`` in its own interpreter (the module names are the same)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "pipelines" / "flink"
TRACE = Path(__file__).with_name("detector_trace.py")
STOP_AT = 450  # of detector_trace.WINDOWS (900): mid-way, between the series' shifts and outages

# build_native.py is a script next to the package; loaded from its file so that pipelines/flink (the plain
# sources) does not go on sys.path ahead of the compiled package the rest of the suite imports.
_spec = importlib.util.spec_from_file_location("build_native", SOURCE / "build_native.py")
assert _spec is not None and _spec.loader is not None
build_native = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_native)
COMPILED, module_name = build_native.COMPILED, build_native.module_name


@pytest.fixture(scope="module")
def native() -> Path:
    path = os.environ.get("FLINK_PYTHONPATH", "")
    assert path and Path(path).resolve() != SOURCE.resolve(), (
        "FLINK_PYTHONPATH must name the compiled package (scripts/test.d/50-flink.sh sets it from "
        "scripts/setup.d/50-flink.sh --print)"
    )
    return Path(path)


def _python(pythonpath: Path, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(pythonpath), str(ROOT / "agent"), str(ROOT)])}
    proc = subprocess.run(
        [sys.executable, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _trace(pythonpath: Path, out: Path, *args: str) -> list[str]:
    _python(pythonpath, str(TRACE), str(out), *args)
    return out.read_text().splitlines()


def _first_difference(got: list[str], want: list[str]) -> str:
    for i, (a, b) in enumerate(zip(got, want, strict=False)):
        if a != b:
            return f"line {i}:\n  got  {a[:300]}\n  want {b[:300]}"
    return f"lengths {len(got)} != {len(want)}"


def test_the_job_runs_the_compiled_modules(native: Path) -> None:
    probe = (
        "import importlib, sys\n"
        "from netobs_flink import detector_build\n"
        "for name in sys.argv[1:]:\n"
        "    print(name, importlib.import_module(name).__file__)\n"
        "print('build', detector_build())\n"
    )
    out = _python(native, "-c", probe, *(module_name(p) for p in COMPILED)).splitlines()
    files = dict(line.split(" ", 1) for line in out)
    for path in COMPILED:
        origin = files[module_name(path)]
        assert origin.startswith(str(native)) and origin.endswith(".so"), origin
    assert files["build"] == f"compiled (mypyc), from {native.resolve() / 'netobs_flink'}"
    plain = _python(SOURCE, "-c", probe, "netobs_flink.detect.latency").splitlines()
    assert plain[0].endswith("latency.py") and plain[1].startswith("build interpreted")


def test_the_job_takes_its_defaults_from_the_compiled_configs(native: Path, tmp_path: Path) -> None:
    # A compiled dataclass's class attributes are descriptors, not its defaults: the job's options must
    # not read them (they once did, and the job died at start with a TypeError).
    probe = (
        "import sys\n"
        "from netobs_flink.job import parse_args\n"
        "from netobs_flink.series import DetectorConfigs\n"
        "cfg, _ = parse_args(['--bootstrap-servers', '127.0.0.1:9', '--jars', sys.argv[1]])\n"
        "print(cfg.detectors == DetectorConfigs(), cfg.detectors.latency.min_samples)\n"
    )
    assert _python(native, "-c", probe, str(tmp_path)).split() == ["True", "20"]


def test_compiled_and_interpreted_output_the_same(native: Path, tmp_path: Path) -> None:
    plain = _trace(SOURCE, tmp_path / "plain.txt")
    compiled = _trace(native, tmp_path / "compiled.txt")
    # The trace holds what is to be compared: NAB alerts, every kind of series alert, final states.
    kinds = ("LatencyIncrease", "ErrorRate", "PacketLoss", "PathChange", "TlsCertExpiry", "Change(", "'latency': {")
    for what in ("latency_increase", *kinds):
        assert any(what in line for line in plain), what
    assert len(plain) > 2000
    assert compiled == plain, _first_difference(compiled, plain)


def test_states_restore_across_builds(native: Path, tmp_path: Path) -> None:
    full = _trace(SOURCE, tmp_path / "full.txt", "--no-nab")
    # The reference from STOP_AT on: lines "<season> <persist> <window> ..." of earlier windows dropped.
    want = [line for line in full if not (line.split(" ")[2].isdigit() and int(line.split(" ")[2]) < STOP_AT)]
    assert sum("firing" in line for line in want) > 50
    stop = ("--no-nab", "--stop-at", str(STOP_AT))
    for first, second in ((SOURCE, native), (native, SOURCE)):
        states = tmp_path / f"states-{first.name}.pkl"
        _trace(first, tmp_path / "first.txt", *stop, "--save", str(states))
        got = _trace(second, tmp_path / "second.txt", *stop, "--resume", str(states))
        assert got == want, f"saved by {first}, resumed by {second}: " + _first_difference(got, want)
