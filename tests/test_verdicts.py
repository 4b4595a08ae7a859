"""Two verdicts, consistent everywhere: `fits` (the whole model against the budget, ⇔ headroom ≥ 0)
and `loads` (the placement chosen or forced holds on every device and in host RAM)."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fitagent.estimator.budget import Budget, Device
from fitagent.estimator.estimate import estimate
from fitagent.estimator.results import SAFE_HEADROOM_BYTES, Options

GB = 10**9
MODELS = (
    "meta-llama/Llama-3.1-8B-Instruct",
    "meta-llama/Llama-3.1-70B-Instruct",
    "mistralai/Mixtral-8x7B-Instruct-v0.1",
    "Qwen/Qwen3-30B-A3B",
    "google/gemma-3-27b-it",
    "deepseek-ai/DeepSeek-V2-Lite-Chat",
    "openai/gpt-oss-20b",
    "microsoft/Phi-3-mini-4k-instruct",
)
QUANTS = ("Q2_K", "Q3_K_M", "Q4_K_M", "Q6_K", "Q8_0", "F16", "IQ2_XXS")


def _device(i: int, free_gb: float, total_gb: float) -> Device:
    return Device(
        id=f"gpu{i}",
        name=f"GPU {i}",
        vendor="nvidia",
        free_bytes=int(free_gb * GB),
        total_bytes=int(max(free_gb, total_gb) * GB),
        bandwidth_bytes_per_s=900e9,
        fp16_flops=80e12,
        memory_type="GDDR6X",
    )


budgets = st.builds(
    lambda frees, ram: Budget(tuple(_device(i, f, f + 1) for i, f in enumerate(frees)), int(ram * GB), 60e9, 8),
    st.lists(st.floats(0.5, 90), min_size=0, max_size=3),
    st.floats(2, 300),
)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    model=st.sampled_from(MODELS),
    quant=st.sampled_from(QUANTS),
    context=st.sampled_from((512, 4096, 32768)),
    budget=budgets,
    forced=st.one_of(st.none(), st.tuples(st.sampled_from(("layers", "moe")), st.integers(0, 100))),
)
def test_fits_loads_and_speed_agree(catalog, model, quant, context, budget, forced):
    m = catalog.model(model)
    options = Options(context=context)
    if forced and forced[0] == "layers":
        options = Options(context=context, gpu_layers=forced[1])
    elif forced and m.is_moe:
        options = Options(context=context, n_cpu_moe=forced[1])
    e = estimate(m, catalog.quant(quant), budget, catalog, options)
    assert e.headroom_bytes == e.budget_bytes - e.total_bytes
    assert e.fits == (e.headroom_bytes >= 0)
    assert e.safe == (e.fits and e.loads and e.headroom_bytes > SAFE_HEADROOM_BYTES)
    placed_ok = all(d.bytes <= d.free_bytes for d in e.devices) and e.host_bytes <= budget.host_available_bytes
    assert e.loads == (e.placement != "none" and placed_ok)
    if not e.loads:
        assert e.placement == "none" and e.decode_tokens_per_s is None and e.prefill_tokens_per_s is None
    else:
        assert e.decode_tokens_per_s is not None and e.decode_tokens_per_s > 0


# ---------------------------------------------------------------- the examples, through the CLI


def _estimate(cli, snapshot_path, *args):
    out = cli("estimate", "--hardware", snapshot_path("rtx4090"), "--json", *args)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_forcing_every_layer_of_a_70b_on_a_4090_does_not_load(cli, snapshot_path):
    e = _estimate(cli, snapshot_path, "--model", "llama3.1-70b", "--gpu-layers", "80")
    assert (e["loads"], e["placement"], e["decode_tokens_per_s"], e["fits"]) == (False, "none", None, False)
    assert any("NVIDIA GeForce RTX 4090 needs 45.39 GB for 80 layers, 24.90 GB free" in n for n in e["notes"])
    most = next(n for n in e["notes"] if n.startswith("at most"))
    layers = int(most.split()[2])
    fewer = _estimate(cli, snapshot_path, "--model", "llama3.1-70b", "--gpu-layers", str(layers))
    more = _estimate(cli, snapshot_path, "--model", "llama3.1-70b", "--gpu-layers", str(layers + 1))
    assert fewer["loads"] and fewer["placement"] == "partial_offload" and not more["loads"]
    human = cli("estimate", "--hardware", snapshot_path("rtx4090"), "--model", "llama3.1-70b", "--gpu-layers", "80")
    assert "does not load" in human.stdout and "entirely on GPU" not in human.stdout and "tokens/s" not in human.stdout


def test_too_few_experts_in_ram_does_not_load(cli, snapshot_path):
    e = _estimate(cli, snapshot_path, "--model", "mixtral-8x7b", "--n-cpu-moe", "4")
    assert (e["loads"], e["placement"], e["decode_tokens_per_s"]) == (False, "none", None)
    hint = next(n for n in e["notes"] if "--n-cpu-moe" in n)
    k = int(hint.rsplit("--n-cpu-moe ", 1)[1].rstrip(")"))
    ok = _estimate(cli, snapshot_path, "--model", "mixtral-8x7b", "--n-cpu-moe", str(k))
    assert ok["loads"] and ok["decode_tokens_per_s"] > 0


def test_a_small_model_forced_partly_to_ram_fits_and_says_so(cli, snapshot_path):
    e = _estimate(cli, snapshot_path, "--model", "llama3.1-8b", "--gpu-layers", "20")
    assert e["fits"] and e["loads"] and e["placement"] == "partial_offload" and e["headroom_bytes"] > 17e9
    human = cli(
        "estimate", "--hardware", snapshot_path("rtx4090"), "--model", "llama3.1-8b", "--gpu-layers", "20"
    ).stdout
    fit_line = next(line for line in human.splitlines() if line.startswith("fit "))
    assert "fits:" in fit_line and "does not fit" not in fit_line


def test_a_total_over_the_budget_never_fits(cli, snapshot_path, tmp_path):
    # The example: llama4-scout IQ1_S, 24.98 GB, "fits, headroom 0.3 GB" on a 24.9 GB budget.
    # The same situation built exactly: free memory between what the card must hold and the whole
    # total, so every layer loads (the embedding table stays in RAM) but the total exceeds the budget.
    whole = _estimate(cli, snapshot_path, "--model", "llama3.1-8b")
    data = json.loads(open(snapshot_path("rtx4090")).read())
    free = whole["total_bytes"] - whole["host_bytes"] // 2
    data["gpus"][0]["memory_free_bytes"] = free
    data["gpus"][0]["memory_used_bytes"] = data["gpus"][0]["memory_total_bytes"] - free
    path = tmp_path / "tight.json"
    path.write_text(json.dumps(data))
    out = cli("estimate", "--hardware", str(path), "--model", "llama3.1-8b", "--json")
    e = json.loads(out.stdout)
    assert e["total_bytes"] > e["budget_bytes"] and e["fits"] is False and e["headroom_bytes"] < 0
    assert e["loads"] and e["placement"] == "gpu" and any("embedding table" in n for n in e["notes"])
    human = cli("estimate", "--hardware", str(path), "--model", "llama3.1-8b").stdout
    assert "does not fit whole" in human and "fits:" not in human


@pytest.mark.parametrize("method", ["default", "seed"])
def test_recommendation_frontiers_hold_only_what_fits(cli, snapshot_path, method):
    out = cli("recommend", "--hardware", snapshot_path("rtx4090"), "--method", method, "--json")
    data = json.loads(out.stdout)
    for points in data["frontiers"].values():
        assert all(p["fits"] and p["loads"] and p["headroom_bytes"] >= 0 for p in points)
