"""MLX on Apple silicon (issue 15): the same physics as llama.cpp's Metal decode — bytes read at a
share of the bandwidth, a fixed time per layer — with MLX's own two constants.

MLX runs MLX-4BIT / MLX-8BIT checkpoints (estimator weights by their layout) entirely in unified
memory, one stream, with no CPU offload. Against mlx_lm's public runs (tests/data/mlx_measurements.csv)
llama.cpp's Apple constants put small models 13–38 % too slow: MLX's graph takes less time per
layer than llama.cpp's Metal encoder. So an MLX estimate is llama.cpp's cost with the Apple
classes' efficiencies × `bandwidth_factor` and `layer_seconds` in place of Metal's time per layer,
both fitted by benchmarks/mlx_accuracy.py (docs/accuracy.md, "MLX").
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..catalog.errors import UsageError
from ..catalog.types import Quantization
from .budget import Budget
from .calibration import DEFAULT_CALIBRATION, MLX_FITTED, Calibration
from .candidates import best_checkpoint


@dataclass(frozen=True)
class MlxConstants:
    bandwidth_factor: float = 1.0  # × each Apple class's llama.cpp decode efficiency
    layer_seconds: float = 190e-6  # MLX's time per layer and token, in place of Metal's


DEFAULT_MLX = MlxConstants(**MLX_FITTED)


def mlx_calibration(base: Calibration = DEFAULT_CALIBRATION, constants: MlxConstants = DEFAULT_MLX) -> Calibration:
    """llama.cpp's calibration with MLX's constants for Apple GPUs."""
    efficiency = {
        k: v * constants.bandwidth_factor if k.startswith("apple") else v for k, v in base.gpu_decode_efficiency.items()
    }
    layers = {**base.layer_seconds_by_class, "apple": constants.layer_seconds or 1e-12}  # 0 would fall back
    return replace(base, gpu_decode_efficiency=efficiency, layer_seconds_by_class=layers)


def check_mlx(quant: Quantization, budget: Budget) -> None:
    """MLX loads MLX checkpoints on Apple silicon only; say so in one line otherwise."""
    if quant.format != "mlx":
        raise UsageError(f"--runtime mlx loads MLX checkpoints (MLX-4BIT, MLX-8BIT); {quant.name} is not one")
    if not budget.devices or budget.devices[0].vendor != "apple":
        where = budget.devices[0].name if budget.devices else "no GPU"
        raise UsageError(f"--runtime mlx runs on Apple silicon only, not on {where} (use --gpu 'Apple M4 Max' to ask)")


MLX_FORMATS = ("MLX-8BIT", "MLX-4BIT")
MIN_TOKENS_PER_S = 5.0


def rank_models(catalog, budget: Budget, options, models=None) -> tuple:
    """Each catalog model's best MLX checkpoint on this Apple chip: of MLX-8BIT and MLX-4BIT, those
    that fit whole and decode at 5 tokens/s or more; the best quality (the faster within 0.1 point);
    then the models by quality, then speed. The estimates carry MLX's constants."""
    from .estimate import estimate

    check_mlx(catalog.quant(MLX_FORMATS[0]), budget)
    options = replace(options, calibration=mlx_calibration(options.calibration))
    picks = []
    for model in models if models is not None else catalog.models:
        if options.use_case == "vision" and model.modality != "vision":
            continue
        if options.context > model.max_context:
            continue
        offered = []
        for name in MLX_FORMATS:
            e = estimate(model, catalog.quant(name), budget, catalog, options)
            if e.fits and e.loads and e.placement == "gpu" and (e.decode_tokens_per_s or 0) >= MIN_TOKENS_PER_S:
                offered.append(e)
        if offered:
            picks.append(best_checkpoint(offered, lambda e: e.decode_tokens_per_s or 0.0))
    return tuple(sorted(picks, key=lambda e: (-e.quality, -(e.decode_tokens_per_s or 0), e.model)))
