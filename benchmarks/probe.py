"""Wall time of `fitagent probe --json` beside llmfit's `llmfit system --json`, in one run.

    python -m benchmarks.probe [--runs 40] [--fitagent PATH] [--llmfit PATH]

The commands run interleaved (one of each per round), so a busy machine slows all of them
alike; the report gives median and minimum per command and the ratio of medians. Target:
fitagent ≤ 1.5 × llmfit (a compiled binary). Measure a non-editable install — an editable
one adds an import hook that costs ~20 ms per start:

    python -m venv /tmp/bench-venv && /tmp/bench-venv/bin/pip install . llmfit
    python -m benchmarks.probe --fitagent /tmp/bench-venv/bin/fitagent --llmfit /tmp/bench-venv/bin/llmfit
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_RATIO = 1.5


def _default(name: str) -> str | None:
    beside_python = Path(sys.executable).parent / name
    return str(beside_python) if beside_python.exists() else shutil.which(name)


def time_commands(commands: dict[str, list[str]], runs: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in commands}
    for cmd in commands.values():  # warm the page cache and the pyc files
        subprocess.run(cmd, capture_output=True, check=True)
    for _ in range(runs):
        for name, cmd in commands.items():
            start = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=True)
            times[name].append(time.perf_counter() - start)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--fitagent", default=_default("fitagent"))
    parser.add_argument("--llmfit", default=_default("llmfit"))
    args = parser.parse_args()
    if not args.fitagent:
        print("fitagent not found: install it (pip install .) or pass --fitagent PATH", file=sys.stderr)
        return 2
    python = str(Path(args.fitagent).parent / "python")
    commands = {
        "python -c pass (interpreter start)": [python if Path(python).exists() else sys.executable, "-c", "pass"],
        "fitagent probe --json": [args.fitagent, "probe", "--json"],
    }
    if args.llmfit:
        commands["llmfit system --json"] = [args.llmfit, "system", "--json"]
    else:
        print("llmfit not found (pip install llmfit, or --llmfit PATH): timing fitagent alone", file=sys.stderr)
    times = time_commands(commands, args.runs)
    print(f"{'command':40} {'median':>9} {'min':>9}   ({args.runs} interleaved runs)")
    for name, samples in times.items():
        print(f"{name:40} {statistics.median(samples) * 1000:7.1f}ms {min(samples) * 1000:7.1f}ms")
    if args.llmfit:
        ratio = statistics.median(times["fitagent probe --json"]) / statistics.median(times["llmfit system --json"])
        verdict = "meets" if ratio <= TARGET_RATIO else "misses"
        print(f"fitagent / llmfit (medians): {ratio:.2f}× — {verdict} the ≤ {TARGET_RATIO}× target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
