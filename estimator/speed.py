"""Decode and prefill speed of a placed model.

Decode is memory-bound: each token reads the active weights (MoE: only the routed experts
and the shared ones) and the KV cache up to the current depth, from wherever they sit, at
that memory's effective bandwidth. Prefill is compute-bound: 2 FLOPs per active parameter
per token plus attention, at a share of the device's FLOPS; weights left in RAM are
streamed to the GPU once per micro-batch.
"""

from __future__ import annotations

import math

from .budget import Budget
from .calibration import Calibration
from .catalog import Architecture
from .placement import Need, Placement


def active_layer_bytes(need: Need, arch: Architecture) -> float:
    """Bytes one decode step reads from one average layer's weights."""
    experts = need.expert_bytes_per_layer * need.moe_layers / need.layers
    read = experts * arch.experts_per_token / arch.experts if arch.experts else 0.0
    return need.weights.per_layer_bytes - experts + read


def _seconds(read_bytes: float, bandwidth: float | None, efficiency: float) -> float | None:
    if read_bytes <= 0:
        return 0.0
    return read_bytes / (bandwidth * efficiency) if bandwidth else None


def decode_tokens_per_s(
    need: Need,
    placement: Placement,
    arch: Architecture,
    kv_read_bytes: float,
    budget: Budget,
    calibration: Calibration,
) -> float | None:
    """Tokens/s of one decode stream: layers on several GPUs run one after another."""
    if placement.mode == "none":
        return None
    per_layer = active_layer_bytes(need, arch) + kv_read_bytes / need.layers
    expert_fraction = arch.experts_per_token / arch.experts if arch.experts else 0.0
    moved = placement.n_cpu_moe * need.expert_bytes_per_layer * expert_fraction
    all_on_gpu = bool(placement.shares) and placement.gpu_layers == need.layers
    gpu_times = []
    for i, share in enumerate(placement.shares):
        read = share.layers * per_layer
        if all_on_gpu and (placement.tensor_parallel or i == len(placement.shares) - 1):
            read += need.weights.head_bytes
        if placement.tensor_parallel:
            read /= len(placement.shares)
        if i == 0:
            read -= moved  # --n-cpu-moe runs on one GPU
        efficiency = calibration.gpu_decode_efficiency.get(share.device.vendor, 0.5)
        gpu_times.append(_seconds(read, share.device.bandwidth_bytes_per_s, efficiency))
    host_read = (need.layers - placement.gpu_layers) * per_layer + moved
    if not all_on_gpu:
        host_read += need.weights.head_bytes  # the head (the embedding matrix when tied) is read in RAM
    host_time = _seconds(host_read, budget.host_bandwidth_bytes_per_s, calibration.cpu_decode_efficiency)
    if host_time is None or any(t is None for t in gpu_times):
        return None
    if placement.tensor_parallel:
        gpu_time = max(gpu_times) / calibration.tensor_parallel_efficiency
    else:
        gpu_time = sum(gpu_times)
    seconds = gpu_time + host_time
    return 1.0 / seconds if seconds > 0 else None


def prefill_flops_per_token(arch: Architecture, active_params: float, prompt_tokens: int) -> float:
    """2 FLOPs per active weight, plus causal attention over on average half the prompt."""
    full_layers = arch.layers - arch.sliding_window_layers
    swa_depth = min(prompt_tokens, arch.sliding_window or 0)
    if arch.uses_mla:
        qk_dim = arch.qk_nope_head_dim + arch.qk_rope_head_dim
        attn_dim = arch.attention_heads * (qk_dim + arch.v_head_dim)
    else:
        attn_dim = 2 * arch.attention_heads * arch.head_dim
    attention = attn_dim * (full_layers * prompt_tokens + arch.sliding_window_layers * swa_depth)
    return 2 * active_params + attention


def prefill_tokens_per_s(
    need: Need,
    placement: Placement,
    arch: Architecture,
    active_params: float,
    prompt_tokens: int,
    budget: Budget,
    calibration: Calibration,
) -> float | None:
    if placement.mode == "none" or prompt_tokens <= 0:
        return None
    flops = prefill_flops_per_token(arch, active_params, prompt_tokens) * prompt_tokens
    if placement.mode == "cpu" or not placement.shares:
        rate = budget.cpu_cores * calibration.cpu_flops_per_core
        return prompt_tokens / (flops / rate)
    seconds = 0.0
    for share in placement.shares:
        device = share.device
        if not device.fp16_flops:
            return None
        fraction = 1 / len(placement.shares) if placement.tensor_parallel else share.layers / need.layers
        rate = device.fp16_flops * calibration.gpu_prefill_efficiency.get(device.vendor, 0.3)
        here = flops * fraction / rate
        seconds = max(seconds, here / calibration.tensor_parallel_efficiency) if placement.tensor_parallel else seconds + here
    if placement.gpu_layers < need.layers or placement.n_cpu_moe:
        # llama.cpp runs the CPU-resident layers' matmuls on the GPU for large batches,
        # uploading their weights once per micro-batch.
        fastest = max(placement.shares, key=lambda s: s.device.fp16_flops or 0).device
        host_layers = need.layers - placement.gpu_layers
        seconds += flops * host_layers / need.layers / (fastest.fp16_flops * calibration.gpu_prefill_efficiency.get(fastest.vendor, 0.3))
        uploads = math.ceil(prompt_tokens / calibration.n_ubatch)
        seconds += (placement.host_weights_bytes - need.weights.embedding_bytes) * uploads / calibration.pcie_bytes_per_s
    return prompt_tokens / seconds if seconds > 0 else None
