"""`fitagent fleet`: the answers from hosts' series, and asking agents directly (real agents,
real sockets, a dead port and a host that never answers)."""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import replace

import pytest
from agent_server import FAST_CONFIG, AgentProcess, copy_fixture
from conftest import SNAPSHOTS
from test_metrics import samples_of

from fitagent.agent.config import Config
from fitagent.agent.fleet import answers
from fitagent.agent.fleet.facts import facts_from_samples
from fitagent.agent.fleet.targets import parse_targets, read_targets_file
from fitagent.agent.hardware import load_snapshot_file
from fitagent.agent.server import EXTENSION, create_app
from fitagent.catalog.errors import UsageError
from fitagent.estimator.budget import budget_from_snapshot
from fitagent.estimator.recommend import recommend
from fitagent.estimator.results import Options

HOSTS = ("rtx4090", "2x3090", "cpu-only")
HOSTNAMES = {"rtx4090": "ws-4090", "2x3090": "ws-3090x2", "cpu-only": "cpu-box"}
SMALL = Config(contexts=(8192,), use_cases=("general",), token="t")
L70 = "meta-llama/Llama-3.1-70B-Instruct"
L8 = "meta-llama/Llama-3.1-8B-Instruct"


@pytest.fixture(scope="module")
def fleet():
    """The three fixture hosts as the fleet sees them, from each agent's /metrics (in-process)."""
    out = {}
    for i, name in enumerate(HOSTS):
        snapshot = load_snapshot_file(SNAPSHOTS / f"{name}.json")
        app = create_app(SMALL, prober=lambda s=snapshot: s, start=False)
        app.extensions[EXTENSION].scan_once()
        text = app.test_client().get("/metrics").data.decode()
        out[name] = facts_from_samples(f"10.0.0.{i + 1}:8765", samples_of(text), observed_at=0.0)
    return out


def test_host_facts(fleet, catalog):
    from fitagent.agent.fleet.facts import host_budget

    for name, facts in fleet.items():
        assert facts.live and facts.host == HOSTNAMES[name] and facts.version
    assert [g.name for g in fleet["2x3090"].gpus] == ["NVIDIA GeForce RTX 3090"] * 2
    assert host_budget(fleet["cpu-only"], catalog).devices == ()


def test_a_70b_fits_only_on_the_two_3090s(fleet, catalog):
    answer = answers.place_answer(list(fleet.values()), catalog, "Llama-3.1-70B-Instruct", "Q4_K_M", 4096)
    assert answer["fits_anywhere"] and answer["model"] == L70
    first, *rest = answer["placements"]
    assert (first["host"], first["fits"], first["placement"], first["gpu_layers"]) == ("ws-3090x2", True, "gpu", 80)
    assert [d["layers"] for d in first["devices"]] == [40, 40]
    assert not any(r["fits"] for r in rest)
    assert "cpu-box" not in {r["host"] for r in rest}  # its RAM is too slow for 70B at 5 tokens/s: not estimated
    everything = answers.place_answer(
        list(fleet.values()), catalog, "Llama-3.1-70B-Instruct", "Q4_K_M", 4096, prefilter=False
    )
    cpu = next(r for r in everything["placements"] if r["host"] == "cpu-box")
    assert cpu["placement"] == "cpu" and not cpu["fits"] and "below the usable 5 tokens/s" in cpu["note"]
    assert answer["summary"].startswith("fits on 1 host; best: ws-3090x2 (10.0.0.2:8765) on GPUs")
    assert answer["down"] == []


def test_an_8b_fits_everywhere_the_4090_first(fleet, catalog):
    answer = answers.place_answer(list(fleet.values()), catalog, "llama3.1-8b", "Q4_K_M", 4096)
    rows = [(r["host"], r["fits"], r["placement"]) for r in answer["placements"]]
    assert rows == [("ws-4090", True, "gpu"), ("ws-3090x2", True, "gpu"), ("cpu-box", True, "cpu")]
    speeds = [r["decode_tokens_per_s"] for r in answer["placements"]]
    assert speeds == sorted(speeds, reverse=True)


def test_same_numbers_as_the_estimator_on_the_snapshot(fleet, catalog):
    from fitagent.estimator.estimate import estimate

    answer = answers.place_answer(list(fleet.values()), catalog, L70, "Q4_K_M", 4096, prefilter=False)
    by_host = {r["host"]: r for r in answer["placements"]}
    for name in HOSTS:
        budget = budget_from_snapshot(load_snapshot_file(SNAPSHOTS / f"{name}.json"), catalog)
        e = estimate(catalog.model(L70), catalog.quant("Q4_K_M"), budget, catalog, Options(context=4096))
        row = by_host[HOSTNAMES[name]]
        assert (row["gpu_layers"], row["headroom_bytes"], row["total_bytes"], row["decode_tokens_per_s"]) == (
            e.gpu_layers,
            e.headroom_bytes,
            e.total_bytes,
            round(e.decode_tokens_per_s, 2),
        )


def test_the_prefilter_skips_hosts_too_small_to_hold_the_model(fleet, catalog):
    answer = answers.place_answer(list(fleet.values()), catalog, L70, "Q4_K_M", 4096)
    # a 24 GB 4090 cannot hold 40 GB; the CPU box's 205 GB/s RAM cannot decode 40 GB at 5 tokens/s
    assert {r["host"] for r in answer["placements"]} == {"ws-3090x2"}
    assert answer["prefilter"]["estimated"] == 1 and answer["prefilter"]["filtered_out"] == 2
    assert 38e9 < answer["prefilter"]["min_bytes"] < answer["placements"][0]["total_bytes"]
    assert 204.8e9 <= answer["prefilter"]["cpu_min_bandwidth_bytes_per_s"] < 1e12
    assert any(
        n.startswith("2 live hosts not estimated: they cannot run it at a usable speed") for n in answer["notes"]
    )
    everything = answers.place_answer(list(fleet.values()), catalog, L70, "Q4_K_M", 4096, prefilter=False)
    cpu = next(r for r in everything["placements"] if r["host"] == "cpu-box")
    assert cpu["total_bytes"] == answer["prefilter"]["min_bytes"]  # on the CPU the bound is exact
    fitting = [r for r in everything["placements"] if r["fits"]]
    assert [r for r in answer["placements"] if r["fits"]] == fitting  # the same places, fewer estimates


def test_nowhere_fits_names_the_best_partial_offload(fleet, catalog):
    from fitagent.agent.fleet.facts import down

    hosts = [fleet["rtx4090"], fleet["cpu-only"], down("10.0.0.2:8765", "connection refused")]
    answer = answers.place_answer(hosts, catalog, L70, "Q4_K_M", 4096)
    assert not answer["fits_anywhere"]
    offload = answer["best_partial_offload"]
    assert (offload["host"], offload["placement"], offload["gpu_layers"], offload["total_layers"]) == (
        "ws-4090",
        "partial_offload",
        45,
        80,
    )
    assert answer["summary"].startswith(
        f"nowhere fits; best partial offload: ws-4090 (10.0.0.1:8765) with 45 of 80 layers on GPUs, "
        f"{offload['decode_tokens_per_s']:.1f} tokens/s"
    )
    assert "CPU only: cpu-box (10.0.0.3:8765)" in answer["summary"]
    assert answer["down"] == [{"target": "10.0.0.2:8765", "host": None, "error": "connection refused"}]


def test_a_model_too_big_for_any_host(fleet, catalog):
    snapshot = fleet["rtx4090"].snapshot
    small = replace(
        fleet["rtx4090"], snapshot=replace(snapshot, host=replace(snapshot.host, memory_available_bytes=2_000_000_000))
    )
    answer = answers.place_answer([small], catalog, "meta-llama/Llama-3.1-405B-Instruct", "Q4_K_M", 4096)
    assert answer["placements"] == [] and answer["cannot_run"][0]["host"] == "ws-4090"
    assert answer["summary"] == "nowhere fits, and no live host can run it at all"


def test_best_is_each_hosts_top_recommendation(fleet, catalog):
    answer = answers.best_answer(list(fleet.values()), catalog, "code", 8192)
    got = {r["host"]: (r["model"], r["quant"]) for r in answer["hosts"]}
    for name in HOSTS:
        budget = budget_from_snapshot(load_snapshot_file(SNAPSHOTS / f"{name}.json"), catalog)
        top = recommend(catalog, budget, Options(context=8192, use_case="code")).ranked[0]
        assert got[HOSTNAMES[name]] == (top.model, top.quant)


def test_hosts_answer(fleet, catalog):
    from fitagent.agent.fleet.facts import down

    answer = answers.hosts_answer([*fleet.values(), down("10.0.0.9:8765", "timed out", host="old-box")], catalog)
    rows = {r["host"]: r for r in answer["hosts"]}
    assert rows["ws-3090x2"]["status"] == "up" and rows["ws-3090x2"]["gpu_memory_free_bytes"] == 50_200_000_000
    assert rows["cpu-box"]["host_memory_available_bytes"] == 257_698_037_760
    assert rows["old-box"]["status"] == "down" and answer["hosts"][-1]["host"] == "old-box"
    assert answer["down"] == [{"target": "10.0.0.9:8765", "host": "old-box", "error": "timed out"}]


# ---------------------------------------------------------------- targets


def test_targets_parse_and_bad_ones_are_usage_errors(tmp_path):
    assert [t.url for t in parse_targets("a:1, b.example:8765,http://c:9/,https://d:443/prefix")] == [
        "http://a:1/metrics",
        "http://b.example:8765/metrics",
        "http://c:9/metrics",
        "https://d:443/prefix/metrics",
    ]
    for bad in ("", "nohost", "a:0", "a:70000", "a:port", "ftp://x:1"):
        with pytest.raises(UsageError):
            parse_targets(bad)
    example = read_targets_file(str(SNAPSHOTS.parents[2] / "config" / "fitagent-targets.json"))
    assert [t.name for t in example] == [
        "gpu-01.example.internal:8765",
        "gpu-02.example.internal:8765",
        "cpu-01.example.internal:8765",
    ]
    sd = tmp_path / "sd.yml"
    sd.write_text("- targets: ['x:1']\n  labels: {__scheme__: https, __metrics_path__: /m}\n")
    assert [t.url for t in read_targets_file(str(sd))] == ["https://x:1/m"]
    sd.write_text('{"targets": ["x:1"]}')
    with pytest.raises(UsageError, match="file_sd list"):
        read_targets_file(str(sd))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SilentServer:
    """Accepts connections and never answers: a wedged host."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                continue

    def close(self):
        self._stop.set()
        for c in self.held:
            c.close()
        self.sock.close()


@pytest.fixture(scope="module")
def agents(tmp_path_factory):
    started = {}
    try:
        for name in HOSTS:
            directory = tmp_path_factory.mktemp(name)
            started[name] = AgentProcess(directory, copy_fixture(name, directory), FAST_CONFIG)
        for agent in started.values():
            agent.wait_ready()
        yield {name: agent.url.removeprefix("http://") for name, agent in started.items()}
    finally:
        for agent in started.values():
            agent.stop()


def test_direct_targets_answer_and_report_down_hosts(agents, cli):
    silent = SilentServer()
    dead = f"127.0.0.1:{free_port()}"
    wedged = f"127.0.0.1:{silent.port}"
    try:
        targets = ",".join([*agents.values(), dead, wedged])
        result = cli(
            "fleet", "--targets", targets, "--timeout", "1", "place", "--model", L70, "--context", "4k", "--json"
        )
        assert result.returncode == 0, result.stderr
        answer = json.loads(result.stdout)
    finally:
        silent.close()
    assert [(r["target"], r["fits"]) for r in answer["placements"] if r["fits"]] == [(agents["2x3090"], True)]
    down = {d["target"]: d["error"] for d in answer["down"]}
    assert set(down) == {dead, wedged}
    assert "refused" in down[dead].lower()
    assert "timed out" in down[wedged].lower()


def test_direct_targets_file_hosts_and_best(agents, cli, tmp_path):
    sd = tmp_path / "targets.json"
    sd.write_text(json.dumps([{"targets": list(agents.values()), "labels": {"rack": "a"}}]))
    result = cli("fleet", "--targets-file", str(sd), "hosts")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:4] == ["host", "target", "status", "GPUs"]
    assert any(line.startswith("ws-3090x2") and "2 × RTX 3090" in line and " up " in line for line in lines)
    assert any(line.startswith("cpu-box") and "none (CPU)" in line for line in lines)
    result = cli("fleet", "--targets-file", str(sd), "best", "--use-case", "code", "--json")
    assert result.returncode == 0, result.stderr
    best = {r["host"]: r for r in json.loads(result.stdout)["hosts"]}
    assert set(best) == set(HOSTNAMES.values()) and all(r["model"] for r in best.values())


def test_text_answer_for_a_placement(agents, cli):
    result = cli(
        "fleet", "--targets", ",".join(agents.values()), "place", "--model", "llama3.1-8b", "--context", "4096"
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    assert out[0] == f"{L8} Q4_K_M at 4,096 tokens"
    assert out[-1].startswith("fits on 3 hosts; best: ws-4090")
    table = [line.split() for line in out if line.startswith(("yes", "no"))]
    assert [row[1] for row in table] == ["ws-4090", "ws-3090x2", "cpu-box"]
    assert table[2][3] == "cpu"


@pytest.mark.parametrize(
    "args, code, message",
    [
        (
            ["--prometheus", "prometheus:9090", "hosts"],
            2,
            "--prometheus 'prometheus:9090': expected Prometheus' base URL",
        ),
        (["--targets", "a:1", "place", "--model", "no-such-model"], 2, "no-such-model"),
        (["--targets", "a:1", "place", "--model", "llama3.1-8b", "--quant", "Q9_X"], 2, "Q9_X"),
        (["--targets", "a:1", "--job", "x", "hosts"], 2, "--job applies to --prometheus only"),
        (["--targets", "a", "hosts"], 2, "'a' is not host:port"),
        (["--targets-file", "/nonexistent/sd.json", "hosts"], 2, "no such file"),
        (["--targets", "a:1", "--timeout", "0", "hosts"], 2, "between 0 and 600"),
        (["hosts"], 2, "one of the arguments --prometheus --targets --targets-file is required"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli, args, code, message):
    result = cli("fleet", *args)
    assert result.returncode == code, result.stderr
    assert message in result.stderr and result.stderr.count("\n") == 1 and result.stdout == ""


def test_unreachable_prometheus_is_one_line_and_exit_1(cli):
    url = f"http://127.0.0.1:{free_port()}"
    result = cli("fleet", "--prometheus", url, "--timeout", "2", "hosts")
    assert result.returncode == 1
    assert (
        result.stderr.startswith(f"fitagent fleet: cannot reach Prometheus at {url}: ")
        and result.stderr.count("\n") == 1
    )


def test_an_agent_is_not_prometheus(agents, cli):
    result = cli("fleet", "--prometheus", f"http://{agents['rtx4090']}", "hosts")
    assert result.returncode == 1
    assert "is it Prometheus?" in result.stderr and result.stderr.count("\n") == 1


# ---------------------------------------------------------------- versions


def test_version_warnings():
    assert answers.version_warnings({"0.2.0": 3}, "0.2.0") == []
    (line,) = answers.version_warnings({"0.2.0": 9_998, "0.1.0": 2}, "0.2.0")
    assert line.startswith("hosts run different fitagent versions: 0.2.0 on 9,998 hosts, 0.1.0 on 2 hosts; ")
    (line,) = answers.version_warnings({"0.1.0": 1}, "0.2.0")
    assert line.startswith("the hosts run fitagent 0.1.0, this is 0.2.0")


class OldAgent:
    """Serves a real agent's /metrics with another fitagent version in fitagent_build_info."""

    def __init__(self, text: str, version: str):
        import http.server
        import re

        body = re.sub(r'(fitagent_build_info\{[^}]*version=")[^"]*"', rf'\g<1>{version}"', text)
        body = body.replace('hostname="ws-4090"', 'hostname="ws-old"').encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.target = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_hosts_on_different_versions_are_warned_about(agents, cli):
    import urllib.request

    with urllib.request.urlopen(f"http://{agents['rtx4090']}/metrics", timeout=10) as response:
        old = OldAgent(response.read().decode(), "0.0.9")
    try:
        targets = ",".join([agents["rtx4090"], agents["cpu-only"], old.target])
        result = cli("fleet", "--targets", targets, "hosts", "--json")
        text = cli("fleet", "--targets", targets, "place", "--model", "llama3.1-8b")
    finally:
        old.close()
    assert result.returncode == 0, result.stderr
    (warning,) = json.loads(result.stdout)["warnings"]
    assert "hosts run different fitagent versions: " in warning and "0.0.9 on 1 host" in warning
    assert result.stderr == f"fitagent fleet: warning: {warning}\n"
    assert text.returncode == 0 and text.stderr.startswith(
        "fitagent fleet: warning: hosts run different fitagent versions"
    )
    assert "ws-old" in text.stdout
