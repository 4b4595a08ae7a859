"""Which GPUs can run a quantized checkpoint's kernels (issue 15): a pair that cannot is left out
of `plan`'s options and noted on an estimate, with the reason.

Rules from the runtimes' own requirements, by the GPU catalog's architecture (a GPU whose
architecture the catalog does not give is not judged):
- MLX runs on Apple silicon only (ml-explore/mlx).
- GPTQ and AWQ checkpoints run on CUDA and ROCm GPUs; vLLM's AWQ kernels need compute capability
  7.5 (Turing) or newer, and no Apple or Intel runtime loads them.
- ExLlamaV2/V3 (EXL2/EXL3 at any bits per weight) run on CUDA and ROCm GPUs.
- FP8 weights run natively on compute capability 8.9 and newer (Ada Lovelace, Hopper, Blackwell)
  and on CDNA3 / RDNA4; vLLM runs them weight-only (FP8 Marlin) on Ampere, which is noted, not
  refused (docs.vllm.ai, "FP8 W8A8").
"""

from __future__ import annotations

from ..catalog.types import Quantization
from .budget import Device

_NVIDIA_BEFORE_TURING = ("Pascal", "Volta", "Maxwell", "Kepler")
_NATIVE_FP8 = ("Ada Lovelace", "Hopper", "Blackwell", "CDNA3", "RDNA4")


def unsupported(quant: Quantization, device: Device) -> str | None:
    """Why this GPU cannot run this quantization's kernels (None: it can, or nothing says)."""
    arch = device.architecture
    if quant.format == "mlx" and device.vendor != "apple":
        return f"{quant.name} runs on Apple silicon only (MLX), not on {device.name}"
    if quant.format == "int":
        if device.vendor in ("apple", "intel"):
            return f"{quant.name} checkpoints run on CUDA and ROCm GPUs (vLLM, SGLang), not on {device.name}"
        if device.vendor == "nvidia" and arch in _NVIDIA_BEFORE_TURING:
            return (
                f"{quant.name} kernels need an NVIDIA GPU of compute capability 7.5 or newer; {device.name} is {arch}"
            )
    if quant.format == "exl" and device.vendor in ("apple", "intel"):
        return f"{quant.name} runs in ExLlamaV2/V3 (TabbyAPI) on CUDA and ROCm GPUs, not on {device.name}"
    if quant.format == "fp8":
        if device.vendor in ("apple", "intel"):
            return f"FP8 checkpoints run on CUDA and ROCm GPUs, not on {device.name}"
        if device.vendor == "nvidia" and arch in _NVIDIA_BEFORE_TURING + ("Turing",):
            return f"FP8 needs an NVIDIA GPU of compute capability 8.0 or newer (8.9 for native FP8); {device.name} is {arch}"
    return None


def caveat(quant: Quantization, device: Device) -> str | None:
    """What runs, but not as fast as the estimate's bytes-read model assumes."""
    if quant.format == "fp8" and device.vendor == "nvidia" and device.architecture == "Ampere":
        return f"{device.name} (Ampere) has no FP8 tensor cores: vLLM runs FP8 weight-only (Marlin), prefill slower"
    if quant.format == "exl":
        return (
            f"{quant.name} loads in ExLlamaV2/V3 (TabbyAPI), not llama.cpp: its speed here is llama.cpp's decode of "
            "the same bytes (no ExLlama runs fitted)"
        )
    return None
