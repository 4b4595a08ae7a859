"""Wall time of `fitagent probe --json` and `fitagent recommend --json` (median of N runs).

    python -m benchmarks.cli [--runs 15] [--fitagent PATH]

Run it against a non-editable install (an editable install adds an import hook that costs
~20 ms per start): `python -m venv /tmp/fa && /tmp/fa/bin/pip install . && python -m
benchmarks.cli --fitagent /tmp/fa/bin/fitagent`. Target on a 2-core machine: recommend ≤ 0.25 s.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

SNAPSHOT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "snapshots" / "rtx4090.json"


def time_command(cmd: list[str], runs: int) -> list[float]:
    subprocess.run(cmd, capture_output=True, check=True)  # warm the page cache
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--fitagent", default=shutil.which("fitagent") or str(Path(sys.executable).parent / "fitagent"))
    args = parser.parse_args()
    commands = {
        "python -c pass (interpreter start)": [sys.executable, "-c", "pass"],
        "fitagent probe --json": [args.fitagent, "probe", "--json"],
        "fitagent recommend --json (this machine)": [args.fitagent, "recommend", "--json"],
        "fitagent recommend --json --hardware rtx4090": [
            args.fitagent,
            "recommend",
            "--json",
            "--hardware",
            str(SNAPSHOT),
        ],
    }
    print(f"{'command':48} {'median':>9} {'min':>9} {'max':>9}   ({args.runs} runs, {args.fitagent})")
    for name, cmd in commands.items():
        times = time_command(cmd, args.runs)
        print(
            f"{name:48} {statistics.median(times) * 1000:7.1f}ms {min(times) * 1000:7.1f}ms {max(times) * 1000:7.1f}ms"
        )


if __name__ == "__main__":
    main()
