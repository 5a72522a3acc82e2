"""Generator and reader throughput, and the generator's peak memory, per scale.

    python bench/bench_generator.py                 # scale 1
    python bench/bench_generator.py --scales 0.1 1 10

Each scale runs in its own subprocess, so the peak RSS printed is that scale's alone (the
kernel's high-water mark only ever grows within a process).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from common import cpu_model

REPO = Path(__file__).resolve().parent.parent


def _peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: KiB, macOS: bytes
    return peak / (2**20 if sys.platform == "darwin" else 1024)


def _child(scale: float, seed: int) -> None:
    from berka_core.dataset.generator import generate
    from berka_core.dataset.reader import TableReader

    baseline = _peak_rss_mib()
    with tempfile.TemporaryDirectory(prefix="berka_bench_") as folder:
        result = generate(folder, scale=scale, seed=seed)
        generate_peak = _peak_rss_mib()
        trans = Path(folder) / "trans.asc"
        started = time.perf_counter()
        rows = sum(1 for _ in TableReader(trans, "trans"))
        read_seconds = time.perf_counter() - started
        print(
            json.dumps(
                {
                    "scale": scale,
                    "trans_rows": result.rows["trans"],
                    "generate_seconds": result.seconds,
                    "generate_rows_per_s": result.trans_rows_per_second,
                    "trans_mib": trans.stat().st_size / 2**20,
                    "baseline_rss_mib": baseline,
                    "generate_peak_rss_mib": generate_peak,
                    "read_rows_per_s": rows / read_seconds,
                    "read_peak_rss_mib": _peak_rss_mib(),
                }
            )
        )


def _machine() -> str:
    return f"{cpu_model()}, {psutil.cpu_count()} cores, Python {platform.python_version()}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        _child(args.child, args.seed)
        return 0

    print(f"machine: {_machine()}")
    print(
        f"{'scale':>6} {'trans rows':>11} {'gen s':>6} {'gen rows/s':>11} {'trans MiB':>9} "
        f"{'gen peak RSS':>12} {'read rows/s':>11} {'read peak RSS':>13}"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for scale in args.scales:
        command = [sys.executable, __file__, "--child", str(scale), "--seed", str(args.seed)]
        output = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
        r = json.loads(output.stdout.strip().splitlines()[-1])
        print(
            f"{r['scale']:>6g} {r['trans_rows']:>11,} {r['generate_seconds']:>6.1f} "
            f"{r['generate_rows_per_s']:>11,.0f} {r['trans_mib']:>9.0f} "
            f"{r['generate_peak_rss_mib']:>8.0f} MiB {r['read_rows_per_s']:>11,.0f} "
            f"{r['read_peak_rss_mib']:>9.0f} MiB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
