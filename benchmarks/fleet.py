"""`fitagent fleet` at scale: N simulated hosts in a real Prometheus, and the three questions timed.

    python -m benchmarks.fleet --hosts 10000 [--json] [--repeat 3] [--scrape-interval S]
    python -m benchmarks.fleet --hosts 100,1000,10000

The hosts are a mix of the fixture snapshots (tests/fixtures/snapshots: 40 % RTX 4090, 35 % two
RTX 3090, 25 % CPU-only) at varied free memory. Their series are what agents export: for each
fixture and each of three free-memory levels the agent's own scan (``agent.state.precompute``,
default config: 5 use cases × 4 contexts) runs once; each host then gets its own snapshot (its
level's free memory jittered per GPU, its own RAM available, hostname and GPU UUIDs) and state,
and the agent's collector (``agent.metrics.FitagentCollector``) makes its /metrics, rendered by
client_python's exposition code as the agent's /metrics is. Families that depend only on the
level's precomputed recommendations (model, best-model and fit series) are the same for every
host of a level and are rendered once per level; the hardware, scan, build and reference-model
series are made per host. 1 host in 200 answers 503 (down: ``up == 0``), 1 in 500 has no good
scan yet, 1 in 100 runs an older fitagent version (the fleet warns).

How the series get into Prometheus: one small HTTP server (a separate process) serves every
host's /metrics at /hosts/NNNNN/metrics, and Prometheus scrapes them as N targets listed in a
file_sd file (``__metrics_path__`` and ``instance`` set per target), so ``up``, ``job`` and
``instance`` are Prometheus' own and samples stay current while the benchmark runs. (Backfilling
with ``promtool tsdb create-blocks-from openmetrics`` needs a sample time inside the 5-minute
lookback of every query, and remote write a protobuf writer: scraping is the simplest way to have
current samples, and it is what a fleet's Prometheus does.) The scrape interval is 15 s up to
1,000 hosts and 60 s above, so the server and Prometheus' ingestion leave the benchmark's two
cores mostly to the commands; config/fitagent-rules.yml and config/alerts.yml are loaded.

Once every target is scraped and the recording rules have run, each command runs --repeat times
as its own process: ``fitagent fleet --prometheus URL hosts|place|best --json``. Reported per
command (medians): end-to-end seconds (the process, start-up and catalog load included),
the seconds spent waiting for Prometheus' HTTP answers, fitagent's own seconds (the process's
time in Python less those waits), the PromQL queries asked, and Prometheus' own evaluation time
(each query asked again with ``stats=all``). ``place`` asks for Llama-3.1-70B-Instruct Q4_K_M at
8k (fits the two-3090 hosts with room: the pre-filter's case); ``place_everywhere`` for
Llama-3.1-8B Q4_K_M (fits nearly every host: the estimator's worst case).

Bar: ``place`` under 1 s of fitagent time at 10,000 hosts.
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import io
import json
import multiprocessing as mp
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOTS = ROOT / "tests" / "fixtures" / "snapshots"
MIX = (("rtx4090", 0.40), ("2x3090", 0.35), ("cpu-only", 0.25))
LEVELS = (1.0, 0.6, 0.25)  # share of the fixture's free memory a host has (then jittered)
OLD_VERSION = "0.0.9"
# Families that depend on the level's precomputed recommendations only (rendered once per level).
SHARED = (
    "fitagent_runnable_candidates",
    "fitagent_fitting_models",
    "fitagent_best_decode_tokens_per_second",
    "fitagent_largest_fitting_model_parameters",
    "fitagent_best_model",
    "fitagent_best_model_decode_tokens_per_second",
    "fitagent_best_model_quality",
    "fitagent_best_model_gpu_layers",
    "fitagent_best_model_fit_headroom_bytes",
    "fitagent_model_fit_headroom_bytes",
    "fitagent_model_decode_tokens_per_second",
    "fitagent_model_gpu_layers",
    "fitagent_model_fits",
)
COMMANDS = {
    "hosts": ["hosts"],
    "place": ["place", "--model", "Llama-3.1-70B-Instruct", "--quant", "Q4_K_M", "--context", "8192"],
    "best": ["best"],
    "place_everywhere": ["place", "--model", "llama3.1-8b", "--quant", "Q4_K_M", "--context", "8192"],
}
DOWN = b"DOWN"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def is_down(i: int) -> bool:
    return i % 200 == 99


def is_not_ready(i: int) -> bool:
    return i % 500 == 251


def is_old(i: int) -> bool:
    return i % 100 == 37


# ---------------------------------------------------------------- the simulated hosts


def level_snapshot(name: str, level: float) -> dict:
    data = json.loads((SNAPSHOTS / f"{name}.json").read_text())
    for gpu in data["gpus"]:
        gpu["memory_free_bytes"] = int(gpu["memory_free_bytes"] * level)
        gpu["memory_used_bytes"] = gpu["memory_total_bytes"] - gpu["memory_free_bytes"]
    if not data["gpus"]:
        data["host"]["memory_available_bytes"] = int(data["host"]["memory_available_bytes"] * level)
    return data


def _precompute(key: tuple[str, float]):
    from fitagent.agent.catalog_cache import load_catalog
    from fitagent.agent.config import Config
    from fitagent.agent.state import precompute
    from fitagent.estimator.hardware import snapshot_from_dict

    name, level = key
    started = time.monotonic()
    computed = precompute(snapshot_from_dict(level_snapshot(name, level)), load_catalog(), Config())
    return key, computed, time.monotonic() - started


class _Catalog:
    """The catalog with model lookups remembered (the agent's collector looks up ~100 models per
    state; 10,000 states would spend minutes scanning the catalog)."""

    def __init__(self, catalog):
        self._catalog = catalog
        self._models: dict = {}

    def model(self, name):
        if name not in self._models:
            self._models[name] = self._catalog.model(name)
        return self._models[name]

    def __getattr__(self, name):
        return getattr(self._catalog, name)


class _Agent:
    def __init__(self, config, catalog):
        self.config, self.catalog, self.state = config, catalog, None


def _render(families) -> bytes:
    from prometheus_client.exposition import generate_latest
    from prometheus_client.registry import CollectorRegistry

    class Fixed:
        def collect(self):
            return families

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fixed())
    return generate_latest(registry)


def build_bodies(n: int, seed: int = 1) -> tuple[dict[str, bytes], dict]:
    """path -> /metrics body for n hosts (DOWN for the down ones), and facts about them."""
    from prometheus_client import PlatformCollector, ProcessCollector
    from prometheus_client.exposition import generate_latest
    from prometheus_client.registry import CollectorRegistry

    from fitagent.agent.catalog_cache import load_catalog
    from fitagent.agent.config import Config
    from fitagent.agent.metrics import FitagentCollector
    from fitagent.agent.state import AgentState, runtime_devices
    from fitagent.estimator.budget import budget_from_snapshot
    from fitagent.estimator.hardware import snapshot_from_dict

    started = time.monotonic()
    keys = [(name, level) for name, _ in MIX for level in LEVELS]
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: a forked worker can inherit a lock held by another thread and hang at exit
    with ProcessPoolExecutor(min(2, os.cpu_count() or 1), mp_context=mp.get_context("spawn")) as pool:
        done = list(pool.map(_precompute, keys))
    variants = {key: computed for key, computed, _ in done}
    scan_s = statistics.mean(d for _, _, d in done)
    precompute_s = time.monotonic() - started

    config = Config()
    catalog = _Catalog(load_catalog())
    process = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=process)
    PlatformCollector(registry=process)
    process_text = generate_latest(process)
    collectors = {}
    for version in (None, OLD_VERSION):
        collector = FitagentCollector(_Agent(config, catalog))
        if version:
            collector.version = version
        collectors[version] = collector
    shared_text: dict[tuple[str, float], bytes] = {}
    fixtures = {name: json.loads((SNAPSHOTS / f"{name}.json").read_text()) for name, _ in MIX}
    rng = random.Random(seed)
    bodies: dict[str, bytes] = {}
    now = time.time()
    for i in range(n):
        path = f"/hosts/{i:05d}/metrics"
        name = rng.choices([m for m, _ in MIX], [w for _, w in MIX])[0]
        level = rng.choice(LEVELS)
        if is_down(i):
            bodies[path] = DOWN
            continue
        data = json.loads(json.dumps(fixtures[name]))
        data["host"]["hostname"] = f"gpu-{i:05d}" if data["gpus"] else f"cpu-{i:05d}"
        for k, gpu in enumerate(data["gpus"]):
            gpu["uuid"] = f"GPU-{i:05d}-{k}"
            gpu["memory_free_bytes"] = int(gpu["memory_free_bytes"] * level * rng.uniform(0.9, 1.0))
            gpu["memory_used_bytes"] = gpu["memory_total_bytes"] - gpu["memory_free_bytes"]
        share = rng.uniform(0.9, 1.0) * (level if not data["gpus"] else rng.uniform(0.5, 1.0))
        data["host"]["memory_available_bytes"] = int(data["host"]["memory_available_bytes"] * share)
        snapshot = snapshot_from_dict(data)
        collector = collectors[OLD_VERSION if is_old(i) else None]
        if is_not_ready(i):
            state = AgentState(
                generation=1,
                snapshot=None,
                computed=None,
                scanned_at=None,
                scan_duration_s=None,
                rescan_interval_s=config.rescan_interval_s,
                error="NVML: Driver Not Loaded",
                error_at=now,
                consecutive_failures=1,
                scans_total=1,
                scan_failures_total=1,
            )
        else:
            budget = budget_from_snapshot(snapshot, catalog._catalog)
            computed = replace(variants[(name, level)], budget=budget, devices=runtime_devices(snapshot, budget))
            state = AgentState(
                generation=1,
                snapshot=snapshot,
                computed=computed,
                scanned_at=now - rng.uniform(0, 25),
                scan_duration_s=scan_s,
                rescan_interval_s=config.rescan_interval_s,
                scans_total=1,
            )
        collector.agent.state = state
        families = list(collector.collect())
        own = [f for f in families if f.name not in SHARED]
        body = _render(own)
        if state.ready:
            key = (name, level)
            if key not in shared_text:
                shared_text[key] = _render([f for f in families if f.name in SHARED])
            body += shared_text[key]
        bodies[path] = body + process_text
    return bodies, {
        "precompute_seconds": round(precompute_s, 1),
        "render_seconds": round(time.monotonic() - started - precompute_s, 1),
    }


# ---------------------------------------------------------------- the server and Prometheus


def serve(bodies: dict[str, bytes], port: int, ready) -> None:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_GET(self):
            body = bodies.get(self.path)
            if body is None or body is DOWN:
                self.send_response(404 if body is None else 503)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    class Server(http.server.ThreadingHTTPServer):
        request_queue_size = 1024
        daemon_threads = True

        def handle_error(self, request, client_address):
            pass  # a scrape Prometheus gave up on (its timeout): it says so itself, with up == 0

    server = Server(("127.0.0.1", port), Handler)
    ready.set()
    server.serve_forever()


def api(url: str, path: str, params: dict | None = None, timeout: float = 120) -> dict:
    query = urllib.parse.urlencode(params or {})
    data = query.encode() if len(query) > 4000 else None
    full = f"{url}{path}" + (f"?{query}" if query and data is None else "")
    with urllib.request.urlopen(urllib.request.Request(full, data=data), timeout=timeout) as response:
        return json.loads(response.read())["data"]


def scalar(url: str, promql: str) -> float:
    result = api(url, "/api/v1/query", {"query": promql})["result"]
    return float(result[0]["value"][1]) if result else 0.0


class Prometheus:
    def __init__(self, directory: Path, server_port: int, n: int, interval: int):
        self.directory = directory
        targets = [
            {
                "targets": [f"127.0.0.1:{server_port}"],
                "labels": {"__metrics_path__": f"/hosts/{i:05d}/metrics", "instance": f"{'host'}-{i:05d}:8765"},
            }
            for i in range(n)
        ]
        (directory / "targets.json").write_text(json.dumps(targets))
        config = {
            "global": {"scrape_interval": f"{interval}s", "evaluation_interval": f"{interval}s"},
            "rule_files": [str(ROOT / "config" / "alerts.yml"), str(ROOT / "config" / "fitagent-rules.yml")],
            "scrape_configs": [
                {
                    "job_name": "fitagent",
                    "scrape_timeout": f"{min(interval, 10)}s",
                    "file_sd_configs": [{"files": [str(directory / "targets.json")]}],
                }
            ],
        }
        (directory / "prometheus.yml").write_text(json.dumps(config))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(directory / "prometheus.log", "w")
        self.proc = subprocess.Popen(
            [
                shutil.which("prometheus"),
                f"--config.file={directory / 'prometheus.yml'}",
                f"--storage.tsdb.path={directory / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=directory,
        )

    def rss(self) -> tuple[int, int]:
        """(resident, peak resident) bytes."""
        fields = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            fields[key] = value.strip()
        return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def wait_scraped(prom: Prometheus, n: int, interval: int, say) -> float:
    down = sum(is_down(i) for i in range(n))
    ready = sum(not is_down(i) and not is_not_ready(i) for i in range(n))
    deadline = time.monotonic() + 6 * interval + 600
    started = time.monotonic()
    while True:
        try:
            got = (
                scalar(prom.url, 'count(up{job="fitagent"})'),
                scalar(prom.url, 'count(up{job="fitagent"} == 1)'),
                scalar(prom.url, "count(fitagent_build_info)"),
                scalar(prom.url, "count(fitagent:host_budget_bytes)"),
            )
        except (urllib.error.URLError, OSError, KeyError, ValueError):
            got = None
        if got == (n, n - down, n - down, ready):
            return time.monotonic() - started
        if prom.proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(
                f"Prometheus did not scrape all {n} hosts (targets, up, agents, recorded budgets: {got}; "
                f"expected {(n, n - down, n - down, ready)}); log: {prom.directory / 'prometheus.log'}"
            )
        say(f"  waiting for the first scrapes: {got}")
        time.sleep(min(10, interval / 3))


# ---------------------------------------------------------------- one command, measured in its own process


def measure(outfile: str, argv: list[str]) -> int:
    """Run `fitagent <argv>` here, timing each HTTP answer from Prometheus."""
    started = time.perf_counter()
    import fitagent.agent.fleet.fetch as fetch_module

    calls = []
    real = fetch_module.fetch

    def timed(url, timeout_s, limit, headers=None, data=None):
        t = time.perf_counter()
        body = real(url, timeout_s, limit, headers, data)
        calls.append(
            {
                "url": url,
                "data": data.decode() if data else None,
                "seconds": time.perf_counter() - t,
                "bytes": len(body),
            }
        )
        return body

    fetch_module.fetch = timed
    from fitagent.agent.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
    total = time.perf_counter() - started
    Path(outfile).write_text(
        json.dumps({"code": code, "seconds": total, "http": calls, "stdout": out.getvalue(), "stderr": err.getvalue()})
    )
    return 0


def prometheus_eval_seconds(url: str, call: dict) -> float | None:
    """Prometheus' own time for a query the command asked (asked again with stats=all)."""
    parts = urllib.parse.urlsplit(call["url"])
    if parts.path != "/api/v1/query":
        return None
    params = dict(urllib.parse.parse_qsl(call["data"] or parts.query))
    params["stats"] = "all"
    try:
        stats = api(url, "/api/v1/query", params).get("stats", {})
    except (urllib.error.URLError, OSError, KeyError, ValueError):
        return None
    timings = stats.get("timings", {})
    return timings.get("execTotalTime", timings.get("evalTotalTime"))


def fitagent_command() -> list[str]:
    script = Path(sys.executable).parent / "fitagent"
    return (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "import sys; from fitagent.agent.cli import main; sys.exit(main())"]
    )


def run_command(prom_url: str, name: str, repeat: int) -> dict:
    runs = []
    argv = ["fleet", "--prometheus", prom_url, "--timeout", "120", *COMMANDS[name], "--json"]
    for _ in range(repeat):
        started = time.perf_counter()  # end to end: the command as a user runs it
        proc = subprocess.run([*fitagent_command(), *argv], cwd=ROOT, capture_output=True, text=True, timeout=900)
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            raise SystemExit(f"{name}: exit {proc.returncode}: {proc.stderr[-2000:]}")
        with tempfile.NamedTemporaryFile(suffix=".json") as out:  # the same again, timing Prometheus' answers
            proc = subprocess.run(
                [sys.executable, "-m", "benchmarks.fleet", "--measure", out.name, "--", *argv],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=900,
            )
            if proc.returncode != 0:
                raise SystemExit(f"{name}: {proc.stderr[-2000:]}")
            got = json.loads(Path(out.name).read_text())
        if got["code"] not in (0, None):
            raise SystemExit(f"{name}: exit {got['code']}: {got['stderr'][-2000:]}")
        http_s = sum(c["seconds"] for c in got["http"])
        runs.append(
            {
                "wall": wall,
                "in_process": got["seconds"],
                "http": http_s,
                "calls": got["http"],
                "answer": json.loads(got["stdout"]),
                "stderr": got["stderr"],
            }
        )
    last = runs[-1]
    evals = [prometheus_eval_seconds(prom_url, c) for c in last["calls"]]
    answer = last["answer"]
    summary = {"warnings": len(answer.get("warnings", [])), "down": len(answer.get("down", []))}
    if name == "hosts":
        summary["hosts"] = len(answer["hosts"])
    elif name.startswith("place"):
        summary.update(
            fits=sum(r["fits"] for r in answer["placements"]),
            rows=len(answer["placements"]),
            **{k: answer["prefilter"][k] for k in ("estimated", "filtered_out")},
        )
    else:
        summary.update(rows=len(answer["hosts"]), from_agents=sum(r.get("source") == "agent" for r in answer["hosts"]))
    return {
        "seconds": statistics.median(r["wall"] for r in runs),
        "prometheus_seconds": statistics.median(r["http"] for r in runs),
        "fitagent_seconds": statistics.median(r["in_process"] - r["http"] for r in runs),
        "prometheus_eval_seconds": sum(e for e in evals if e is not None)
        if any(e is not None for e in evals)
        else None,
        "queries": sum(urllib.parse.urlsplit(c["url"]).path == "/api/v1/query" for c in last["calls"]),
        "http_requests": len(last["calls"]),
        "answer_bytes": sum(c["bytes"] for c in last["calls"]),
        "answer": summary,
    }


# ---------------------------------------------------------------- one fleet size


def bench(n: int, repeat: int, interval: int | None, say, keep: bool = False, hold: float = 0) -> dict:
    interval = interval or (15 if n <= 1000 else 60)
    say(f"{n:,} hosts: the agent's scan of {len(MIX) * len(LEVELS)} host variants, then each host's /metrics")
    bodies, built = build_bodies(n)
    sizes = [len(b) for b in bodies.values() if b is not DOWN]
    say(
        f"  built in {built['precompute_seconds']:.0f} s (the scans) + {built['render_seconds']:.0f} s (the bodies); "
        f"{statistics.mean(sizes) / 1e3:.0f} KB per /metrics"
    )
    port = free_port()
    ctx = mp.get_context("fork")
    ready = ctx.Event()
    server = ctx.Process(target=serve, args=(bodies, port, ready), daemon=True)
    server.start()
    ready.wait(30)
    del bodies
    directory = Path(tempfile.mkdtemp(prefix="fitagent-fleet-bench-"))
    prom = Prometheus(directory, port, n, interval)
    try:
        say(f"  Prometheus scraping every {interval} s: waiting for every target and the recording rules")
        waited = wait_scraped(prom, n, interval, say)
        series = scalar(prom.url, 'avg(scrape_samples_scraped{job="fitagent"} > 0)')
        head = api(prom.url, "/api/v1/status/tsdb").get("headStats", {}).get("numSeries")
        if hold:
            say(f"  holding for {hold:.0f} s: Prometheus at {prom.url}")
            time.sleep(hold)
        results = {}
        for name in COMMANDS:
            say(f"  fitagent fleet {' '.join(COMMANDS[name])}")
            results[name] = run_command(prom.url, name, repeat)
        rss, peak = prom.rss()
    finally:
        prom.stop()
        server.terminate()
        server.join(10)
        if not keep:
            shutil.rmtree(directory, ignore_errors=True)
    return {
        "hosts": n,
        "series_per_host": round(series, 1),
        "seconds": {k: round(v["seconds"], 3) for k, v in results.items()},
        "prometheus_seconds": {k: round(v["prometheus_seconds"], 3) for k, v in results.items()},
        "fitagent_seconds": {k: round(v["fitagent_seconds"], 3) for k, v in results.items()},
        "prometheus_eval_seconds": {
            k: None if v["prometheus_eval_seconds"] is None else round(v["prometheus_eval_seconds"], 3)
            for k, v in results.items()
        },
        "queries": {k: v["queries"] for k, v in results.items()},
        "answer_bytes": {k: v["answer_bytes"] for k, v in results.items()},
        "answers": {k: v["answer"] for k, v in results.items()},
        "prometheus_rss_bytes": rss,
        "prometheus_peak_rss_bytes": peak,
        "prometheus_head_series": head,
        "scrape_interval_s": interval,
        "first_scrape_seconds": round(waited, 1),
        "repeat": repeat,
        **built,
    }


def table(results: list[dict]) -> str:
    lines = [
        "| hosts | series/host | Prometheus RSS | command | end to end | fitagent | Prometheus (HTTP) | "
        "Prometheus eval | queries | answer |",
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        for i, name in enumerate(COMMANDS):
            a = r["answers"][name]
            what = ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in a.items())
            ev = r["prometheus_eval_seconds"][name]
            head = (
                (f"{r['hosts']:,}", f"{r['series_per_host']:.0f}", f"{r['prometheus_rss_bytes'] / 1e9:.2f} GB")
                if i == 0
                else ("", "", "")
            )
            lines.append(
                f"| {' | '.join(head)} | {name} | {r['seconds'][name]:.2f} s | {r['fitagent_seconds'][name]:.2f} s | "
                f"{r['prometheus_seconds'][name]:.2f} s | {'—' if ev is None else f'{ev:.3f} s'} | "
                f"{r['queries'][name]} | {what} |"
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--measure"]:
        return measure(argv[1], argv[3:] if argv[2:3] == ["--"] else argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", default="1000", help="hosts in the fleet; several comma-separated (100,1000,10000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each command (medians are reported)")
    parser.add_argument(
        "--scrape-interval", type=int, default=None, help="seconds (default 15, or 60 above 1,000 hosts)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per fleet size")
    parser.add_argument("--keep", action="store_true", help="keep Prometheus' directory (its log and data)")
    parser.add_argument(
        "--hold",
        type=float,
        default=0,
        metavar="S",
        help="keep the fleet up S seconds before the commands (to query Prometheus by hand)",
    )
    args = parser.parse_args(argv)
    if shutil.which("prometheus") is None:
        raise SystemExit("prometheus not on PATH (Debian: apt-get install prometheus)")
    sizes = [int(x.replace("_", "")) for x in args.hosts.split(",") if x.strip()]
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop Prometheus and the server on the way out

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    results = [bench(n, args.repeat, args.scrape_interval, say, args.keep, args.hold) for n in sizes]
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 else results, indent=2))
    else:
        print(table(results))
        print(
            "\nend to end: the `fitagent fleet ... --json` process, start-up and catalog load included; fitagent: its "
            "time less the waits for Prometheus' answers; Prometheus eval: its own execution time for the same "
            "queries (stats=all). place: Llama-3.1-70B-Instruct Q4_K_M 8k; place_everywhere: Llama-3.1-8B Q4_K_M 8k."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
