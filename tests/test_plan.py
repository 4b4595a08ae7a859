"""`fitagent plan`: the hardware a model needs, each figure the estimator's own answer on imagined
hardware (seed 000 §8: "which GPU reaches 30 tokens/s")."""

from __future__ import annotations

import json

import pytest

from fitagent.catalog.errors import UsageError
from fitagent.estimator.budget import Budget, device_from_spec
from fitagent.estimator.estimate import estimate
from fitagent.estimator.plan import plan
from fitagent.estimator.results import Options


@pytest.fixture(scope="module")
def l70(catalog):
    return plan(catalog.model("llama3.1-70b"), catalog.quant("Q4_K_M"), catalog, 8192, target_tokens_per_s=30)


def on(catalog, spec_name, count, model="llama3.1-70b", context=8192):
    spec = catalog.gpu(spec_name)
    budget = Budget(tuple(device_from_spec(spec, i) for i in range(count)), 10**15, 100e9, 16)
    return estimate(catalog.model(model), catalog.quant("Q4_K_M"), budget, catalog, Options(context=context))


def test_the_gpu_memory_needed_is_what_one_big_gpu_would_hold(catalog, l70):
    h200 = on(catalog, "H200 SXM", 1)
    assert h200.placement == "gpu" and l70.gpu_bytes == h200.total_bytes
    assert l70.gpu_bytes_comfortable == l70.gpu_bytes + 1_000_000_000
    assert 42e9 < l70.gpu_bytes < 50e9  # 42.5 GB of Q4_K_M weights, 2.7 GB of KV cache, buffers


def test_every_option_holds_the_model_whole_and_the_cheapest_memory_comes_first(catalog, l70):
    assert l70.options
    for option in l70.options[:40]:
        e = on(catalog, option.gpu, option.count)
        assert option.fits and e.fits and e.placement == "gpu", option
        assert option.decode_tokens_per_s == pytest.approx(e.decode_tokens_per_s, rel=1e-6)
    reaching = [o for o in l70.options if o.reaches_target]
    below = [o for o in l70.options if o.reaches_target is False]
    assert l70.options == tuple(reaching + below)
    assert [o.memory_bytes for o in reaching] == sorted(o.memory_bytes for o in reaching)
    # a single 24 GB card cannot hold a 46 GB model; two RTX 5090s can, and reach 30 tokens/s
    assert not any(o.gpu == "NVIDIA GeForce RTX 4090" and o.count == 1 for o in l70.options)
    assert any(o.gpu == "NVIDIA GeForce RTX 5090" and o.count == 2 and o.reaches_target for o in l70.options)


def test_the_bandwidth_needed_separates_the_gddr_boards_that_reach_the_target(catalog, l70):
    needed = l70.bandwidth_bytes_per_s
    assert 1.2e12 < needed < 2.2e12  # ~40 GB read per token at 30 tokens/s, at ~86 % of peak
    checked = 0
    for option in l70.options:
        spec = catalog.gpu(option.gpu)
        if option.count != 1 or spec.vendor != "nvidia" or spec.memory_type is None or "HBM" in spec.memory_type:
            continue
        if abs(spec.memory_bandwidth_bytes_per_s / needed - 1) < 0.01:
            continue  # too close to the line to call
        assert option.reaches_target == (spec.memory_bandwidth_bytes_per_s > needed), option
        checked += 1
    assert checked >= 3


def test_sessions_share_one_kv_cache_and_one_read_of_the_weights(catalog):
    model, quant = catalog.model("llama3.1-8b"), catalog.quant("Q8_0")
    four = plan(model, quant, catalog, 8192, concurrency=4)
    one_long = plan(model, quant, catalog, 32768)
    assert four.gpu_bytes == one_long.gpu_bytes  # -np 4 -c 32768
    single = plan(model, quant, catalog, 8192)
    for batched in four.options[:10]:
        alone = next(o for o in single.options if (o.gpu, o.count) == (batched.gpu, batched.count))
        # each step reads the weights once for all four, so together they beat one session ...
        assert batched.aggregate_tokens_per_s > 2 * alone.decode_tokens_per_s
        # ... but each session is slower than alone, and four are less than four times one
        assert batched.decode_tokens_per_s < alone.decode_tokens_per_s
        assert batched.aggregate_tokens_per_s < 4 * alone.decode_tokens_per_s


def test_what_is_not_modelled_is_refused_in_one_line(catalog):
    model, quant = catalog.model("llama3.1-8b"), catalog.quant("Q4_K_M")
    with pytest.raises(UsageError, match="choose one of llama.cpp, vllm, sglang, mlx, exllamav2, exllamav3"):
        plan(model, quant, catalog, 8192, runtime="tgi")
    with pytest.raises(UsageError, match="plans EXL2 branches"):
        plan(model, quant, catalog, 8192, runtime="exllamav2")
    with pytest.raises(UsageError, match="plans MLX checkpoints"):
        plan(model, quant, catalog, 8192, runtime="mlx")
    with pytest.raises(UsageError, match="Q4_K_M is a GGUF type"):
        plan(model, quant, catalog, 8192, runtime="vllm")
    with pytest.raises(UsageError, match="--concurrency"):
        plan(model, quant, catalog, 8192, concurrency=0)


def test_the_json_contract(cli):
    result = cli("plan", "--model", "llama3.1-8b", "--context", "8k", "--target-tps", "100", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert {"model", "quant", "context", "runtime", "needs", "options"} <= set(data)
    assert set(data["needs"]) >= {"gpu_bytes", "host_bytes", "bandwidth_bytes_per_s"}
    assert {"gpu", "count", "fits", "decode_tokens_per_s", "aggregate_tokens_per_s"} <= set(data["options"][0])
    bad = cli("plan", "--model", "llama3.1-8b", "--runtime", "exllamav2", "--quant", "Q4_K_M")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "plans EXL2 branches" in bad.stderr


def test_vllm_plan_is_the_vllm_estimate_on_each_gpu(catalog):
    """`plan --runtime vllm`: the GPU memory whose 0.9 share holds the weights, the profile's reserves
    and 32 × 8K KV tokens; each option is estimator.vllm's answer on those GPUs, tensor parallel."""
    from fitagent.estimator.budget import device_from_spec
    from fitagent.estimator.vllm import ServeSettings, serve_estimate

    model, quant = catalog.model("llama3.1-8b"), catalog.quant("BF16")
    answer = plan(model, quant, catalog, 8192, runtime="vllm", concurrency=32, target_tokens_per_s=50)
    gib = 1024**3
    sampler = 32 * 128_256 * 34  # the profile's sampler pass over --max-num-seqs 32 rows of logits
    activations = int(0.12 * gib) + 2048 * 2 * (6 * 4096 + 2 * 14336) + sampler
    reserves = 16_061_054_976 + int(0.3 * gib) + activations + int(0.5 * gib)
    assert answer.gpu_bytes == -(-(reserves + 131_072 * 8192 * 32) // 0.9)
    assert answer.host_bytes == 16_061_054_976 and answer.runtime == "vllm"
    h100 = next(o for o in answer.options if o.gpu == "NVIDIA H100 80GB HBM3")
    same = serve_estimate(
        model,
        quant,
        (device_from_spec(catalog.gpu("H100 80GB HBM3")),),
        catalog,
        ServeSettings(max_model_len=8192, concurrency=32, tensor_parallel_size=1),
    )
    assert (h100.count, h100.decode_tokens_per_s, h100.aggregate_tokens_per_s) == (
        1,
        same.per_user_tokens_per_s,
        same.aggregate_tokens_per_s,
    )
    assert h100.reaches_target is True
    # no Apple or Intel GPU: vLLM runs on CUDA and ROCm
    assert not any(o.gpu.startswith(("Apple", "Intel")) for o in answer.options)
    assert any("cannot run BF16 under vLLM" in n for n in answer.notes)
