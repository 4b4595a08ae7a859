"""Quality score (seed 000 §4) and efficiency (§6)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..catalog.parse import BENCHMARKS

if TYPE_CHECKING:
    from ..catalog.types import Model

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


# ---------------------------------------------------------------- the default method


def scored(model, use_case: str, priors: Mapping[str, tuple[float, float]]) -> tuple[float, str]:
    """(Q_base, quality_source) for the default method: the use case's weighted benchmarks, each the
    model's own score, a documented stand-in's, or estimated from the model's size where the catalog
    has none; the source says which, worst first ("estimated from size: …", "stand-in: …",
    "benchmarks")."""
    total, estimated, stand_ins = 0.0, [], []
    size = math.log10(effective_params(model))
    for name, weight in DOMAIN_WEIGHTS[use_case].items():
        if not weight:
            continue
        if name in model.benchmarks:
            total += weight * model.benchmarks[name]
            if name in model.stand_ins:
                stand_ins.append(f"{name} from {model.stand_ins[name]}")
            continue
        intercept, slope = priors.get(name, (MISSING_BENCHMARK_SCORE, 0.0))
        total += weight * min(100.0, max(0.0, intercept + slope * size))
        estimated.append(name)
    if estimated:
        source = f"estimated from size: no {', '.join(estimated)} score"
        if len(estimated) == sum(1 for w in DOMAIN_WEIGHTS[use_case].values() if w):
            source = "estimated from size: no benchmark scores"
    elif stand_ins:
        source = "stand-in: " + "; ".join(stand_ins)
    else:
        source = "benchmarks"
    return total, source


def seed_source(model, use_case: str) -> str:
    """quality_source under --method seed, whose missing benchmarks count as 50 (§4.1)."""
    missing = [n for n, w in DOMAIN_WEIGHTS[use_case].items() if w and n not in model.benchmarks]
    if missing:
        return f"estimated: the seed's {MISSING_BENCHMARK_SCORE:g} for no {', '.join(missing)} score"
    stand_ins = [
        f"{n} from {model.stand_ins[n]}" for n, w in DOMAIN_WEIGHTS[use_case].items() if w and n in model.stand_ins
    ]
    return "stand-in: " + "; ".join(stand_ins) if stand_ins else "benchmarks"


def marker(source: str) -> str:
    """How human output marks a quality: ~ estimated, * a stand-in's score, nothing for benchmarks."""
    return "~" if source.startswith("estimated") else "*" if source.startswith("stand-in") else ""


def effective_params(model: Model) -> float:
    """What a model's scores scale with: its parameters, or for a mixture of experts the geometric
    mean of all and active ones (a 30B-A3B scores about like a 10B dense model)."""
    return (model.params_total * model.params_active) ** 0.5 if model.is_moe else float(model.params_total)


def benchmark_priors(models) -> dict[str, tuple[float, float]]:
    """Least-squares line of each benchmark's score on log10(effective parameters), over the models
    that publish their own score (stand-ins left out), lowered by the residual standard deviation:
    a missing score is estimated from size, cautiously."""
    import math

    priors = {}
    for bench in BENCHMARKS:
        points = [
            (math.log10(effective_params(m)), m.benchmarks[bench])
            for m in models
            if bench in m.benchmarks and bench not in m.stand_ins
        ]
        if len(points) < 3:
            continue
        mx = sum(x for x, _ in points) / len(points)
        my = sum(y for _, y in points) / len(points)
        sxx = sum((x - mx) ** 2 for x, _ in points)
        slope = sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0
        intercept = my - slope * mx
        spread = (sum((y - intercept - slope * x) ** 2 for x, y in points) / (len(points) - 2)) ** 0.5
        # One residual standard deviation below the line: a guess from size should not outrank a
        # measured score it only matches on average (the winner's curse of ranking noisy estimates).
        priors[bench] = (intercept - spread, slope)
    return priors
