"""Ready-to-run runtime settings for one placed candidate: llama.cpp, Ollama and vLLM.

Pure functions of an Estimate and the devices it was placed on. ``devices`` must be in
the runtime's device order (CUDA ordinal), because ``-ts``, ``-mg`` and vLLM's ranks are
positional.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .budget import Device
from .results import Estimate

# llama.cpp's --fit keeps 1024 MiB free on each device (peers.md, "llama.cpp --fit");
# vLLM gets the same margin on top of what the estimate needs.
VLLM_MARGIN_BYTES = 1024 * 1024 * 1024
# vLLM refuses to start when free memory is below utilization × total; leave a little
# for whatever allocates between our scan and its start.
VLLM_FREE_SLACK_BYTES = 256 * 1024 * 1024
KV_TYPES_NEEDING_FLASH_ATTENTION = ("q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "iq4_nl")


def _all_layers(est: Estimate) -> int:
    # llama.cpp counts the output layer as one more: n_layer + 1 offloads everything.
    return est.total_layers + 1


def gpu_layers_flag(est: Estimate) -> int:
    """The value of -ngl / num_gpu: every layer (plus output) when all are on a GPU."""
    if est.placement == "cpu" or not est.devices:
        return 0
    if est.gpu_layers >= est.total_layers:
        return _all_layers(est)
    return est.gpu_layers


def _device_layers(est: Estimate, devices: Sequence[Device]) -> list[int]:
    by_id = {d.id: d.layers for d in est.devices}
    return [by_id.get(d.id, 0) for d in devices]


def llama_cpp_args(est: Estimate, devices: Sequence[Device]) -> list[str]:
    args = ["-ngl", str(gpu_layers_flag(est)), "-c", str(est.context)]
    if est.n_cpu_moe:
        args += ["--n-cpu-moe", str(est.n_cpu_moe)]
    kv = est.kv_quant.lower()
    if kv != "f16":
        args += ["-ctk", kv, "-ctv", kv]
        if kv in KV_TYPES_NEEDING_FLASH_ATTENTION:
            args += ["-fa", "on"]  # a quantized V cache needs flash attention in llama.cpp
    if len(devices) > 1 and est.devices:
        layers = _device_layers(est, devices)
        used = [i for i, n in enumerate(layers) if n]
        if len(used) == 1:
            args += ["-sm", "none", "-mg", str(used[0])]  # one GPU of several: keep the others free
        else:
            # A tensor-parallel estimate (vLLM's way) still gets llama.cpp's layer split. Its row split
            # decodes slower on current rigs (4 × RTX 4090, 70B Q4_K_M, tg128: 17.56 against 21.23 t/s and
            # prompts 4× slower, llama.cpp PR #19378; 8 × A100: 7.1 against 23.4) and helps only some
            # older ones (3 × P40, ollama#5458); its tensor split pays off only deep in a long context.
            args += ["-ts", ",".join(str(n) for n in layers)]
    return args


def ollama_settings(est: Estimate) -> dict:
    env = {}
    kv = est.kv_quant.lower()
    if kv != "f16":
        # Ollama sets the KV type server-wide, and only with flash attention on.
        env = {"OLLAMA_FLASH_ATTENTION": "1", "OLLAMA_KV_CACHE_TYPE": kv}
    return {"options": {"num_gpu": gpu_layers_flag(est), "num_ctx": est.context}, "environment": env}


def vllm_settings(est: Estimate, devices: Sequence[Device]) -> dict:
    """--gpu-memory-utilization from this candidate's share of each GPU, capped by what is free."""
    used = [d for d in devices if d.id in {u.id for u in est.devices}]
    if est.placement != "gpu" or not used:
        return {
            "args": None,
            "fits": False,
            "note": "vLLM needs the whole model on GPUs; this placement keeps part of it in host RAM",
        }
    parallel = len(used)
    if parallel > 1 and not est.tensor_parallel:
        per_gpu = math.ceil(sum(u.bytes for u in est.devices) / parallel)  # vLLM's tensor parallel splits evenly
    else:
        per_gpu = max(u.bytes for u in est.devices)
    need = max((per_gpu + VLLM_MARGIN_BYTES) / d.total_bytes for d in used)
    cap = min((d.free_bytes - VLLM_FREE_SLACK_BYTES) / d.total_bytes for d in used)
    fits = need <= cap
    # Enough for this candidate, never more than is free now (vLLM fills its share with KV cache).
    utilization = min(math.ceil(need * 100) / 100, math.floor(cap * 100) / 100)
    utilization = max(0.01, min(utilization, 0.99))
    args = [
        "--gpu-memory-utilization",
        f"{utilization:.2f}",
        "--max-model-len",
        str(est.context),
        "--tensor-parallel-size",
        str(parallel),
    ]
    note = None
    if not fits:
        note = (
            f"vLLM needs about {need:.2f} of each GPU's memory but only {cap:.2f} is free; "
            "it would fail to start or run short of KV cache"
        )
    return {"args": args, "gpu_memory_utilization": utilization, "fits": fits, "note": note}


def launch_settings(est: Estimate, devices: Sequence[Device]) -> dict:
    """All three runtimes' settings for one candidate, as JSON-ready values."""
    return {
        "llama_cpp": {"args": llama_cpp_args(est, devices)},
        "ollama": ollama_settings(est),
        "vllm": vllm_settings(est, devices),
    }
