"""The pre-filter `fleet place` pushes into PromQL never drops a host the full estimate would place
(a property over random fleets, models, quantizations and contexts), and its PromQL computes the
same budget as the fleet (random fleets' series evaluated by Prometheus' own promtool)."""

from __future__ import annotations

import random
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from conftest import SNAPSHOTS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fitagent.agent.fleet import answers
from fitagent.agent.fleet.facts import HostFacts, Sample, budget_from_samples
from fitagent.agent.fleet.prefilter import (
    RECORDED_BUDGET,
    RECORDED_CPU_BANDWIDTH,
    Bound,
    bound_for,
    budget_promql,
    candidates_promql,
    cpu_bandwidth_promql,
    hosts_promql,
)
from fitagent.agent.hardware import load_snapshot_file
from fitagent.estimator.budget import budget_from_snapshot
from fitagent.estimator.estimate import estimate
from fitagent.estimator.recommend import usable_now
from fitagent.estimator.results import Options

REPO = Path(__file__).resolve().parent.parent
PROMTOOL = shutil.which("promtool")
FIXTURE_HOSTS = ("rtx4090", "2x3090", "cpu-only")
CONTEXTS = (256, 2048, 4096, 8192, 16384, 32768, 65536, 131072, 262144)
GB = 1_000_000_000


@pytest.fixture(scope="module")
def snapshots():
    return {name: load_snapshot_file(SNAPSHOTS / f"{name}.json") for name in FIXTURE_HOSTS}


@pytest.fixture(scope="module")
def budgets(catalog):
    return {
        name: budget_from_snapshot(load_snapshot_file(SNAPSHOTS / f"{name}.json"), catalog) for name in FIXTURE_HOSTS
    }


def host_snapshot(base, free_shares, ram_bytes, ram_bandwidth=None, cores=None):
    """A fixture host's snapshot with each GPU's free memory a share of its total, RAM available
    set, and (when given) RAM bandwidth and cores: what the fleet reads from its series."""
    gpus = tuple(
        replace(g, memory_free_bytes=int(g.memory_total_bytes * share)) for g, share in zip(base.gpus, free_shares)
    )
    host = replace(base.host, memory_available_bytes=ram_bytes)
    if ram_bandwidth is not None:
        host = replace(host, memory_bandwidth_bytes_per_s=ram_bandwidth)
    if cores is not None:
        host = replace(host, cpu_cores=cores)
    return replace(base, gpus=gpus, host=host)


def host_budget(base, free_shares, ram_bytes, ram_bandwidth=None, cores=None):
    """A fixture host with each GPU's free memory a share of its total, RAM available set, and
    (when given) RAM bandwidth and cores."""
    devices = tuple(replace(d, free_bytes=int(d.total_bytes * share)) for d, share in zip(base.devices, free_shares))
    budget = replace(base, devices=devices, host_available_bytes=ram_bytes)
    if ram_bandwidth is not None:
        budget = replace(budget, host_bandwidth_bytes_per_s=ram_bandwidth)
    if cores is not None:
        budget = replace(budget, cpu_cores=cores)
    return budget


hosts_strategy = st.lists(
    st.tuples(
        st.sampled_from(FIXTURE_HOSTS),
        st.lists(st.floats(0, 1), min_size=2, max_size=2),
        st.integers(0, 600 * GB),
        st.one_of(st.none(), st.floats(5e9, 2e12)),
        st.one_of(st.none(), st.integers(1, 256)),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    fleet=hosts_strategy,
    model_index=st.integers(0, 10_000),
    quant_index=st.integers(0, 10_000),
    context=st.one_of(st.sampled_from(CONTEXTS), st.integers(1, 300_000)),
)
def test_the_prefilter_never_drops_a_host_the_full_estimate_places(
    catalog, budgets, fleet, model_index, quant_index, context
):
    model = catalog.models[model_index % len(catalog.models)]
    quant = catalog.quantizations[quant_index % len(catalog.quantizations)]
    bound = bound_for(model, quant, catalog, context)
    for name, shares, ram, bandwidth, cores in fleet:
        budget = host_budget(budgets[name], shares, ram, bandwidth, cores)
        e = estimate(
            model, quant, budget, catalog, Options(context=context)
        )  # the full estimate, as `recommend` makes it
        if usable_now(e):
            assert bound.admits(budget), (model.id, quant.name, context, name, budget)
        # the bound is below any placement's total, used or not
        if e.placement != "none":
            assert bound.min_bytes <= e.total_bytes


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    fleet=hosts_strategy,
    model_index=st.integers(0, 10_000),
    quant=st.sampled_from(("Q4_K_M", "Q8_0", "Q2_K", "F16", "IQ4_XS")),
    context=st.sampled_from(CONTEXTS[:6]),
)
def test_place_finds_the_same_places_with_and_without_the_prefilter(
    catalog, snapshots, fleet, model_index, quant, context
):
    model = catalog.models[model_index % len(catalog.models)]
    hosts = [
        HostFacts(
            target=f"10.0.0.{i}:8765",
            host=f"h{i}",
            up=True,
            ready=True,
            observed_at=0.0,
            snapshot=host_snapshot(snapshots[name], *rest),
        )
        for i, (name, *rest) in enumerate(fleet)
    ]
    fast = answers.place_answer(hosts, catalog, model.id, quant, context)
    full = answers.place_answer(hosts, catalog, model.id, quant, context, prefilter=False)
    assert [r for r in fast["placements"] if r["fits"]] == [r for r in full["placements"] if r["fits"]]
    assert fast["fits_anywhere"] == full["fits_anywhere"]
    if not full["fits_anywhere"]:  # then every host is estimated anyway, for the best partial offload
        assert fast["summary"] == full["summary"]
    assert fast["prefilter"]["estimated"] + fast["prefilter"]["filtered_out"] == len(hosts)


# ---------------------------------------------------------------- the PromQL rendering


def normalized(promql: str) -> str:
    return re.sub(r"\s+", " ", promql).replace("( ", "(").replace(" )", ")").strip()


def test_the_recording_rules_are_the_fleets_expressions():
    rules = yaml.safe_load((REPO / "config" / "fitagent-rules.yml").read_text())
    recorded = {r["record"]: r["expr"] for g in rules["groups"] for r in g["rules"]}
    assert normalized(recorded[RECORDED_BUDGET]) == normalized(budget_promql())
    assert normalized(recorded[RECORDED_CPU_BANDWIDTH]) == normalized(cpu_bandwidth_promql())


def test_the_speed_bound_of_hosts_without_gpus(catalog, budgets):
    from fitagent.estimator.candidates import place_candidate

    bound = bound_for(catalog.model("Llama-3.1-70B-Instruct"), catalog.quant("Q4_K_M"), catalog, 4096)
    assert 204.8e9 < bound.cpu_min_bandwidth < 2e12  # the fixture CPU box (205 GB/s) is too slow for it
    small = bound_for(catalog.model("Qwen2.5-0.5B-Instruct"), catalog.quant("Q4_K_M"), catalog, 4096)
    assert small.cpu_min_bandwidth < 51.2e9  # even the assumed dual-channel DDR4 runs it
    options = Options(context=4096, detail=False)
    model, quant = catalog.model("Llama-3.1-70B-Instruct"), catalog.quant("Q4_K_M")
    above = replace(budgets["cpu-only"], host_bandwidth_bytes_per_s=bound.cpu_min_bandwidth * 1.001, cpu_cores=1 << 20)
    assert place_candidate(model, quant, above, catalog, options).decode_tokens_per_s >= 5  # the bound is tight


def test_candidate_and_count_queries():
    s = 'job=~"fitagent"'
    memory_only = Bound("m", "q", 4096, 40 * GB)
    assert candidates_promql(memory_only, s, recorded=False) == f"({budget_promql(s)}) >= 40000000000"
    both = replace(memory_only, cpu_min_bandwidth=300e9)
    assert (
        candidates_promql(both, s, recorded=True)
        == f"({RECORDED_BUDGET}{{{s}}} >= 40000000000) unless on (job, instance) ({RECORDED_CPU_BANDWIDTH}{{{s}}} <= 300000000000)"
    )
    never = replace(memory_only, cpu_min_bandwidth=float("inf"))
    assert candidates_promql(never, s, recorded=True).endswith(
        f"unless on (job, instance) ({RECORDED_CPU_BANDWIDTH}{{{s}}})"
    )
    assert hosts_promql(s, recorded=True) == f"count by (job) ({RECORDED_BUDGET}{{{s}}})"


def random_host_series(rng: random.Random, instance: str) -> list[Sample]:
    """One host's budget series as an agent exports them: 0-3 GPUs, some not usable (MIG parents,
    hidden), free memory sometimes negative, RAM sometimes under a cgroup limit (or a limit of 0)."""
    samples = [
        Sample("fitagent_host_memory_available_bytes", {}, rng.randrange(0, 512) * GB),
        Sample("fitagent_host_cpu_cores", {}, 16),
    ]
    if rng.random() < 0.7:  # else unknown: the assumed 51.2 GB/s
        samples.append(
            Sample("fitagent_host_memory_bandwidth_bytes_per_second", {}, rng.choice((0, 38.4e9, 204.8e9, 819.2e9)))
        )
    if rng.random() < 0.3:
        samples.append(Sample("fitagent_host_memory_limit_bytes", {}, rng.choice((0, rng.randrange(1, 256) * GB))))
    for gpu in range(rng.choice((0, 0, 1, 1, 2, 3))):
        labels = {"gpu": str(gpu), "uuid": f"GPU-{instance}-{gpu}"}
        total = rng.choice((16, 24, 48, 80)) * GB
        free = rng.choice((-1000, rng.randrange(0, total), total))
        samples += [
            Sample("fitagent_gpu_info", {**labels, "name": "NVIDIA GeForce RTX 4090", "vendor": "nvidia"}, 1),
            Sample("fitagent_gpu_memory_total_bytes", labels, total),
            Sample("fitagent_gpu_memory_free_bytes", labels, free),
            Sample("fitagent_gpu_usable", labels, 1 if rng.random() < 0.8 else 0),
        ]
    return samples


def series_line(name: str, labels: dict, value: float) -> dict:
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": f"{value:.0f}x3"}


@pytest.mark.skipif(PROMTOOL is None, reason="promtool not on PATH (Debian: apt-get install prometheus)")
def test_promtool_evaluates_the_budget_and_the_filter_as_the_fleet_does(tmp_path, catalog):
    """Random fleets' series through promtool's PromQL engine: the inline budget, the recorded
    one and the filter give each host what ``budget_from_samples`` and ``could_fit`` give it."""
    rng = random.Random(17)
    tests = []
    selector = 'job="fitagent"'
    for case in range(25):
        hosts = {f"h{case}-{i}:8765": random_host_series(rng, f"h{case}-{i}") for i in range(rng.randrange(1, 7))}
        bound = Bound("m", "q", 4096, rng.randrange(0, 300) * GB, rng.choice((0.0, 51.2e9, 100e9, 300e9, float("inf"))))
        inputs, budget_rows, admitted_rows, bandwidth_rows = [], [], [], []
        for instance, samples in hosts.items():
            where = {"job": "fitagent", "instance": instance}
            inputs += [series_line(s.name, {**where, **s.labels}, s.value) for s in samples]
            budget = budget_from_samples(samples, catalog)
            labels = f'{{job="fitagent",instance="{instance}"}}'
            budget_rows.append({"labels": labels, "value": budget.budget_bytes})
            if not budget.devices:  # an exported bandwidth keeps its name through `> 0`; the assumed one has none
                exported = any(
                    s.name == "fitagent_host_memory_bandwidth_bytes_per_second" and s.value > 0 for s in samples
                )
                name = "fitagent_host_memory_bandwidth_bytes_per_second" if exported else ""
                bandwidth_rows.append({"labels": name + labels, "value": budget.host_bandwidth_bytes_per_s})
            if bound.admits(budget):
                admitted_rows.append({"labels": labels, "value": budget.budget_bytes})
        recorded_rows = [{"labels": f"{RECORDED_BUDGET}{row['labels']}", "value": row["value"]} for row in budget_rows]
        admitted_recorded = [
            {"labels": f"{RECORDED_BUDGET}{row['labels']}", "value": row["value"]} for row in admitted_rows
        ]
        tests.append(
            {
                "interval": "1m",
                "input_series": inputs,
                "promql_expr_test": [
                    {"expr": budget_promql(selector), "eval_time": "2m", "exp_samples": budget_rows},
                    {"expr": RECORDED_BUDGET, "eval_time": "2m", "exp_samples": recorded_rows},
                    {"expr": cpu_bandwidth_promql(selector), "eval_time": "2m", "exp_samples": bandwidth_rows},
                    {
                        "expr": candidates_promql(bound, selector, recorded=False),
                        "eval_time": "2m",
                        "exp_samples": admitted_rows,
                    },
                    {
                        "expr": candidates_promql(bound, selector, recorded=True),
                        "eval_time": "2m",
                        "exp_samples": admitted_recorded,
                    },
                ],
            }
        )
    path = tmp_path / "fleet_budget_test.yml"
    path.write_text(
        yaml.safe_dump(
            {"rule_files": [str(REPO / "config" / "fitagent-rules.yml")], "evaluation_interval": "1m", "tests": tests},
            sort_keys=False,
        )
    )
    result = subprocess.run([PROMTOOL, "test", "rules", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
