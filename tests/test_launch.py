"""Runtime flags from a placed candidate: llama.cpp, Ollama, vLLM (pure, hand-made estimates)."""

from __future__ import annotations

from fitagent.estimator.budget import Device
from fitagent.estimator.launch import (
    gpu_layers_flag,
    launch_settings,
    llama_cpp_args,
    ollama_settings,
    vllm_settings,
)
from fitagent.estimator.results import DeviceUse, Estimate

GB = 1_000_000_000
GIB = 1024**3


def gpu(i: int, free: int, total: int = 24 * GIB) -> Device:
    return Device(
        id=f"GPU-{i}",
        name=f"Test GPU {i}",
        vendor="nvidia",
        free_bytes=free,
        total_bytes=total,
        bandwidth_bytes_per_s=1e12,
        fp16_flops=1e14,
    )


def est(placement="gpu", gpu_layers=64, total_layers=64, devices=(), context=16384, **extra) -> Estimate:
    base = dict(
        model="Qwen/Qwen2.5-32B-Instruct",
        quant="Q4_K_M",
        context=context,
        method="default",
        use_case="general",
        weights_bytes=19 * GB,
        kv_cache_bytes=2 * GB,
        overhead_bytes=1 * GB,
        total_bytes=22 * GB,
        budget_bytes=24 * GB,
        fits=placement == "gpu",
        safe=False,
        headroom_bytes=2 * GB,
        placement=placement,
        gpu_layers=gpu_layers,
        total_layers=total_layers,
        decode_tokens_per_s=30.0,
        prefill_tokens_per_s=900.0,
        time_to_first_token_s=0.6,
        quality=70.0,
        efficiency=1.0,
        params_total=32_000_000_000,
        params_active=32_000_000_000,
        moe=False,
        devices=tuple(devices),
    )
    return Estimate(**{**base, **extra})


def use(d: Device, layers: int, nbytes: int) -> DeviceUse:
    return DeviceUse(d.id, d.name, layers, nbytes, d.free_bytes)


def test_whole_model_on_one_gpu():
    g = gpu(0, free=23 * GIB)
    e = est(devices=[use(g, 64, 22 * GIB)])
    assert llama_cpp_args(e, [g]) == ["-ngl", "65", "-c", "16384"]  # 64 layers + the output layer
    assert ollama_settings(e) == {"options": {"num_gpu": 65, "num_ctx": 16384}, "environment": {}}
    vllm = vllm_settings(e, [g])
    # (22 GiB + 1 GiB margin) / 24 GiB = 0.9583 -> 0.96, but only (23 GiB - 256 MiB) / 24 GiB = 0.9479 is free -> 0.94
    assert vllm["gpu_memory_utilization"] == 0.94
    assert vllm["fits"] is False
    assert vllm["args"] == [
        "--gpu-memory-utilization",
        "0.94",
        "--max-model-len",
        "16384",
        "--tensor-parallel-size",
        "1",
    ]


def test_vllm_utilization_is_what_the_candidate_needs_when_more_is_free():
    g = gpu(0, free=int(23.5 * GIB))
    e = est(devices=[use(g, 64, 12 * GIB)])
    vllm = vllm_settings(e, [g])
    assert vllm["gpu_memory_utilization"] == 0.55  # (12 + 1) / 24 = 0.5417, rounded up
    assert vllm["fits"] is True and vllm["note"] is None


def test_partial_offload_sets_layers_and_leaves_vllm_out():
    g = gpu(0, free=12 * GIB)
    e = est(placement="partial_offload", gpu_layers=40, devices=[use(g, 40, 11 * GIB)])
    assert llama_cpp_args(e, [g]) == ["-ngl", "40", "-c", "16384"]
    assert ollama_settings(e)["options"] == {"num_gpu": 40, "num_ctx": 16384}
    assert vllm_settings(e, [g])["args"] is None


def test_moe_experts_in_ram():
    g = gpu(0, free=12 * GIB)
    e = est(
        placement="partial_offload",
        gpu_layers=48,
        total_layers=48,
        n_cpu_moe=20,
        moe=True,
        devices=[use(g, 48, 11 * GIB)],
    )
    assert llama_cpp_args(e, [g]) == ["-ngl", "49", "-c", "16384", "--n-cpu-moe", "20"]


def test_quantized_kv_cache_needs_flash_attention():
    g = gpu(0, free=23 * GIB)
    e = est(kv_quant="q8_0", devices=[use(g, 64, 20 * GIB)])
    assert llama_cpp_args(e, [g]) == ["-ngl", "65", "-c", "16384", "-ctk", "q8_0", "-ctv", "q8_0", "-fa", "on"]
    assert ollama_settings(e)["environment"] == {"OLLAMA_FLASH_ATTENTION": "1", "OLLAMA_KV_CACHE_TYPE": "q8_0"}


def test_layer_split_over_two_gpus_in_runtime_order():
    a, b = gpu(0, free=20 * GIB), gpu(1, free=23 * GIB)
    # the estimate lists the roomier GPU first; -ts is positional in CUDA order
    e = est(total_layers=80, gpu_layers=80, devices=[use(b, 43, 21 * GIB), use(a, 37, 19 * GIB)])
    assert llama_cpp_args(e, [a, b]) == ["-ngl", "81", "-c", "16384", "-ts", "37,43"]
    vllm = vllm_settings(e, [a, b])
    assert vllm["args"][-2:] == ["--tensor-parallel-size", "2"]
    # tensor parallel halves the 40 GiB: (20 + 1) / 24 = 0.875 -> 0.88; GPU 0 has (20 GiB - 256 MiB) / 24 = 0.8229 free
    assert vllm["gpu_memory_utilization"] == 0.82 and vllm["fits"] is False


def test_one_gpu_of_two_keeps_the_other_free():
    a, b = gpu(0, free=2 * GIB), gpu(1, free=23 * GIB)
    e = est(devices=[use(b, 64, 20 * GIB)])
    assert llama_cpp_args(e, [a, b]) == ["-ngl", "65", "-c", "16384", "-sm", "none", "-mg", "1"]


def test_cpu_only():
    e = est(placement="cpu", gpu_layers=0, devices=[])
    assert gpu_layers_flag(e) == 0
    settings = launch_settings(e, [])
    assert settings["llama_cpp"]["args"] == ["-ngl", "0", "-c", "16384"]
    assert settings["ollama"]["options"]["num_gpu"] == 0
    assert settings["vllm"]["args"] is None


def test_a_tensor_parallel_estimate_still_gets_llama_cpps_layer_split():
    """llama.cpp's row split decodes slower than its layer split (4 × RTX 4090, 70B Q4_K_M, tg128:
    17.56 against 21.23 t/s, llama.cpp PR #19378), so `--multi-gpu tensor` (vLLM's way) never
    sends a llama.cpp user to `-sm row`."""
    a, b = gpu(0, free=23 * GIB), gpu(1, free=23 * GIB)
    e = est(total_layers=80, gpu_layers=80, tensor_parallel=True, devices=[use(a, 80, 20 * GIB), use(b, 80, 20 * GIB)])
    assert llama_cpp_args(e, [a, b]) == ["-ngl", "81", "-c", "16384", "-ts", "80,80"]
