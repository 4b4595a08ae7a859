"""Soak the agent: rescans every second under mixed load, with its memory, open files and threads
printed at the start and the end (a leak shows as steady growth).

    python -m benchmarks.soak [--minutes 10] [--clients 8] [--fitagent PATH]

Starts `fitagent serve` on a copy of the RTX 4090 fixture snapshot whose free memory moves every few
seconds (so scans recompute and write events), and has `--clients` threads ask a mix of routes
(pick, recommendations with and without all_quants/explain, estimate with forced splits, models,
events paging, hardware, metrics, the page, bad parameters, a few 404s) as fast as they are answered.
Prints requests, status counts, p50/p99 latency, and RSS / fds / threads at start, middle and end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "snapshots" / "rtx4090.json"
ROUTES = [
    "/v1/pick",
    "/v1/pick?use_case=code&context=16k",
    "/v1/recommendations",
    "/v1/recommendations?all_quants=true",
    "/v1/recommendations?explain=qwen2.5-14b&use_case=code",
    "/v1/estimate?model=llama3.1-70b&gpu_layers=80",
    "/v1/estimate?model=qwen3-30b-a3b&quant=q4km",
    "/v1/models",
    "/v1/events?since=0&limit=20",
    "/v1/hardware",
    "/metrics",
    "/",
    "/healthz",
    "/v1/pick?context=infk",
    "/v1/estimate?model=nope",
    "/nowhere",
]


def process_figures(pid: int) -> dict:
    status = Path(f"/proc/{pid}/status").read_text()
    rss = next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:"))
    threads = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("Threads:"))
    return {"rss_bytes": rss, "fds": len(os.listdir(f"/proc/{pid}/fd")), "threads": threads}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=None, help="overrides --minutes (a short run)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--fitagent", default=shutil.which("fitagent") or "fitagent")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    duration = args.seconds if args.seconds is not None else args.minutes * 60
    work = Path(tempfile.mkdtemp(prefix="fitagent-soak-"))
    snapshot = work / "box.json"
    shutil.copyfile(FIXTURE, snapshot)
    (work / "fitagent.yaml").write_text("port: 0\nrescan_interval_s: 1\ncontexts: [8192, 16384]\nevents_max: 200\n")
    agent = subprocess.Popen(
        [args.fitagent, "serve", "--config", str(work / "fitagent.yaml"), "--hardware", str(snapshot)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    url = None
    for line in agent.stderr:
        if "serving on " in line:
            url = line.split("serving on ", 1)[1].strip()
            break
    threading.Thread(target=lambda: [None for _ in agent.stderr], daemon=True).start()
    for _ in range(600):
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=5) as r:
                if r.status == 200:
                    break
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    base = json.loads(FIXTURE.read_text())
    stop = threading.Event()

    def move_memory():
        rng = random.Random(1)
        while not stop.wait(3):
            data = json.loads(json.dumps(base))
            taken = rng.choice([0, 4_000_000_000, 9_800_000_000, 15_000_000_000])
            gpu = data["gpus"][0]
            gpu["memory_free_bytes"] -= taken
            gpu["memory_used_bytes"] += taken
            gpu["processes"] = [{"pid": 4121, "name": "python", "used_bytes": taken}] if taken else []
            tmp = snapshot.with_suffix(".tmp")
            tmp.write_text(json.dumps(data))
            os.replace(tmp, snapshot)

    statuses: Counter = Counter()
    latencies: list[float] = []
    lock = threading.Lock()

    def client(seed: int):
        rng = random.Random(seed)
        while not stop.is_set():
            route = rng.choice(ROUTES)
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(url + route, timeout=30) as r:
                    r.read()
                    code = r.status
            except urllib.error.HTTPError as exc:
                exc.read()
                code = exc.code
            except (urllib.error.URLError, OSError):
                code = "error"
            with lock:
                statuses[code] += 1
                latencies.append(time.perf_counter() - started)

    figures = {"start": process_figures(agent.pid)}
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(args.clients)]
    threading.Thread(target=move_memory, daemon=True).start()
    for t in threads:
        t.start()
    time.sleep(duration / 2)
    figures["middle"] = process_figures(agent.pid)
    time.sleep(duration / 2)
    stop.set()
    for t in threads:
        t.join(30)
    figures["end"] = process_figures(agent.pid)
    with urllib.request.urlopen(url + "/healthz", timeout=10) as r:
        health = json.loads(r.read())
    agent.terminate()
    agent.wait(30)
    shutil.rmtree(work, ignore_errors=True)
    ordered = sorted(latencies)
    result = {
        "seconds": duration,
        "clients": args.clients,
        "requests": len(latencies),
        "statuses": {str(k): v for k, v in sorted(statuses.items(), key=str)},
        "p50_ms": round(statistics.median(ordered) * 1000, 2) if ordered else None,
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 2) if ordered else None,
        "scans": health["scans_total"],
        "scan_failures": health["scan_failures_total"],
        "process": figures,
        "exit_code": agent.returncode,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"soak: {duration:.0f} s, {args.clients} clients, {result['requests']} requests, statuses "
            f"{result['statuses']}, p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, {result['scans']} scans "
            f"({result['scan_failures']} failed)"
        )
        for when, f in figures.items():
            print(f"  {when:6}  RSS {f['rss_bytes'] / 1e6:6.1f} MB  fds {f['fds']:3}  threads {f['threads']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
