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
