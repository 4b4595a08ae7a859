"""Quality score (seed 000 §4) and efficiency (§6)."""

from __future__ import annotations

import math
from collections.abc import Mapping

# §4.1: benchmark weights per use case (MMLU, HumanEval, GSM8K, BFCL).
DOMAIN_WEIGHTS: Mapping[str, Mapping[str, float]] = {
    "general": {"mmlu": 0.50, "humaneval": 0.25, "gsm8k": 0.25, "bfcl": 0.00},
    "code": {"mmlu": 0.20, "humaneval": 0.60, "gsm8k": 0.20, "bfcl": 0.00},
    "tool-calling": {"mmlu": 0.30, "humaneval": 0.20, "gsm8k": 0.00, "bfcl": 0.50},
    "math": {"mmlu": 0.30, "humaneval": 0.20, "gsm8k": 0.50, "bfcl": 0.00},
    "vision": {"mmlu": 0.50, "humaneval": 0.25, "gsm8k": 0.25, "bfcl": 0.00},
}
USE_CASES = tuple(DOMAIN_WEIGHTS)
MISSING_BENCHMARK_SCORE = 50.0  # §4.1: "Missing benchmarks are filled with a default score of 50"

QUALITY_NORM = 90.0  # §6: "max ~90 for top models"
SPEED_NORM = 150.0  # §6: "max ~150 tok/s"


def base_quality(benchmarks: Mapping[str, float], use_case: str) -> float:
    weights = DOMAIN_WEIGHTS[use_case]
    return sum(w * benchmarks.get(name, MISSING_BENCHMARK_SCORE) for name, w in weights.items())


def size_penalty(params: float) -> float:
    """§3.4: larger models tolerate quantization better."""
    billions = params / 1e9
    if billions < 10:
        return 0.85
    if billions < 30:
        return 0.92
    if billions <= 65:
        return 0.97
    return 1.00


def final_quality(benchmarks: Mapping[str, float], use_case: str, quality_factor: float, params: float) -> float:
    """§4.2: Q_final = Q_base × quality_factor × size_penalty."""
    return quantized(base_quality(benchmarks, use_case), quality_factor, params)


def quantized(base: float, quality_factor: float, params: float) -> float:
    """Q_final from a Q_base already worked out (a sweep scores each model's base once)."""
    return base * quality_factor * size_penalty(params)


def efficiency(quality: float, tokens_per_s: float | None, total_bytes: float) -> float | None:
    """§6: E = sqrt(Q_norm × P_norm) / VRAM(GB) × 100."""
    if tokens_per_s is None or total_bytes <= 0:
        return None
    q_norm = min(quality / QUALITY_NORM, 1.0)
    p_norm = min(tokens_per_s / SPEED_NORM, 1.0)
    return math.sqrt(max(q_norm, 0.0) * max(p_norm, 0.0)) / (total_bytes / 1e9) * 100
