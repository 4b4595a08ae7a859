"""The seed document's formulas, exactly as written (shared/seeds/000, §2, §5).

Kept reachable as ``--method seed`` and tested against the seed's worked examples.
Units follow the seed (GB = 10^9 bytes); callers convert to bytes.
"""

from __future__ import annotations

GB = 1e9
SEED_OVERHEAD_BYTES = 0.5 * GB  # §2.3: "CUDA kernels, driver allocations, and temporary tensors"
SEED_SAFE_HEADROOM_BYTES = 1.0 * GB  # §2.3: "safe" when headroom exceeds 1 GB
SEED_MOE_FACTOR = 0.90  # §5.4: 10 % routing overhead, all experts read
SEED_CPU_EFFICIENCY = 0.9  # seed 002: "Tokens / Second = RAM Bandwidth / Required Memory * 0.9"


def weights_bytes(params: float, bits_per_weight: float) -> float:
    """§2.1: V_weights = P × B / 8 (all experts for MoE)."""
    return params * bits_per_weight / 8


def kv_cache_bytes(layers: int, kv_heads: int, hidden_size: int, attention_heads: int, context: int) -> float:
    """§2.2: 2 × L × H_kv × D_head × C × 2 bytes, with D_head = H_dim / H_attn."""
    head_dim = hidden_size / attention_heads
    return 2 * layers * kv_heads * head_dim * context * 2


def total_bytes(weights: float, kv: float) -> float:
    """§2.3: V_total = V_weights + V_kv + 0.5 GB."""
    return weights + kv + SEED_OVERHEAD_BYTES


def decode_efficiency(bits_per_weight: float) -> float:
    """§5.3 table: ≥ 8 bits 0.75, 4–6 bits 0.70, < 4 bits 0.60."""
    if bits_per_weight >= 8:
        return 0.75
    if bits_per_weight >= 4:
        return 0.70
    return 0.60


def decode_tokens_per_s(
    bandwidth_bytes_per_s: float, weights: float, bits_per_weight: float, moe: bool = False
) -> float:
    """§5.3: T/s = BW / V_weights × η; §5.4: × 0.90 for MoE."""
    tps = bandwidth_bytes_per_s / weights * decode_efficiency(bits_per_weight)
    return tps * SEED_MOE_FACTOR if moe else tps


def cpu_decode_tokens_per_s(ram_bandwidth_bytes_per_s: float, required_bytes: float) -> float:
    """Seed 002: RAM bandwidth / required memory × 0.9."""
    return ram_bandwidth_bytes_per_s / required_bytes * SEED_CPU_EFFICIENCY
