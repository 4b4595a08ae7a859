"""Decode and prefill speed of a placed model.

Decode is memory-bound: each token reads the active weights (MoE: only the routed experts
and the shared ones) and the KV cache up to the current depth, from wherever they sit, at
that memory's effective bandwidth, plus a fixed cost per layer (kernel launches and
synchronisation, which dominate small models on fast GPUs). Prefill is compute-bound: 2 FLOPs
per active parameter per token plus attention, at a share of the device's FLOPS; weights left
in RAM are streamed to the GPU once per micro-batch, and a micro-batch reads every expert it
touches.

Both are written as a sum of terms — (seconds at peak, or a count) × a calibrated constant —
so the same terms serve the estimate and the fit of the constants (benchmarks/accuracy.py).
"""

from __future__ import annotations

import math

from .budget import Budget, Device
from .calibration import Calibration
from .catalog import Architecture
from .placement import Need, Placement
from .tensors import routed_active_parameter_count


def device_class(device: Device) -> str:
    """The efficiency class of a GPU: its vendor, with HBM and unified memory told apart."""
    if device.vendor == "apple":
        return "apple"
    if device.unified:
        return f"{device.vendor}-unified"
    if (device.memory_type or "").upper().startswith("HBM"):
        return f"{device.vendor}-hbm"
    return device.vendor


def active_layer_bytes(need: Need, arch: Architecture) -> float:
    """Bytes one decode step reads from one average layer's weights."""
    experts = need.expert_bytes_per_layer * need.moe_layers / need.layers
    read = experts * arch.experts_per_token / arch.experts if arch.experts else 0.0
    return need.weights.per_layer_bytes - experts + read


def _add(terms: dict[str, float], key: str, value: float) -> None:
    if value:
        terms[key] = terms.get(key, 0.0) + value


def decode_terms(
    need: Need, placement: Placement, arch: Architecture, kv_read_bytes: float, budget: Budget
) -> dict[str, float] | None:
    """What one decode step costs, as terms the calibration prices (None if a bandwidth is unknown).

    ``bytes:<class>`` — bytes a GPU reads ÷ its peak bandwidth (seconds at 100 %), priced at
    1/efficiency; ``layers:gpu`` — layers run on GPUs, priced at a fixed time per layer.
    Layers on several GPUs run one after another (llama.cpp's layer split); tensor parallel
    runs them at once. Work left on the CPU: ``host_bytes`` read from RAM (with the host's
    ``host_peak_bw`` and ``host_cores``, which bound the rate it reaches) and ``layers:cpu``,
    layers whose work crosses to the CPU and back.
    """
    if placement.mode == "none":
        return None
    per_layer = active_layer_bytes(need, arch) + kv_read_bytes / need.layers
    expert_fraction = arch.experts_per_token / arch.experts if arch.experts else 0.0
    moved = placement.n_cpu_moe * need.expert_bytes_per_layer * expert_fraction
    all_on_gpu = bool(placement.shares) and placement.gpu_layers == need.layers
    terms: dict[str, float] = {}
    shares = placement.shares
    if placement.tensor_parallel:
        shares = (min(shares, key=lambda s: s.device.bandwidth_bytes_per_s or 0),)  # the slowest sets the pace
    for i, share in enumerate(shares):
        read = share.layers * per_layer + (need.weights.head_bytes if share.holds_head else 0)
        if placement.tensor_parallel:
            read /= len(placement.shares)
        if i == 0:
            read -= moved  # --n-cpu-moe runs on one GPU
        bandwidth = share.device.bandwidth_bytes_per_s
        if not bandwidth:
            return None
        _add(terms, f"bytes:{device_class(share.device)}", read / bandwidth)
        _add(terms, "layers:gpu", share.layers)
    if placement.tensor_parallel:
        terms["tensor_parallel"] = 1.0
    host_layers = need.layers - placement.gpu_layers
    host_read = host_layers * per_layer + moved
    if not all_on_gpu:
        host_read += need.weights.head_bytes  # the head (the embedding matrix when tied) is read in RAM
    if host_read > 0:
        if not budget.host_bandwidth_bytes_per_s:
            return None
        terms["host_bytes"] = host_read
        terms["host_peak_bw"] = budget.host_bandwidth_bytes_per_s
        terms["host_cores"] = max(1, budget.cpu_cores)
        # A layer split crosses to the CPU once; --n-cpu-moe crosses (and syncs) in every such layer.
        _add(terms, "layers:cpu", placement.n_cpu_moe or (1 if placement.shares else 0))
    return terms


def decode_seconds(terms: dict[str, float], calibration: Calibration) -> float:
    seconds = 0.0
    for key, value in terms.items():
        if key.startswith("bytes:"):
            seconds += value / calibration.decode_efficiency(key[6:])
        elif key == "layers:gpu":
            seconds += value * calibration.gpu_layer_seconds
        elif key == "layers:cpu":
            seconds += value * calibration.cpu_layer_seconds
    if "tensor_parallel" in terms:
        seconds /= calibration.tensor_parallel_efficiency
    if "host_bytes" in terms:
        seconds += terms["host_bytes"] / calibration.host_bandwidth(terms["host_peak_bw"], terms["host_cores"])
    return seconds


def decode_tokens_per_s(
    need: Need, placement: Placement, arch: Architecture, kv_read_bytes: float, budget: Budget, calibration: Calibration
) -> float | None:
    """Tokens/s of one decode stream."""
    terms = decode_terms(need, placement, arch, kv_read_bytes, budget)
    if terms is None:
        return None
    seconds = decode_seconds(terms, calibration)
    return 1.0 / seconds if seconds > 0 else None


def prefill_flops_per_token(arch: Architecture, active_params: float, prompt_tokens: int, depth: int = 0) -> float:
    """2 FLOPs per active weight, plus attention (QK and PV) over the cached tokens and, on
    average, half the prompt (sliding layers over at most their window)."""
    full_layers = arch.layers - arch.local_attention_layers
    attended = depth + prompt_tokens / 2
    swa_depth = min(attended, arch.sliding_window or 0)
    if arch.uses_mla:
        qk_dim = arch.qk_nope_head_dim + arch.qk_rope_head_dim
        attn_dim = arch.attention_heads * (qk_dim + arch.v_head_dim)
    else:
        attn_dim = 2 * arch.attention_heads * arch.head_dim
    attention = 2 * attn_dim * (full_layers * attended + arch.local_attention_layers * swa_depth)
    return 2 * active_params + attention


def _touched_fraction(arch: Architecture, tokens: int) -> float:
    """Share of the routed experts a micro-batch of this many tokens reads (uniform routing)."""
    if not arch.experts:
        return 1.0
    return 1.0 - (1.0 - arch.experts_per_token / arch.experts) ** tokens


def matmul_flops(device: Device) -> float | None:
    """The tensor rate llama.cpp's prompt kernels can use. data/gpus.yaml quotes GeForce cards'
    FP16 with FP32 accumulate, which they run at half rate; llama.cpp multiplies F16 weights with
    FP16 accumulation and quantized ones with INT8 (MMQ), both at the full rate: twice the figure."""
    if not device.fp16_flops:
        return None
    if device.vendor == "nvidia" and device.kind == "consumer":
        return 2 * device.fp16_flops
    return device.fp16_flops


def _add_flops(terms: dict[str, float], cls: str, seconds_at_peak: float, expert_share: float) -> None:
    _add(terms, f"flops:{cls}", seconds_at_peak * (1 - expert_share))
    _add(terms, f"moe_flops:{cls}", seconds_at_peak * expert_share)


def prefill_terms(
    need: Need, placement: Placement, arch: Architecture, active_params: float, prompt_tokens: int,
    budget: Budget, calibration: Calibration, depth: int = 0, float_weights: bool = False,
) -> dict[str, float] | None:
    """What processing the prompt costs: ``flops:<class>`` — FLOPs ÷ the device's tensor rate
    (seconds at peak), priced at 1/efficiency; ``cpu_flops`` — FLOPs the CPU does, at a rate per
    core; ``seconds`` — fixed time for reading the weights once per micro-batch and uploading the
    RAM-resident ones. ``float`` marks F16/BF16 weights, whose matmuls (cuBLAS) run at another
    speed than the quantized kernels.

    Layers kept in RAM are multiplied on the GPU that holds the others (llama.cpp offloads
    large-batch matmuls and streams their weights over PCIe); a CPU-only placement computes on
    the CPU. A MoE model's routed-expert FLOPs are ``moe_flops:<class>``: each expert sees only
    a slice of the micro-batch (k/E of its tokens), so those GEMMs run less efficiently.
    """
    if placement.mode == "none" or prompt_tokens <= 0:
        return None
    flops = prefill_flops_per_token(arch, active_params, prompt_tokens, depth) * prompt_tokens
    expert_share = 2 * routed_active_parameter_count(arch) * prompt_tokens / flops if arch.experts else 0.0
    ubatches = math.ceil(prompt_tokens / calibration.n_ubatch)
    tokens_per_ubatch = min(prompt_tokens, calibration.n_ubatch)
    terms: dict[str, float] = {}
    if not placement.shares:
        terms["cpu_flops"] = flops
        terms["host_cores"] = max(1, budget.cpu_cores)
        return terms
    touched = _touched_fraction(arch, tokens_per_ubatch)
    per_layer_read = need.weights.per_layer_bytes - need.expert_bytes_per_layer * need.moe_layers / need.layers * (1 - touched)
    shares = placement.shares
    k = len(shares)
    if placement.tensor_parallel:
        shares = (min(shares, key=lambda s: matmul_flops(s.device) or 0),)
    fixed = 0.0
    for share in shares:
        device = share.device
        rate = matmul_flops(device)
        if not rate or not device.bandwidth_bytes_per_s:
            return None
        fraction = 1 / k if placement.tensor_parallel else share.layers / need.layers
        _add_flops(terms, device_class(device), flops * fraction / rate, expert_share)
        read = share.layers * per_layer_read / (k if placement.tensor_parallel else 1)
        fixed += ubatches * read / (device.bandwidth_bytes_per_s * calibration.decode_efficiency(device_class(device)))
    if placement.tensor_parallel:
        terms["tensor_parallel"] = 1.0
    if placement.gpu_layers < need.layers or placement.n_cpu_moe:
        fastest = max((s.device for s in placement.shares), key=lambda d: matmul_flops(d) or 0)
        host_layers = need.layers - placement.gpu_layers
        if placement.n_cpu_moe:
            host_layers = 0  # the layers are on the GPU already; only their experts stream
        _add_flops(terms, device_class(fastest), flops * host_layers / need.layers / matmul_flops(fastest), expert_share)
        streamed = placement.host_weights_bytes - need.weights.embedding_bytes
        fixed += streamed * ubatches / calibration.pcie_bytes_per_s
    _add(terms, "seconds", fixed)
    if float_weights:
        terms["float"] = 1.0
    return terms


def prefill_seconds(terms: dict[str, float], calibration: Calibration) -> float:
    if "cpu_flops" in terms:
        return terms["cpu_flops"] / (terms["host_cores"] * calibration.cpu_flops_per_core)
    seconds = 0.0
    for key, value in terms.items():
        if key.startswith("flops:"):
            seconds += value / calibration.prefill_efficiency(key[6:])
        elif key.startswith("moe_flops:"):
            seconds += value * calibration.prefill_moe_factor / calibration.prefill_efficiency(key[10:])
    if "float" in terms:
        seconds *= calibration.prefill_float_factor
    if "tensor_parallel" in terms:
        seconds /= calibration.tensor_parallel_efficiency
    return seconds + terms.get("seconds", 0.0)


def prefill_tokens_per_s(
    need: Need, placement: Placement, arch: Architecture, active_params: float, prompt_tokens: int,
    budget: Budget, calibration: Calibration, depth: int = 0, float_weights: bool = False,
) -> float | None:
    terms = prefill_terms(need, placement, arch, active_params, prompt_tokens, budget, calibration, depth, float_weights)
    if terms is None:
        return None
    seconds = prefill_seconds(terms, calibration)
    return prompt_tokens / seconds if seconds > 0 else None
