"""End to end: three real agents (RTX 4090, 2 × RTX 3090, CPU-only), a real Prometheus scraping
them every second from the example config, and `fitagent fleet --prometheus` answering from it;
then one agent stops and the answers change."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml
from agent_server import FAST_CONFIG, AgentProcess, copy_fixture

REPO = Path(__file__).resolve().parent.parent
PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(
    PROMETHEUS is None, reason="prometheus not on PATH (Debian: apt-get install prometheus)"
)

HOSTS = {"rtx4090": "ws-4090", "2x3090": "ws-3090x2", "cpu-only": "cpu-box"}
L70 = "meta-llama/Llama-3.1-70B-Instruct"
WAIT_S = 60  # every wait below is bounded by this


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


class PrometheusProcess:
    """Prometheus from config/prometheus.yml, made to scrape every second and to read the
    targets from a temp file_sd file; storage and log in a temp dir."""

    def __init__(self, directory: Path, targets: list[str]):
        self.directory = directory
        (directory / "targets.json").write_text(json.dumps([{"targets": targets, "labels": {"site": "test"}}]))
        config = yaml.safe_load((REPO / "config" / "prometheus.yml").read_text())
        config["global"].update(scrape_interval="1s", evaluation_interval="1s")
        config["rule_files"] = [str(REPO / "config" / "alerts.yml"), str(REPO / "config" / "fitagent-rules.yml")]
        job = config["scrape_configs"][0]
        job["scrape_timeout"] = "1s"
        job["file_sd_configs"][0]["files"] = [str(directory / "targets.json")]
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.proc = None
        for _ in range(3):  # a port taken between free_port() and the bind: try another
            self.port = free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            self.log = open(directory / "prometheus.log", "w")
            self.proc = subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={directory / 'prometheus.yml'}",
                    f"--storage.tsdb.path={directory / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=self.log,
                stderr=subprocess.STDOUT,
                cwd=directory,
            )
            if self._wait_ready():
                return
            self.stop()
        raise AssertionError("prometheus did not become ready:\n" + self.log_tail())

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline and self.proc.poll() is None:
            if get(f"{self.url}/-/ready", 2)[0] == 200:
                return True
            time.sleep(0.2)
        return False

    def log_tail(self) -> str:
        return "\n".join((self.directory / "prometheus.log").read_text().splitlines()[-30:])

    def query(self, promql: str) -> list:
        status, body = get(f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
        assert status == 200, body
        return json.loads(body)["data"]["result"]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    started = time.monotonic()
    agents: dict[str, AgentProcess] = {}
    prometheus = None
    try:
        for name in HOSTS:
            directory = tmp_path_factory.mktemp(name)
            agents[name] = AgentProcess(directory, copy_fixture(name, directory), FAST_CONFIG)
        for agent in agents.values():
            agent.wait_ready()
        targets = {name: agent.url.removeprefix("http://") for name, agent in agents.items()}
        prometheus = PrometheusProcess(tmp_path_factory.mktemp("prometheus"), list(targets.values()))
        yield {"agents": agents, "targets": targets, "prometheus": prometheus, "started": started}
    finally:
        for agent in agents.values():
            agent.stop()
        if prometheus is not None:
            prometheus.stop()


def ask(cli, fleet, *args: str) -> dict:
    result = cli("fleet", "--prometheus", fleet["prometheus"].url, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def hosts_until(cli, fleet, condition, what: str) -> dict:
    deadline = time.monotonic() + WAIT_S
    while True:
        result = cli("fleet", "--prometheus", fleet["prometheus"].url, "hosts", "--json")
        if result.returncode == 0:
            answer = json.loads(result.stdout)
            if condition({r["target"]: r["status"] for r in answer["hosts"]}):
                return answer
        if time.monotonic() > deadline:
            raise AssertionError(
                f"waited {WAIT_S} s for {what}; last answer: {result.stdout or result.stderr}\n"
                + fleet["prometheus"].log_tail()
            )
        time.sleep(0.5)


def test_hosts_once_prometheus_has_scraped_them(cli, fleet, capsys):
    targets = fleet["targets"]
    answer = hosts_until(cli, fleet, lambda s: [s.get(t) for t in targets.values()] == ["up"] * 3, "three hosts up")
    rows = {r["target"]: r for r in answer["hosts"]}
    for name, target in targets.items():
        assert rows[target]["host"] == HOSTS[name] and rows[target]["job"] == "fitagent"
    assert [g["name"] for g in rows[targets["2x3090"]]["gpus"]] == ["NVIDIA GeForce RTX 3090"] * 2
    assert rows[targets["cpu-only"]]["gpus"] == [] and answer["down"] == []
    scraped = {
        r["metric"]["instance"]: float(r["value"][1]) for r in fleet["prometheus"].query("scrape_samples_scraped")
    }
    with capsys.disabled():
        print(
            "\nseries per host as Prometheus scraped them (test config): "
            + ", ".join(f"{HOSTS[n]} {scraped[t]:.0f}" for n, t in targets.items())
        )
    assert all(0 < scraped[t] <= 300 for t in targets.values())


def test_prometheus_computes_the_fleets_budget_inline_and_recorded(cli, fleet, catalog):
    """The pre-filter's PromQL (inline, and recorded by config/fitagent-rules.yml) gives each
    host the budget the estimator gets from its snapshot."""
    from conftest import SNAPSHOTS

    from fitagent.agent.fleet.prefilter import RECORDED_BUDGET, budget_promql
    from fitagent.agent.hardware import load_snapshot_file
    from fitagent.estimator.budget import budget_from_snapshot

    prometheus = fleet["prometheus"]
    expected = {
        target: budget_from_snapshot(load_snapshot_file(SNAPSHOTS / f"{name}.json"), catalog).budget_bytes
        for name, target in fleet["targets"].items()
    }
    inline = {r["metric"]["instance"]: float(r["value"][1]) for r in prometheus.query(budget_promql('job="fitagent"'))}
    assert inline == expected
    deadline = time.monotonic() + WAIT_S
    while len(prometheus.query(RECORDED_BUDGET)) < len(expected):  # the rule group's first evaluations
        assert time.monotonic() < deadline, prometheus.log_tail()
        time.sleep(0.5)
    assert {r["metric"]["instance"]: float(r["value"][1]) for r in prometheus.query(RECORDED_BUDGET)} == expected


def test_place_reads_only_the_candidates_with_or_without_the_recording_rule(fleet, catalog, monkeypatch):
    from fitagent.agent.fleet import prefilter, prometheus

    bound = prefilter.bound_for(catalog.model(L70), catalog.quant("Q4_K_M"), catalog, 4096)
    api = prometheus.PrometheusAPI(fleet["prometheus"].url, 10)
    recorded, how = prometheus.read_candidates(api, bound)
    assert how.recorded and recorded.queries == 2  # discovery with the candidates, then their series
    targets = fleet["targets"]
    assert [h.target for h in recorded.hosts] == [targets["2x3090"]]  # not the 4090 (memory), nor the CPU box (speed)
    assert recorded.filtered_out == 2 and all(h.live and h.snapshot for h in recorded.hosts)
    # a Prometheus without config/fitagent-rules.yml: the same answer, the budget computed inline
    monkeypatch.setattr(prometheus, "RECORDED_BUDGET", "fitagent:not_recorded")
    monkeypatch.setattr(prometheus, "RECORDED_VERSIONS", "fitagent:not_recorded_either")
    monkeypatch.setattr(prefilter, "RECORDED_BUDGET", "fitagent:not_recorded")
    inline, how = prometheus.read_candidates(api, bound)
    assert not how.recorded and inline.queries == 4  # discovery twice (recorded, then raw), candidates, their series
    assert [(h.target, h.snapshot) for h in inline.hosts] == [(h.target, h.snapshot) for h in recorded.hosts]
    assert inline.filtered_out == 2 and inline.versions == recorded.versions


def test_best_model_per_host(cli, fleet, catalog):
    from conftest import SNAPSHOTS

    from fitagent.agent.hardware import load_snapshot_file
    from fitagent.estimator.budget import budget_from_snapshot
    from fitagent.estimator.recommend import recommend
    from fitagent.estimator.results import Options

    answer = ask(cli, fleet, "best", "--use-case", "code")
    assert {r["source"] for r in answer["hosts"]} == {"agent"}  # each agent's own series, no sweep here
    assert answer["warnings"] == [] and answer["notes"] == []
    got = {r["target"]: (r["model"], r["quant"]) for r in answer["hosts"]}
    for name, target in fleet["targets"].items():
        budget = budget_from_snapshot(load_snapshot_file(SNAPSHOTS / f"{name}.json"), catalog)
        top = recommend(catalog, budget, Options(context=8192, use_case="code")).ranked[0]
        assert got[target] == (top.model, top.quant)


def test_placements_then_the_two_3090_agent_stops(cli, fleet, capsys):
    targets = fleet["targets"]
    big = ask(cli, fleet, "place", "--model", "Llama-3.1-70B-Instruct", "--quant", "Q4_K_M", "--context", "4096")
    assert big["model"] == L70 and big["fits_anywhere"]
    assert [r["target"] for r in big["placements"] if r["fits"]] == [targets["2x3090"]]
    assert big["placements"][0]["gpu_layers"] == 80 and 30e9 <= big["placements"][0]["total_bytes"] <= 45e9 + 1e9
    # Prometheus sent only the hosts that could run it: not the 4090 (memory), nor the CPU box (RAM speed)
    assert big["prefilter"]["filtered_out"] == 2 and [r["target"] for r in big["placements"]] == [targets["2x3090"]]

    small = ask(cli, fleet, "place", "--model", "llama3.1-8b", "--quant", "Q4_K_M", "--context", "4096")
    assert [(r["target"], r["fits"], r["placement"]) for r in small["placements"]] == [
        (targets["rtx4090"], True, "gpu"),
        (targets["2x3090"], True, "gpu"),
        (targets["cpu-only"], True, "cpu"),
    ]

    assert fleet["agents"]["2x3090"].stop() == 0
    hosts_until(cli, fleet, lambda s: s.get(targets["2x3090"]) == "down", "the stopped agent to be down")

    result = cli(
        "fleet",
        "--prometheus",
        fleet["prometheus"].url,
        "place",
        "--model",
        "Llama-3.1-70B-Instruct",
        "--quant",
        "Q4_K_M",
        "--context",
        "4096",
    )
    assert result.returncode == 0, result.stderr
    summary = result.stdout.splitlines()[-1]
    assert summary.startswith(
        f"nowhere fits; best partial offload: ws-4090 ({targets['rtx4090']}) with 45 of 80 layers on GPUs, "
    )
    assert f"down: ws-3090x2 ({targets['2x3090']}): Prometheus: up == 0 (" in result.stdout
    big = ask(cli, fleet, "place", "--model", "Llama-3.1-70B-Instruct", "--quant", "Q4_K_M", "--context", "4096")
    assert not big["fits_anywhere"] and big["best_partial_offload"]["target"] == targets["rtx4090"]
    assert [d["target"] for d in big["down"]] == [targets["2x3090"]]
    small = ask(cli, fleet, "place", "--model", "llama3.1-8b", "--quant", "Q4_K_M", "--context", "4096")
    assert [r["target"] for r in small["placements"] if r["fits"]] == [targets["rtx4090"], targets["cpu-only"]]
    with capsys.disabled():
        print(
            f"\nfleet end to end: {time.monotonic() - fleet['started']:.1f} s from the first agent's start; "
            f"after the stop: {summary}"
        )
