"""The agent under load, beside its closest peer: latency, throughput, memory, idle CPU.

    python -m benchmarks.serve [--requests 2000] [--clients 8] [--idle-seconds 90] [--llmfit PATH]

Starts `fitagent serve --hardware tests/fixtures/snapshots/rtx4090.json` (the default
config: 30 s rescans, 5 use cases x 4 contexts precomputed) and, when its binary is found,
`llmfit serve` (pip package `llmfit`; on a glibc older than 2.39 install its static musl
wheel: `pip install --target .bench/llmfit --platform musllinux_1_2_x86_64
--only-binary=:all: --no-deps llmfit`). Both get the same load: `--clients` processes, each
on one keep-alive connection, `--requests` in all (`--peer-requests` for the peer), half to the "recommendations" path and
half to the "pick" path (fitagent: /v1/recommendations and /v1/pick; llmfit:
/api/v1/models/top?limit=10 and ?limit=1). Then fitagent sits idle for `--idle-seconds`
with its 30 s rescans and its CPU time over that window is reported (a scan here re-reads
the snapshot file; with a real probe each scan adds the probe's own cost).

A third column, "waitress floor", serves the very bytes fitagent answered with from a bare WSGI
app under the same waitress settings and the same load: the cost of the HTTP server alone, so a
reader can tell what of fitagent's latency is its own.

Targets: p50 <= 2 ms, >= 20 x the peer's requests/s, RSS <= 60 MB, idle CPU < 1 % of a core.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOT = ROOT / "tests" / "fixtures" / "snapshots" / "rtx4090.json"
MB = 1e6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(port: int, path: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"server on port {port} did not answer {path} in {timeout:.0f} s")


def _exchange(sock: socket.socket, request: bytes) -> int:
    """Send one GET and read its whole response; returns the status. A raw-socket client
    costs a few µs per request, so on a small machine the clients don't starve the server."""
    sock.sendall(request)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in lines[1:] if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += sock.recv(65536)
    return int(lines[0].split()[1])


def _client(port: int, paths: list[str], barrier, results) -> None:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    requests = [f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode() for path in paths]
    _exchange(sock, requests[0])  # connect and warm before the clock starts
    latencies = []
    barrier.wait()
    started = time.monotonic()
    for path, request in zip(paths, requests):
        t0 = time.perf_counter()
        status = _exchange(sock, request)
        latencies.append(time.perf_counter() - t0)
        if status != 200:
            raise SystemExit(f"{path}: HTTP {status}")
    results.put((started, time.monotonic(), latencies))


def load(port: int, paths: tuple[str, str], requests: int, clients: int) -> dict:
    per_client = requests // clients
    ctx = mp.get_context("fork")
    barrier, results = ctx.Barrier(clients), ctx.Queue()
    workers = [
        ctx.Process(target=_client, args=(port, [paths[(i + c) % 2] for i in range(per_client)], barrier, results))
        for c in range(clients)
    ]
    for w in workers:
        w.start()
    done = [results.get() for _ in workers]
    for w in workers:
        w.join()
    latencies = sorted(latency for _, _, ls in done for latency in ls)
    wall = max(end for _, end, _ in done) - min(start for start, _, _ in done)
    return {
        "requests": len(latencies),
        "p50_ms": statistics.median(latencies) * 1e3,
        "p99_ms": latencies[int(0.99 * (len(latencies) - 1))] * 1e3,
        "rps": len(latencies) / wall,
    }


def start_fitagent(fitagent: str, workdir: Path, hardware: str | None) -> tuple[subprocess.Popen, int]:
    port = free_port()
    config = workdir / "fitagent.yaml"
    config.write_text(f"port: {port}\nrescan_interval_s: 30\n")
    cmd = [fitagent, "serve", "--config", str(config)] + (["--hardware", hardware] if hardware else [])
    env = {k: v for k, v in os.environ.items() if not k.startswith("FITAGENT_")}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(workdir / "fitagent.log", "w"), env=env)
    wait_http(port, "/healthz")
    return proc, port


FLOOR_APP = """
import sys
from pathlib import Path
from waitress import serve
from fitagent.agent.serving import _whole_response_writes

bodies = {"/" + p.name.replace("_", "/"): p.read_bytes() for p in Path(sys.argv[1]).glob("v1_*")}

def app(environ, start_response):
    body = bodies[environ["PATH_INFO"]]
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]

serve(app, host="127.0.0.1", port=int(sys.argv[2]), threads=4, ident="floor", _quiet=True, **_whole_response_writes())
"""


def start_floor(python: str, bodies: Path) -> tuple[subprocess.Popen, int]:
    """A bare WSGI app on waitress, with fitagent's waitress settings, answering the same bytes."""
    port = free_port()
    proc = subprocess.Popen(
        [python, "-c", FLOOR_APP, str(bodies), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=open(bodies / "floor.log", "w"),
    )
    wait_http(port, "/v1/pick")
    return proc, port


def fitagent_python(fitagent: str) -> str:
    """The interpreter of the fitagent install under test (its console script's #! line)."""
    with open(fitagent, "rb") as fh:
        first = fh.readline().decode().strip()
    return first[2:] if first.startswith("#!") and "python" in first else sys.executable


def start_llmfit(llmfit: str, workdir: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen(
        [llmfit, "serve", "--port", str(port)], stdout=open(workdir / "llmfit.log", "w"), stderr=subprocess.STDOUT
    )
    wait_http(port, "/health")
    return proc, port


def find_llmfit(given: str | None) -> str | None:
    for candidate in (
        given,
        os.environ.get("LLMFIT"),
        shutil.which("llmfit"),
        str(ROOT / ".bench" / "llmfit" / "bin" / "llmfit"),
    ):
        if candidate and Path(candidate).is_file():
            ok = subprocess.run([candidate, "--version"], capture_output=True, text=True)
            if ok.returncode == 0:
                return candidate
            print(
                f"note: {candidate} does not run here: {ok.stderr.strip().splitlines()[-1] if ok.stderr else ok.returncode}"
            )
    return None


def cpu_seconds(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system + t.children_user + t.children_system


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument(
        "--peer-requests",
        type=int,
        default=240,
        help="requests to the peer (default 240: at ~3 requests/s, 2000 would take 11 minutes)",
    )
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--idle-seconds", type=float, default=90.0)
    parser.add_argument("--fitagent", default=shutil.which("fitagent") or str(Path(sys.executable).parent / "fitagent"))
    parser.add_argument("--llmfit", help="llmfit binary (default: $LLMFIT, PATH, .bench/llmfit/bin/llmfit)")
    parser.add_argument(
        "--probe", action="store_true", help="let fitagent probe this machine instead of replaying the 4090 snapshot"
    )
    args = parser.parse_args()

    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        proc, port = start_fitagent(args.fitagent, workdir, None if args.probe else str(SNAPSHOT))
        try:
            server = psutil.Process(proc.pid)
            paths = ("/v1/recommendations", "/v1/pick")
            load(port, paths, 200, args.clients)  # warm-up
            rows["fitagent"] = load(port, paths, args.requests, args.clients)
            rows["fitagent"]["rss_mb"] = server.memory_info().rss / MB
            time.sleep(2)
            before, t0 = cpu_seconds(server), time.monotonic()
            time.sleep(args.idle_seconds)
            used, window = cpu_seconds(server) - before, time.monotonic() - t0
            rows["fitagent"]["idle_cpu_pct"] = 100 * used / window
            rows["fitagent"]["rss_after_idle_mb"] = server.memory_info().rss / MB
            health = json.loads(_get(port, "/healthz"))
            for path in paths:  # the same bytes for the floor server
                (workdir / path.strip("/").replace("/", "_")).write_bytes(_get(port, path))
        finally:
            stop(proc)
        proc, port = start_floor(fitagent_python(args.fitagent), workdir)
        try:
            load(port, paths, 200, args.clients)
            rows["floor"] = load(port, paths, args.requests, args.clients)
            rows["floor"]["rss_mb"] = psutil.Process(proc.pid).memory_info().rss / MB
        finally:
            stop(proc)
        llmfit = find_llmfit(args.llmfit)
        if llmfit:
            proc, port = start_llmfit(llmfit, workdir)
            try:
                paths = ("/api/v1/models/top?limit=10", "/api/v1/models/top?limit=1")
                load(port, paths, 2 * args.clients, args.clients)
                rows["llmfit"] = load(port, paths, args.peer_requests, args.clients)
                rows["llmfit"]["rss_mb"] = psutil.Process(proc.pid).memory_info().rss / MB
                version = subprocess.run([llmfit, "--version"], capture_output=True, text=True).stdout.strip()
            finally:
                stop(proc)
        else:
            print("note: llmfit not found; see this file's docstring to install it. Showing fitagent alone.")
            version = None

    print(
        f"\n{args.requests} requests to fitagent ({args.peer_requests} to the peer), {args.clients} concurrent "
        f"keep-alive clients, on {os.cpu_count()} CPUs; "
        f"fitagent: {'probe' if args.probe else SNAPSHOT.name}, {health['scans_total']} scans, "
        f"last took {health['scan_duration_s']:.3f} s" + (f"; peer: {version}" if version else "")
    )
    print(f"idle CPU: fitagent's CPU time over {args.idle_seconds:.0f} s idle with 30 s rescans\n")
    f, p, w = rows["fitagent"], rows.get("llmfit"), rows["floor"]
    lines = [
        (
            "p50 latency (ms)",
            f"{f['p50_ms']:.2f}",
            p and f"{p['p50_ms']:.2f}",
            f"{w['p50_ms']:.2f}",
            "<= 2",
            f["p50_ms"] <= 2,
        ),
        ("p99 latency (ms)", f"{f['p99_ms']:.2f}", p and f"{p['p99_ms']:.2f}", f"{w['p99_ms']:.2f}", "", None),
        (
            "requests/s",
            f"{f['rps']:.0f}",
            p and f"{p['rps']:.1f}",
            f"{w['rps']:.0f}",
            ">= 20 x peer" + (f" ({f['rps'] / p['rps']:.0f} x)" if p else ""),
            (f["rps"] >= 20 * p["rps"]) if p else None,
        ),
        (
            "server RSS after load (MB)",
            f"{f['rss_mb']:.1f}",
            p and f"{p['rss_mb']:.1f}",
            f"{w['rss_mb']:.1f}",
            "<= 60",
            f["rss_mb"] <= 60,
        ),
        (
            "server RSS after idle (MB)",
            f"{f['rss_after_idle_mb']:.1f}",
            None,
            None,
            "<= 60",
            f["rss_after_idle_mb"] <= 60,
        ),
        ("idle CPU (% of a core)", f"{f['idle_cpu_pct']:.2f}", None, None, "< 1", f["idle_cpu_pct"] < 1),
    ]
    print(f"{'':28} {'fitagent':>10} {'llmfit':>10} {'waitress floor':>15}   target")
    for name, ours, theirs, floor, target, ok in lines:
        mark = "" if ok is None else ("  ok" if ok else "  MISSED")
        print(f"{name:28} {ours:>10} {theirs or '—':>10} {floor or '—':>15}   {target}{mark}")


def _get(port: int, path: str) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", path)
    return conn.getresponse().read()


if __name__ == "__main__":
    main()
