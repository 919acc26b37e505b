"""Compile the job's detector core with mypyc: a copy of the ``netobs_flink`` package whose hot modules are C.

    python pipelines/flink/build_native.py OUT_DIR     # OUT_DIR/netobs_flink: the package, compiled

The detectors are plain, type-annotated Python (unit-tested as such, and what ``netobs detect replay``
runs). The Flink job runs them for every series and window, where the interpreter is what limits the
job's throughput; mypyc (part of mypy) compiles the same source into C extension modules, 3-4 times faster
with the same results bit for bit (``tests/flink/test_native_build.py`` checks both, and that states
pickled by either build restore in the other, so a checkpoint survives a switch between them).

OUT_DIR gets a complete copy of the package: the modules in :data:`COMPILED` as extension modules (next
to their sources, which Python then no longer imports) plus one shared library ``native__mypyc``; the
others as they are. ``scripts/setup.d/50-flink.sh`` builds it into the cache, keyed by the sources, and
``netobs flink run`` runs the job from it (set ``NETOBS_FLINK_NATIVE=0`` to run the plain sources).
Needs a C compiler and the Python headers (Debian: gcc, python3-dev).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent / "netobs_flink"

# The modules the job calls per series and window (paths inside the package's parent). The others stay
# interpreted: alert and availability hold frozen dataclasses that cross process boundaries pickled,
# which mypyc's native classes cannot restore; job, cli and alertmanager are not on the hot path.
COMPILED: tuple[str, ...] = (
    "netobs_flink/record.py",
    "netobs_flink/series.py",
    "netobs_flink/detect/robust.py",
    "netobs_flink/detect/latency.py",
    "netobs_flink/detect/rate.py",
    "netobs_flink/detect/path.py",
    "netobs_flink/detect/tls.py",
)

_SETUP = """\
from setuptools import setup
from mypyc.build import mypycify

files = {files!r}
setup(name="netobs-flink-native", ext_modules=mypycify(files, separate=[(files, "netobs_flink.native")]))
"""


def module_name(path: str) -> str:
    """``netobs_flink/detect/latency.py`` -> ``netobs_flink.detect.latency``."""
    return path.removesuffix(".py").replace("/", ".")


def build(out: Path) -> None:
    work = out.with_name(out.name + ".tmp")
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(PACKAGE_DIR, work / "netobs_flink", ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    (work / "setup.py").write_text(_SETUP.format(files=list(COMPILED)))
    log = work / "build.log"
    with log.open("w") as sink:
        command = [sys.executable, "setup.py", "build_ext", "--inplace"]
        proc = subprocess.run(command, check=False, cwd=work, stdout=sink, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        tail = log.read_text().splitlines()[-25:]
        raise SystemExit(f"mypyc build failed (exit {proc.returncode}); last lines of {log}:\n" + "\n".join(tail))
    for scratch in ("build", ".mypy_cache"):  # the C sources and objects, mypy's cache: not part of the package
        shutil.rmtree(work / scratch)
    (work / "setup.py").unlink()
    log.unlink()
    check_compiled(work)
    shutil.rmtree(out, ignore_errors=True)
    work.rename(out)


def check_compiled(root: Path) -> None:
    """Import every module of :data:`COMPILED` from ``root`` in a fresh interpreter; each must be the
    extension module (a stale or missing one would silently run interpreted)."""
    names = [module_name(p) for p in COMPILED]
    probe = "import importlib,sys\nfor n in sys.argv[1:]:\n    print(n, importlib.import_module(n).__file__)"
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.run(
        [sys.executable, "-c", probe, *names], env=env, check=True, capture_output=True, text=True, cwd=root
    )
    interpreted = [line for line in proc.stdout.splitlines() if not line.endswith(".so")]
    if interpreted:
        raise SystemExit("these modules did not import compiled: " + "; ".join(interpreted))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path, help="folder to create (replaced if it exists): OUT/netobs_flink")
    args = p.parse_args(argv)
    start = time.monotonic()
    print(f"compiling {len(COMPILED)} detector modules with mypyc into {args.out}", file=sys.stderr)
    build(args.out.resolve())
    print(f"compiled in {time.monotonic() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
