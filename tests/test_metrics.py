"""/metrics: a collector over the agent's state — names by the book, bounded series, and every
budget field the fleet needs (the budget rebuilt from the series equals the agent's)."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace

import pytest
from agent_server import AgentProcess, Prober, copy_fixture
from conftest import SNAPSHOTS
from prometheus_client.parser import text_string_to_metric_families

from fitagent.agent.config import Config, WatchedModel
from fitagent.agent.fleet.facts import Sample, budget_from_samples, facts_from_samples
from fitagent.agent.hardware import load_snapshot_file
from fitagent.agent.server import EXTENSION, create_app
from fitagent.estimator.hardware import snapshot_from_dict

SERIES_BUDGET = 300  # the bound per host with the default config
PROMTOOL = shutil.which("promtool")


def scanned_app(snapshot, config: Config = Config()):
    prober = Prober(snapshot)
    app = create_app(config, prober=prober, start=False)
    app.extensions[EXTENSION].scan_once()
    return app, prober


def scrape(app, accept: str | None = None):
    response = app.test_client().get("/metrics", headers={"Accept": accept} if accept else {})
    assert response.status_code == 200
    return response


def families(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples_of(text: str) -> list[Sample]:
    return [Sample(s.name, dict(s.labels), s.value) for f in text_string_to_metric_families(text) for s in f.samples]


def series(text: str, name: str) -> list:
    return [s for f in text_string_to_metric_families(text) for s in f.samples if s.name == name]


@pytest.fixture(scope="module", params=["rtx4090", "2x3090", "cpu-only"])
def default_scrape(request):
    """Each fixture host scanned once with the default config (all use cases and contexts)."""
    snapshot = load_snapshot_file(SNAPSHOTS / f"{request.param}.json")
    app, prober = scanned_app(snapshot)
    return request.param, snapshot, app, prober, scrape(app).data.decode()


def test_series_per_host_stay_within_the_budget(default_scrape, capsys):
    name, _, app, _, text = default_scrape
    count = sum(len(f.samples) for f in text_string_to_metric_families(text))
    model_series = sum(
        len(f.samples) for f in text_string_to_metric_families(text) if f.name.startswith("fitagent_model_")
    )
    with capsys.disabled():
        print(f"\n/metrics {name}: {count} series ({model_series} model series, {len(text)} bytes)")
    assert count <= SERIES_BUDGET
    entries = {(s.labels["model"], s.labels["quant"], s.labels["context"]) for s in series(text, "fitagent_model_fits")}
    assert 0 < len(entries) <= Config().metrics_models_max


def test_names_follow_prometheus_conventions(default_scrape):
    _, _, _, _, text = default_scrape
    for family in text_string_to_metric_families(text):
        assert family.documentation, family.name
        if not family.name.startswith("fitagent_"):
            continue
        if family.type == "counter":
            assert all(s.name.endswith("_total") for s in family.samples), family.name
        assert "hostname" not in {k for s in family.samples for k in s.labels} or family.name == "fitagent_host_info"
        assert "mib" not in family.name and "percent" not in family.name
        for s in family.samples:
            if s.name.endswith("_info"):
                assert s.value == 1


def test_hardware_series_match_the_snapshot(default_scrape):
    name, snapshot, app, _, text = default_scrape
    free = {(s.labels["gpu"], s.labels["uuid"]): s.value for s in series(text, "fitagent_gpu_memory_free_bytes")}
    assert free == {(str(g.index), g.uuid): g.memory_free_bytes for g in snapshot.gpus}
    info = series(text, "fitagent_gpu_info")
    assert [(s.labels["uuid"], s.labels["name"], s.labels["pci_id"], s.labels["driver"]) for s in info] == [
        (g.uuid, g.name, g.pci_id, g.driver_version) for g in snapshot.gpus
    ]
    (available,) = series(text, "fitagent_host_memory_available_bytes")
    assert available.value == snapshot.host.memory_available_bytes
    (host,) = series(text, "fitagent_host_info")
    assert host.labels["hostname"] == snapshot.host.hostname
    (last,) = series(text, "fitagent_last_scan_timestamp_seconds")
    assert last.value == app.extensions[EXTENSION].state.scanned_at
    assert series(text, "fitagent_scans_total")[0].value == 1
    assert series(text, "fitagent_scan_errors_total")[0].value == 0
    assert series(text, "fitagent_ready")[0].value == 1


def test_fit_series_agree_with_the_precomputed_results(default_scrape):
    name, snapshot, app, _, text = default_scrape
    agent = app.extensions[EXTENSION]
    computed = agent.state.computed
    use_case, context = computed.default_key
    recs = computed.recommendations[(use_case, context)]
    best = {s.labels["context"]: s.value for s in series(text, "fitagent_best_decode_tokens_per_second")}
    assert best[str(context)] == max(e.decode_tokens_per_s for e in recs.frontiers["speed"])
    runnable = {s.labels["context"]: s.value for s in series(text, "fitagent_runnable_candidates")}
    assert runnable == {str(c): computed.considered[(use_case, c)] for c in Config().precomputed_contexts}
    (largest,) = series(text, "fitagent_largest_fitting_model_parameters")
    assert largest.value == max(agent.catalog.model(m).params_total for m in computed.best_fitting)
    (reference,) = series(text, "fitagent_reference_model_max_context_tokens")
    assert reference.labels["model"] == "meta-llama/Llama-3.1-8B-Instruct" and reference.value > context
    # model series: exactly the estimates the agent computed
    frontier = {(e.model, e.quant, str(e.context)): e for points in recs.frontiers.values() for e in points}
    for s in series(text, "fitagent_model_fit_headroom_bytes"):
        e = frontier[(s.labels["model"], s.labels["quant"], s.labels["context"])]
        assert s.value == e.headroom_bytes
    for s in series(text, "fitagent_model_gpu_layers"):
        assert s.value == frontier[(s.labels["model"], s.labels["quant"], s.labels["context"])].gpu_layers


def test_per_gpu_fit_headroom_is_free_minus_the_runtime_reserve(default_scrape):
    from fitagent.estimator.calibration import DEFAULT_CALIBRATION

    _, snapshot, _, _, text = default_scrape
    headroom = {s.labels["uuid"]: s.value for s in series(text, "fitagent_gpu_fit_headroom_bytes")}
    assert headroom == {g.uuid: g.memory_free_bytes - DEFAULT_CALIBRATION.runtime_reserve_bytes for g in snapshot.gpus}


def test_the_budget_rebuilt_from_the_series_is_the_agents(default_scrape, catalog):
    _, _, app, _, text = default_scrape
    assert budget_from_samples(samples_of(text), catalog) == app.extensions[EXTENSION].state.computed.budget


def test_scrapes_read_the_state_and_never_probe(default_scrape):
    _, _, app, prober, text = default_scrape
    calls = prober.calls
    again = scrape(app).data.decode()
    assert prober.calls == calls
    strip = lambda t: [line for line in t.splitlines() if not line.startswith(("process_", "# "))]  # noqa: E731
    assert strip(again) == strip(text)


MIG_AND_MORE = {
    "schema": "fitagent.hardware/1",
    "taken_at": "2026-11-29T06:00:00Z",
    "host": {
        "hostname": "dgx",
        "os": "Linux",
        "cpu_model": None,
        "cpu_cores": 64,
        "cpu_arch": "arm",  # a Grace host: its cores' rate must come back through the series
        "memory_total_bytes": 512_000_000_000,
        "memory_available_bytes": 500_000_000_000,
        "memory_bandwidth_bytes_per_s": None,
        "memory_bandwidth_source": "none",
        "memory_limit_bytes": 100_000_000_000,
        "memory_limit_source": "cgroup",
    },
    "gpus": [
        {
            "index": 0,
            "vendor": "nvidia",
            "name": "NVIDIA A100-SXM4-80GB",
            "uuid": "GPU-a100-0",
            "pci_id": "10de:20b2",
            "memory_total_bytes": 80_000_000_000,
            "memory_free_bytes": 79_000_000_000,
            "memory_used_bytes": 1_000_000_000,
            "memory_bandwidth_bytes_per_s": 2_039_000_000_000,
            "bandwidth_source": "nvml",
            "compute_capability": "8.0",
            "driver_version": "550.54.15",
            "mig": {"role": "parent", "mode": "enabled", "instances": 2},
        },
        {
            "index": 0,
            "vendor": "nvidia",
            "name": "NVIDIA A100-SXM4-80GB MIG 3g.40gb",
            "uuid": "MIG-aaaa",
            "pci_id": "10de:20b2",
            "memory_total_bytes": 40_000_000_000,
            "memory_free_bytes": 39_000_000_000,
            "memory_used_bytes": 1_000_000_000,
            "memory_bandwidth_bytes_per_s": None,
            "bandwidth_source": "none",
            "compute_capability": "8.0",
            "driver_version": "550.54.15",
            "mig": {
                "role": "instance",
                "parent_uuid": "GPU-a100-0",
                "parent_name": "NVIDIA A100-SXM4-80GB",
                "profile": "3g.40gb",
                "mig_device_index": 0,
            },
        },
        {
            "index": 0,
            "vendor": "nvidia",
            "name": "NVIDIA A100-SXM4-80GB MIG 3g.40gb",
            "uuid": "MIG-bbbb",
            "pci_id": "10de:20b2",
            "memory_total_bytes": 40_000_000_000,
            "memory_free_bytes": 12_000_000_000,
            "memory_used_bytes": 28_000_000_000,
            "memory_bandwidth_bytes_per_s": None,
            "bandwidth_source": "none",
            "compute_capability": "8.0",
            "driver_version": "550.54.15",
            "mig": {
                "role": "instance",
                "parent_uuid": "GPU-a100-0",
                "parent_name": "NVIDIA A100-SXM4-80GB",
                "profile": "3g.40gb",
                "mig_device_index": 1,
            },
        },
        {
            "index": 1,
            "vendor": "nvidia",
            "name": "NVIDIA GeForce RTX 4090",
            "uuid": "GPU-hidden",
            "pci_id": "10de:2684",
            "memory_total_bytes": 25_757_220_864,
            "memory_free_bytes": 24_900_000_000,
            "memory_used_bytes": 857_220_864,
            "memory_bandwidth_bytes_per_s": 1_008_000_000_000,
            "bandwidth_source": "nvml",
            "compute_capability": "8.9",
            "driver_version": "550.54.15",
            "mig": None,
            "visible": False,
        },
    ],
    "problems": [],
}

SMALL = Config(contexts=(8192,), use_cases=("general",), token="t")


def test_mig_instances_hidden_gpus_cgroup_limits_and_unknown_bandwidth_round_trip(catalog):
    app, _ = scanned_app(snapshot_from_dict(MIG_AND_MORE), SMALL)
    text = scrape(app).data.decode()
    budget = app.extensions[EXTENSION].state.computed.budget
    assert [d.id for d in budget.devices] == ["MIG-aaaa", "MIG-bbbb"]
    assert budget_from_samples(samples_of(text), catalog) == budget
    usable = {s.labels["uuid"]: s.value for s in series(text, "fitagent_gpu_usable")}
    assert usable == {"GPU-a100-0": 0, "MIG-aaaa": 1, "MIG-bbbb": 1, "GPU-hidden": 0}
    headroom = {s.labels["uuid"]: s.value for s in series(text, "fitagent_gpu_fit_headroom_bytes")}
    assert (
        headroom["GPU-a100-0"] == 0 and headroom["GPU-hidden"] == 0 and headroom["MIG-aaaa"] > headroom["MIG-bbbb"] > 0
    )
    info = {s.labels["uuid"]: s.labels for s in series(text, "fitagent_gpu_info")}
    assert (info["MIG-bbbb"]["mig_role"], info["MIG-bbbb"]["mig_profile"], info["MIG-bbbb"]["parent_uuid"]) == (
        "instance",
        "3g.40gb",
        "GPU-a100-0",
    )
    assert series(text, "fitagent_host_memory_limit_bytes")[0].value == 100_000_000_000
    assert not series(text, "fitagent_host_memory_bandwidth_bytes_per_second")  # unknown: not exported as a number
    facts = facts_from_samples("dgx:8765", samples_of(text), observed_at=0.0)
    assert [(g.uuid, g.usable) for g in facts.gpus] == [
        ("GPU-a100-0", False),
        ("MIG-aaaa", True),
        ("MIG-bbbb", True),
        ("GPU-hidden", False),
    ]


PI_WITH_A_RISER = {
    "schema": "fitagent.hardware/1",
    "taken_at": "2026-12-04T06:00:00Z",
    "host": {
        "hostname": "cm5",
        "os": "Linux 6.12.47+rpt-rpi-2712",
        "cpu_model": "Raspberry Pi Compute Module 5 Rev 1.0",
        "cpu_cores": 4,
        "cpu_arch": "arm",
        "cpu_class": "embedded",
        "memory_total_bytes": 16_000_000_000,
        "memory_available_bytes": 15_000_000_000,
        "memory_bandwidth_bytes_per_s": 17_068_000_000,
        "memory_bandwidth_source": "table",
    },
    "gpus": [
        {
            "index": 0,
            "vendor": "nvidia",
            "name": "NVIDIA GeForce RTX 3060",
            "uuid": "GPU-3060",
            "pci_id": "10de:2504",
            "memory_total_bytes": 12_884_901_888,
            "memory_free_bytes": 12_500_000_000,
            "memory_used_bytes": 384_901_888,
            "memory_bandwidth_bytes_per_s": 360_000_000_000,
            "bandwidth_source": "nvml",
            "compute_capability": "8.6",
            "driver_version": "580.95.05",
            "mig": None,
            "pcie": {"max_generation": 3, "max_width": 1, "current_generation": 1, "current_width": 1},
        }
    ],
    "problems": [],
}


def test_an_embedded_host_and_its_gpus_link_round_trip(catalog):
    """The fleet prices a GPU behind a Raspberry Pi as the agent does: the host's class and the link's
    max generation and width travel in the series (the current ones, which drop at idle, do not)."""
    app, _ = scanned_app(snapshot_from_dict(PI_WITH_A_RISER), SMALL)
    text = scrape(app).data.decode()
    budget = app.extensions[EXTENSION].state.computed.budget
    assert (budget.cpu_class, budget.devices[0].link_bytes_per_s) == ("embedded", 0.985e9)
    assert budget_from_samples(samples_of(text), catalog) == budget
    assert series(text, "fitagent_host_info")[0].labels["cpu_class"] == "embedded"
    link = [
        (s.name, s.value)
        for s in series(text, "fitagent_gpu_pcie_link_generation") + series(text, "fitagent_gpu_pcie_link_width")
    ]
    assert link == [("fitagent_gpu_pcie_link_generation", 3), ("fitagent_gpu_pcie_link_width", 1)]


def test_before_the_first_scan_and_after_a_failed_one():
    snapshot = load_snapshot_file(SNAPSHOTS / "rtx4090.json")
    prober = Prober(
        RuntimeError("NVML: driver/library version mismatch"), snapshot, RuntimeError("GPU fell off the bus")
    )
    app = create_app(SMALL, prober=prober, start=False)
    agent = app.extensions[EXTENSION]
    text = scrape(app).data.decode()
    assert series(text, "fitagent_ready")[0].value == 0 and series(text, "fitagent_stale")[0].value == 1
    assert not series(text, "fitagent_gpu_memory_free_bytes") and not series(
        text, "fitagent_last_scan_timestamp_seconds"
    )
    assert series(text, "fitagent_build_info")
    agent.scan_once()  # fails
    text = scrape(app).data.decode()
    assert (series(text, "fitagent_scans_total")[0].value, series(text, "fitagent_scan_errors_total")[0].value) == (
        1,
        1,
    )
    agent.scan_once()  # good
    agent.scan_once()  # fails again: the last good snapshot is still exported, marked stale
    text = scrape(app).data.decode()
    assert (series(text, "fitagent_scans_total")[0].value, series(text, "fitagent_scan_errors_total")[0].value) == (
        3,
        2,
    )
    assert series(text, "fitagent_scan_consecutive_failures")[0].value == 1
    assert series(text, "fitagent_stale")[0].value == 1 and series(text, "fitagent_ready")[0].value == 1
    assert series(text, "fitagent_gpu_memory_free_bytes")[0].value == 24_900_000_000


def test_model_series_are_bounded_by_the_config_and_watch_list_first():
    snapshot = load_snapshot_file(SNAPSHOTS / "rtx4090.json")
    watch = WatchedModel("meta-llama/Llama-3.1-70B-Instruct", "Q4_K_M", 4096)
    app, _ = scanned_app(snapshot, replace(SMALL, metrics_models_max=3, watch_models=(watch,)))
    text = scrape(app).data.decode()
    fits = {
        (s.labels["model"], s.labels["quant"], s.labels["context"]): s.value
        for s in series(text, "fitagent_model_fits")
    }
    assert len(fits) == 3 and fits[("meta-llama/Llama-3.1-70B-Instruct", "Q4_K_M", "4096")] == 0
    layers = {s.labels["model"]: s.value for s in series(text, "fitagent_model_gpu_layers")}
    assert layers["meta-llama/Llama-3.1-70B-Instruct"] == 45  # partial offload on a 4090
    app, _ = scanned_app(snapshot, replace(SMALL, metrics_models_max=0, metrics_reference_model=None))
    text = scrape(app).data.decode()
    assert not [f for f in text_string_to_metric_families(text) if f.name.startswith("fitagent_model_") and f.samples]
    assert not series(text, "fitagent_reference_model_max_context_tokens")


def test_openmetrics_when_asked():
    app, _ = scanned_app(load_snapshot_file(SNAPSHOTS / "rtx4090.json"), SMALL)
    response = scrape(app, "application/openmetrics-text; version=1.0.0")
    assert response.content_type.startswith("application/openmetrics-text")
    text = response.data.decode()
    assert text.endswith("# EOF\n") and "# UNIT fitagent_gpu_memory_free_bytes bytes" in text


def test_config_keys_are_checked(tmp_path):
    from fitagent.agent.config import ConfigError, load_config

    path = tmp_path / "fitagent.yaml"
    path.write_text("metrics_models_max: -1\n")
    with pytest.raises(ConfigError, match="metrics_models_max must be between 0 and 10000"):
        load_config(path, environ={})
    example = (SNAPSHOTS.parents[2] / "config" / "fitagent.yaml").read_text()
    for key in ("metrics_models_max", "metrics_reference_model", "metrics_reference_quant"):
        assert f"\n{key}:" in example


def test_serve_refuses_an_unknown_reference_model(tmp_path, cli):
    path = tmp_path / "fitagent.yaml"
    path.write_text("port: 0\nmetrics_reference_model: no-such-model\n")
    result = cli("serve", "--config", str(path), "--hardware", str(SNAPSHOTS / "rtx4090.json"))
    assert result.returncode == 2
    assert (
        result.stderr.startswith(f"fitagent serve: {path}: metrics_reference_model: ")
        and result.stderr.count("\n") == 1
    )


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not on PATH (Debian: apt-get install prometheus)")
def test_a_real_agents_metrics_pass_promtool(tmp_path, capsys):
    agent = AgentProcess(tmp_path, copy_fixture("2x3090", tmp_path)).wait_ready()
    try:
        url = f"{agent.url}/metrics"
        if shutil.which("curl"):  # as an operator would check it
            check = subprocess.run(
                ["bash", "-c", f"curl -sf {url} | promtool check metrics"], capture_output=True, text=True, timeout=60
            )
            body = subprocess.run(["curl", "-sf", url], capture_output=True, text=True, timeout=30).stdout
        else:
            status, headers, raw = agent.request("GET", "/metrics")
            body = raw.decode()
            check = subprocess.run(
                [PROMTOOL, "check", "metrics"], input=body, capture_output=True, text=True, timeout=60
            )
        assert check.returncode == 0, check.stdout + check.stderr
        assert (check.stdout + check.stderr).strip() == ""  # no lint warnings either
        count = sum(len(f.samples) for f in text_string_to_metric_families(body))
        with capsys.disabled():
            print(f"\n/metrics over HTTP from a 2 × RTX 3090 agent (test config): {count} series, promtool clean")
        status, health = agent.get("/healthz")
        assert health["scans_total"] == 1  # scrapes did not rescan
    finally:
        assert agent.stop() == 0
