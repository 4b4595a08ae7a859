"""Decode and prefill speed of a placed model.

Decode is memory-bound: each token reads the active weights (MoE: only the routed experts
and the shared ones) and the KV cache up to the current depth, from wherever they sit, at
that memory's effective bandwidth, plus a fixed cost per layer (kernel launches and
synchronisation, which dominate small models on fast GPUs), the logits read back over the GPU's
link to the host, and — behind a single-board computer's cores — the time the host takes to
drive each layer. Prefill is compute-bound: 2 FLOPs
per active parameter per token plus attention, at a share of the device's FLOPS; weights left
in RAM are streamed to the GPU once per micro-batch, and a micro-batch reads every expert it
touches.

Both are written as typed costs (``DecodeCost``, ``PrefillCost``): seconds at peak, or a count,
per device class, each priced by a calibrated constant — so the same costs serve the estimate and
the fit of the constants (estimator/fitting.py).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..catalog.types import Architecture
from .budget import ASSUMED_LINK_BYTES_PER_S, Budget, Device
from .calibration import Calibration
from .calibration import speed_range as calibration_speed_range
from .placement import MemoryParts, Placement
from .tensors import routed_active_parameter_count

_APPLE_GENERATION = re.compile(r"\bM(\d+)\b")


def device_class(device: Device) -> str:
    """The efficiency class of a GPU: its vendor, with HBM and unified memory told apart; an
    Apple chip by generation ("apple-m2": one memory controller design and GPU core per
    generation). A class the calibration lacks falls back to the shorter one ("apple")."""
    if device.vendor == "apple":
        generation = _APPLE_GENERATION.search(device.name)
        return f"apple-m{generation.group(1)}" if generation else "apple"
    if device.unified:
        return f"{device.vendor}-unified"
    if (device.memory_type or "").upper().startswith("HBM"):
        return f"{device.vendor}-hbm"
    return device.vendor


def layer_family(device: Device) -> str:
    """Which fixed time per layer a GPU pays: Apple's Metal runtime encodes and commits every
    kernel of a token from the CPU, at a fitted cost per layer about four times CUDA's; the rest
    (CUDA, ROCm, Vulkan) share one."""
    return "apple" if device.vendor == "apple" else "gpu"


def active_layer_bytes(need: MemoryParts, arch: Architecture) -> float:
    """Bytes one decode step reads from one average layer's weights."""
    experts = need.expert_bytes_per_layer * need.moe_layers / need.layers
    read = experts * arch.experts_per_token / arch.experts if arch.experts else 0.0
    return need.weights.per_layer_bytes - experts + read


def _add(table: dict[str, float], key: str, value: float) -> None:
    if value:
        table[key] = table.get(key, 0.0) + value


@dataclass(frozen=True)
class HostRead:
    """Decode work left in RAM: the bytes the CPU threads read per token, and what bounds their pace."""

    bytes: float
    peak_bytes_per_s: float
    cores: int
    arm: bool = False


@dataclass(frozen=True)
class DecodeCost:
    """One decode step, by what prices it. ``weight_s`` / ``kv_s``: per device class, the bytes a GPU
    reads ÷ its peak bandwidth (seconds at 100 %), priced at 1/efficiency (the KV read also × κ);
    ``layers``: per runtime family, the layers run there (× a time per layer); ``crossings``:
    GPU↔CPU crossings per token (× τ_cpu); ``host``: the work left in RAM; ``readback_s``: the
    logits (vocabulary × 4 bytes) over the host link at its nominal rate (÷ the link efficiency);
    ``dispatch_layers``: GPU layers an embedded-class host drives (× its time per layer)."""

    weight_s: Mapping[str, float] = field(default_factory=dict)
    kv_s: Mapping[str, float] = field(default_factory=dict)
    layers: Mapping[str, float] = field(default_factory=dict)
    crossings: float = 0.0
    host: HostRead | None = None
    readback_s: float = 0.0
    dispatch_layers: float = 0.0
    tensor_parallel: bool = False
    flash_attention: bool = True


@dataclass(frozen=True)
class PrefillCost:
    """One prompt, by what prices it, per device class: ``flops`` — dense FLOPs ÷ the tensor rate
    (seconds at peak), ``moe_flops`` — the routed experts' share (their GEMMs see k/E of a micro-batch's
    ``moe_tokens``), ``attention`` — the attention FLOPs (× the attention factor), ``scores`` — the
    softmax's scores, ``reads`` — the weights read once per micro-batch (seconds at peak bandwidth);
    ``pcie_bytes`` — RAM-resident weights uploaded; ``float_family`` — F16/BF16 weights, whose
    matmuls run at another speed; ``cpu_flops`` / ``cpu_cores`` — a CPU-only prompt."""

    flops: Mapping[str, float] = field(default_factory=dict)
    moe_flops: Mapping[str, float] = field(default_factory=dict)
    attention: Mapping[str, float] = field(default_factory=dict)
    scores: Mapping[str, float] = field(default_factory=dict)
    reads: Mapping[str, float] = field(default_factory=dict)
    pcie_bytes: float = 0.0
    moe_tokens: float | None = None
    float_family: str | None = None
    cpu_flops: float | None = None
    cpu_cores: int = 1
    cpu_arm: bool = False
    tensor_parallel: bool = False
    flash_attention: bool = True


def decode_terms(
    need: MemoryParts, placement: Placement, arch: Architecture, kv_read_bytes: float, budget: Budget
) -> DecodeCost | None:
    """What one decode step costs (None if a bandwidth is unknown).

    Layers on several GPUs run one after another (llama.cpp's layer split); tensor parallel
    runs them at once. Work left on the CPU is read from RAM at the host's pace; a layer split
    crosses to the CPU once per token, --n-cpu-moe in every layer whose experts stay in RAM.
    """
    if placement.mode == "none":
        return None
    weights_per_layer = active_layer_bytes(need, arch)
    kv_per_layer = kv_read_bytes / need.layers
    per_layer = weights_per_layer + kv_per_layer
    expert_fraction = arch.experts_per_token / arch.experts if arch.experts else 0.0
    moved = placement.n_cpu_moe * need.expert_bytes_per_layer * expert_fraction
    all_on_gpu = bool(placement.shares) and placement.gpu_layers == need.layers
    weight_s: dict[str, float] = {}
    kv_s: dict[str, float] = {}
    layers: dict[str, float] = {}
    shares = placement.shares
    if placement.tensor_parallel:
        shares = (min(shares, key=lambda s: s.device.bandwidth_bytes_per_s or 0),)  # the slowest sets the pace
    for i, share in enumerate(shares):
        read = share.layers * weights_per_layer + (need.weights.head_bytes if share.holds_head else 0)
        kv = share.layers * kv_per_layer
        if placement.tensor_parallel:
            read /= len(placement.shares)
            kv /= len(placement.shares)
        if i == 0:
            read -= moved  # --n-cpu-moe runs on one GPU
        bandwidth = share.device.bandwidth_bytes_per_s
        if not bandwidth:
            return None
        _add(weight_s, device_class(share.device), read / bandwidth)
        _add(kv_s, device_class(share.device), kv / bandwidth)
        _add(layers, layer_family(share.device), share.layers)
    host_layers = need.layers - placement.gpu_layers
    host_read = host_layers * per_layer + moved
    if not all_on_gpu:
        host_read += need.weights.head_bytes  # the head (the embedding matrix when tied) is read in RAM
    host = None
    crossings = 0.0
    if host_read > 0:
        if not budget.host_bandwidth_bytes_per_s:
            return None
        host = HostRead(
            host_read, budget.host_bandwidth_bytes_per_s, max(1, budget.cpu_cores), budget.cpu_arch == "arm"
        )
        crossings = float(placement.n_cpu_moe or (1 if placement.shares else 0))
    return DecodeCost(
        weight_s,
        kv_s,
        layers,
        crossings,
        host,
        readback_s=_logits_readback_seconds(placement, arch) if all_on_gpu else 0.0,
        dispatch_layers=float(placement.gpu_layers) if budget.cpu_class == "embedded" else 0.0,
        tensor_parallel=placement.tensor_parallel,
    )


def _logits_readback_seconds(placement: Placement, arch: Architecture) -> float:
    """Seconds, at the link's nominal rate, to copy one token's logits (f32) from the GPU holding
    the head to the host, which samples from them. Nothing crosses on memory shared with the CPU.
    A full-width link takes ~20 µs for a 128K vocabulary; a single-lane riser or a Raspberry Pi's
    PCIe Gen3 x1 takes half a millisecond (speed-critical for small models on fast GPUs)."""
    holder = next((s.device for s in placement.shares if s.holds_head), placement.shares[-1].device)
    if holder.unified:
        return 0.0
    return arch.vocab_size * 4 / (holder.link_bytes_per_s or ASSUMED_LINK_BYTES_PER_S)


def decode_seconds(cost: DecodeCost, calibration: Calibration) -> float:
    kv_factor = calibration.kv_read_factor if cost.flash_attention else calibration.kv_read_factor_nofa
    seconds = 0.0
    for cls, value in cost.weight_s.items():
        seconds += value / calibration.decode_efficiency(cls)
    for cls, value in cost.kv_s.items():
        seconds += value * kv_factor / calibration.decode_efficiency(cls)
    for family, count in cost.layers.items():
        seconds += count * calibration.layer_seconds(family)
    seconds += cost.crossings * calibration.cpu_layer_seconds
    if cost.tensor_parallel:
        seconds /= calibration.tensor_parallel_efficiency
    seconds += cost.readback_s / calibration.link_efficiency
    seconds += cost.dispatch_layers * calibration.embedded_host_layer_seconds
    if cost.host is not None:
        host = cost.host
        seconds += host.bytes / calibration.host_bandwidth(host.peak_bytes_per_s, host.cores, arm=host.arm)
    return seconds


def decode_tokens_per_s(
    need: MemoryParts,
    placement: Placement,
    arch: Architecture,
    kv_read_bytes: float,
    budget: Budget,
    calibration: Calibration,
) -> float | None:
    """Tokens/s of one decode stream."""
    terms = decode_terms(need, placement, arch, kv_read_bytes, budget)
    if terms is None:
        return None
    seconds = decode_seconds(terms, calibration)
    return 1.0 / seconds if seconds > 0 else None


def attention_flops_per_token(arch: Architecture, prompt_tokens: int, depth: int = 0) -> float:
    """Attention (QK and PV) of one prompt token over the cached tokens and, on average, half the
    prompt (sliding layers over at most their window).

    Latent attention (DeepSeek's MLA) runs absorbed in llama.cpp, for the prompt as for decode
    (deepseek2's graph multiplies q_nope by wk_b and attends in the latent space whenever the
    GGUF has the split wk_b/wv_b, as every conversion since mid-2025 does): each head's query
    and key are kv_lora_rank + rope wide and its value kv_lora_rank wide, shared across heads
    (MQA), and wv_b decompresses after. The QK and PV products therefore cost
    2 × heads × (2 × kv_lora_rank + rope) per position — 3.4× the decompressed
    2 × heads × (qk_nope + rope + v) for DeepSeek-V3's 512/64 vs 192/128."""
    full_layers = arch.layers - arch.local_attention_layers
    attended = depth + prompt_tokens / 2
    swa_depth = min(attended, arch.sliding_window or 0)
    if arch.uses_mla:
        assert arch.kv_lora_rank is not None and arch.qk_rope_head_dim is not None  # check_architecture
        attn_dim = arch.attention_heads * (2 * arch.kv_lora_rank + arch.qk_rope_head_dim)
    else:
        attn_dim = 2 * arch.attention_heads * arch.head_dim
    return 2 * attn_dim * (full_layers * attended + arch.local_attention_layers * swa_depth)


def attention_scores_per_token(arch: Architecture, prompt_tokens: int, depth: int = 0) -> float:
    """Attention scores (one per head and attended position, in every layer) of one prompt token:
    what the softmax works through — exponentials and running maxima on the vector units, whatever
    the head size, so a model with many narrow heads (gpt-oss: 64 of 64) pays more per FLOP of
    QK and PV than one with fewer wide ones."""
    full_layers = arch.layers - arch.local_attention_layers
    attended = depth + prompt_tokens / 2
    swa_depth = min(attended, arch.sliding_window or 0)
    return arch.attention_heads * (full_layers * attended + arch.local_attention_layers * swa_depth)


def prefill_flops_per_token(arch: Architecture, active_params: float, prompt_tokens: int, depth: int = 0) -> float:
    """2 FLOPs per active weight, plus attention (attention_flops_per_token)."""
    return 2 * active_params + attention_flops_per_token(arch, prompt_tokens, depth)


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


class _PrefillTables:
    """The per-class tables of a PrefillCost while it is being added up."""

    def __init__(self) -> None:
        self.flops: dict[str, float] = {}
        self.moe_flops: dict[str, float] = {}
        self.attention: dict[str, float] = {}
        self.scores: dict[str, float] = {}
        self.reads: dict[str, float] = {}

    def add_flops(
        self, cls: str, seconds_at_peak: float, expert_share: float, attention_share: float, scores_per_flop: float
    ) -> None:
        _add(self.flops, cls, seconds_at_peak * (1 - expert_share - attention_share))
        _add(self.moe_flops, cls, seconds_at_peak * expert_share)
        _add(self.attention, cls, seconds_at_peak * attention_share)
        _add(self.scores, cls, seconds_at_peak * scores_per_flop)


def prefill_terms(
    need: MemoryParts,
    placement: Placement,
    arch: Architecture,
    active_params: float,
    prompt_tokens: int,
    budget: Budget,
    calibration: Calibration,
    depth: int = 0,
    float_weights: bool = False,
) -> PrefillCost | None:
    """What processing the prompt costs (None when nothing runs it or a figure is unknown).

    Layers kept in RAM are multiplied on the GPU that holds the others (llama.cpp offloads
    large-batch matmuls and streams their weights over PCIe); a CPU-only placement computes on
    the CPU. A MoE model's routed-expert FLOPs are kept apart: each expert sees only a slice of
    the micro-batch (k/E of its tokens), so those GEMMs run less efficiently.
    """
    if placement.mode == "none" or prompt_tokens <= 0:
        return None
    flops = prefill_flops_per_token(arch, active_params, prompt_tokens, depth) * prompt_tokens
    expert_share = 2 * routed_active_parameter_count(arch) * prompt_tokens / flops if arch.experts else 0.0
    attention_share = attention_flops_per_token(arch, prompt_tokens, depth) * prompt_tokens / flops
    scores_per_flop = attention_scores_per_token(arch, prompt_tokens, depth) * prompt_tokens / flops
    ubatches = math.ceil(prompt_tokens / calibration.n_ubatch)
    tokens_per_ubatch = min(prompt_tokens, calibration.n_ubatch)
    if not placement.shares:
        return PrefillCost(cpu_flops=flops, cpu_cores=max(1, budget.cpu_cores), cpu_arm=budget.cpu_arch == "arm")
    tables = _PrefillTables()
    touched = _touched_fraction(arch, tokens_per_ubatch)
    # each routed expert multiplies only its share of the micro-batch: the smaller that GEMM,
    # the further below the dense rate it runs (calibration.prefill_moe_half_batch)
    moe_tokens = tokens_per_ubatch * arch.experts_per_token / arch.experts if arch.experts else None
    per_layer_read = need.weights.per_layer_bytes - need.expert_bytes_per_layer * need.moe_layers / need.layers * (
        1 - touched
    )
    shares = placement.shares
    k = len(shares)
    if placement.tensor_parallel:
        shares = (min(shares, key=lambda s: matmul_flops(s.device) or 0),)
    for share in shares:
        device = share.device
        rate = matmul_flops(device)
        if not rate or not device.bandwidth_bytes_per_s:
            return None
        fraction = 1 / k if placement.tensor_parallel else share.layers / need.layers
        tables.add_flops(device_class(device), flops * fraction / rate, expert_share, attention_share, scores_per_flop)
        read = share.layers * per_layer_read / (k if placement.tensor_parallel else 1)
        _add(tables.reads, device_class(device), ubatches * read / device.bandwidth_bytes_per_s)
    pcie_bytes = 0.0
    if placement.gpu_layers < need.layers or placement.n_cpu_moe:
        fastest = max((s.device for s in placement.shares), key=lambda d: matmul_flops(d) or 0)
        fastest_rate = matmul_flops(fastest) or 0.0
        host_layers = need.layers - placement.gpu_layers
        if placement.n_cpu_moe:
            host_layers = 0  # the layers are on the GPU already; only their experts stream
        tables.add_flops(
            device_class(fastest),
            flops * host_layers / need.layers / fastest_rate,
            expert_share,
            attention_share,
            scores_per_flop,
        )
        pcie_bytes = (placement.host_weights_bytes - need.weights.embedding_bytes) * ubatches
    return PrefillCost(
        flops=tables.flops,
        moe_flops=tables.moe_flops,
        attention=tables.attention,
        scores=tables.scores,
        reads=tables.reads,
        pcie_bytes=pcie_bytes,
        moe_tokens=moe_tokens,
        float_family=layer_family(placement.shares[0].device) if float_weights else None,
        tensor_parallel=placement.tensor_parallel,
    )


def prefill_fixed_seconds(cost: PrefillCost, calibration: Calibration) -> float:
    """The part of a prompt's time that is not compute: reading the weights once per micro-batch
    (at the device's decode efficiency) and uploading the RAM-resident ones over PCIe."""
    seconds = cost.pcie_bytes / calibration.pcie_bytes_per_s
    for cls, value in cost.reads.items():
        seconds += value / calibration.decode_efficiency(cls)
    return seconds


def prefill_seconds(cost: PrefillCost, calibration: Calibration) -> float:
    if cost.cpu_flops is not None:
        per_core = calibration.cpu_flops_per_core_arm if cost.cpu_arm else calibration.cpu_flops_per_core
        return cost.cpu_flops / (cost.cpu_cores * per_core)
    moe_factor = calibration.prefill_moe_factor * (
        1 + calibration.prefill_moe_half_batch / (cost.moe_tokens if cost.moe_tokens else math.inf)
    )
    seconds = attention = scores = 0.0
    for cls, value in cost.flops.items():
        seconds += value / calibration.prefill_efficiency(cls)
    for cls, value in cost.moe_flops.items():
        seconds += value * moe_factor / calibration.prefill_efficiency(cls)
    for cls, value in cost.attention.items():
        attention += value / calibration.prefill_efficiency(cls)
    if cost.flash_attention:
        for cls, value in cost.scores.items():
            scores += value * calibration.prefill_score_flops / calibration.prefill_efficiency(cls)
    if cost.float_family is not None:
        seconds *= calibration.float_factor(cost.float_family)
    factor = calibration.prefill_attention_factor if cost.flash_attention else calibration.prefill_attention_factor_nofa
    seconds += attention * factor + scores
    if cost.tensor_parallel:
        seconds /= calibration.tensor_parallel_efficiency
    return seconds + prefill_fixed_seconds(cost, calibration)


def prefill_tokens_per_s(
    need: MemoryParts,
    placement: Placement,
    arch: Architecture,
    active_params: float,
    prompt_tokens: int,
    budget: Budget,
    calibration: Calibration,
    depth: int = 0,
    float_weights: bool = False,
) -> float | None:
    terms = prefill_terms(
        need, placement, arch, active_params, prompt_tokens, budget, calibration, depth, float_weights
    )
    if terms is None:
        return None
    seconds = prefill_seconds(terms, calibration)
    return prompt_tokens / seconds if seconds > 0 else None


def kv_read_bytes_at(need: MemoryParts, arch: Architecture, depth: int) -> float:
    """KV bytes one decode step reads with `depth` tokens in the cache (sliding layers at most
    their window), from the candidate's KV coefficients (memory.kv_bytes_read_per_token's sum)."""
    return need.kv.full_per_cell * depth + need.kv.swa_per_cell * min(depth, arch.sliding_window or 0)


def speed_range(value: float | None, kind: str, placement: Placement) -> tuple[float, float] | None:
    """Where a decode or prefill speed likely lands: the value times the 10th and 90th percentiles
    of measured ÷ estimate over the leave-one-GPU-out predictions of its regime (GPUs only, or
    work on the CPU) and device class (calibration.SPEED_RANGES)."""
    if value is None or placement.mode == "none":
        return None
    host = placement.mode in ("cpu", "partial_offload") or bool(placement.n_cpu_moe)
    cls = device_class(placement.shares[0].device) if placement.shares else ""
    ratios = calibration_speed_range(f"{kind}-host" if host else kind, cls)
    if ratios is None:
        return None
    return value * ratios[0], value * ratios[1]
