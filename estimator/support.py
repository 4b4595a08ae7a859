"""Which GPUs can run a quantized checkpoint's kernels (issue 15): a pair that cannot is left out
of `plan`'s options and noted on an estimate, with the reason.

Rules from the runtimes' own requirements, by the GPU catalog's architecture (a GPU whose
architecture the catalog does not give is not judged):
- MLX runs on Apple silicon only (ml-explore/mlx).
- GPTQ and AWQ checkpoints run on CUDA and ROCm GPUs; vLLM's AWQ kernels need compute capability
  7.5 (Turing) or newer, its GPTQ kernels 7.0 (Volta), and no Apple or Intel runtime loads them.
  bitsandbytes NF4 runs on NVIDIA GPUs from Volta, not on AMD (vLLM's supported-hardware table,
  docs.vllm.ai/en/v0.9.2/features/quantization/supported_hardware.html).
- ExLlamaV2/V3 (EXL2/EXL3 at any bits per weight) run on CUDA and ROCm GPUs.
- NVFP4 (NVIDIA ModelOpt) runs on NVIDIA GPUs only: with FP4 tensor cores on Blackwell, weight-only
  through vLLM's Marlin kernels from Ampere on (its "no native FP4" warning; noted, not refused).
- FP8 weights run natively on compute capability 8.9 and newer (Ada Lovelace, Hopper, Blackwell)
  and on CDNA3 / RDNA4; vLLM runs them weight-only (FP8 Marlin) on Ampere, which is noted, not
  refused (docs.vllm.ai, "FP8 W8A8") — but not a mixture of experts: vLLM's fused-MoE kernels take
  FP8 only from compute capability 8.9 (Red Hat AI on neuralmagic/DeepSeek-Coder-V2-Instruct-FP8,
  discussion 1).
"""

from __future__ import annotations

from ..catalog.types import Quantization
from .budget import Device

_NVIDIA_BEFORE_VOLTA = ("Pascal", "Maxwell", "Kepler")
_NVIDIA_BEFORE_TURING = _NVIDIA_BEFORE_VOLTA + ("Volta",)
_NATIVE_FP8 = ("Ada Lovelace", "Hopper", "Blackwell", "CDNA3", "RDNA4")


def unsupported(quant: Quantization, device: Device, moe: bool = False) -> str | None:
    """Why this GPU cannot run this quantization's kernels (None: it can, or nothing says); `moe`:
    the model is a mixture of experts, whose fused kernels have their own limits."""
    arch = device.architecture
    if quant.format == "mlx" and device.vendor != "apple":
        return f"{quant.name} runs on Apple silicon only (MLX), not on {device.name}"
    if quant.format == "int":
        if device.vendor in ("apple", "intel"):
            return f"{quant.name} checkpoints run on CUDA and ROCm GPUs (vLLM, SGLang), not on {device.name}"
        nf4 = quant.base_type.startswith("NF4")
        if nf4 and device.vendor == "amd":
            return f"{quant.name} (bitsandbytes) runs on NVIDIA GPUs in vLLM, not on {device.name}"
        awq = quant.name.startswith("AWQ")
        oldest, floor = (_NVIDIA_BEFORE_TURING, "7.5") if awq else (_NVIDIA_BEFORE_VOLTA, "7.0")
        if device.vendor == "nvidia" and arch in oldest:
            return (
                f"{quant.name} kernels need an NVIDIA GPU of compute capability {floor} or newer; "
                f"{device.name} is {arch}"
            )
    if quant.format == "fp4":
        if device.vendor != "nvidia":
            return f"{quant.name} is NVIDIA's format (ModelOpt, vLLM on CUDA), not for {device.name}"
        if arch in _NVIDIA_BEFORE_TURING + ("Turing",):
            return f"{quant.name} needs an NVIDIA GPU of compute capability 8.0 or newer; {device.name} is {arch}"
    if quant.format == "exl" and device.vendor in ("apple", "intel"):
        return f"{quant.name} runs in ExLlamaV2/V3 (TabbyAPI) on CUDA and ROCm GPUs, not on {device.name}"
    if quant.format == "fp8":
        if device.vendor in ("apple", "intel"):
            return f"FP8 checkpoints run on CUDA and ROCm GPUs, not on {device.name}"
        if device.vendor == "nvidia" and arch in _NVIDIA_BEFORE_TURING + ("Turing",):
            return f"FP8 needs an NVIDIA GPU of compute capability 8.0 or newer (8.9 for native FP8); {device.name} is {arch}"
        if moe and device.vendor == "nvidia" and arch == "Ampere":
            return f"vLLM runs an FP8 mixture of experts from compute capability 8.9; {device.name} is Ampere"
    return None


def caveat(quant: Quantization, device: Device) -> str | None:
    """What runs, but not as fast as the estimate's bytes-read model assumes."""
    if quant.format == "fp8" and device.vendor == "nvidia" and device.architecture == "Ampere":
        return f"{device.name} (Ampere) has no FP8 tensor cores: vLLM runs FP8 weight-only (Marlin), prefill slower"
    if quant.format == "fp4" and device.vendor == "nvidia" and device.architecture not in (None, "Blackwell"):
        return (
            f"{device.name} ({device.architecture}) has no FP4 tensor cores: vLLM runs {quant.name} weight-only "
            "(Marlin), as 4-bit weights with 16-bit math"
        )
    if quant.format == "exl":
        return (
            f"{quant.name} loads in ExLlamaV2/V3 (TabbyAPI), not llama.cpp: its speed here is llama.cpp's decode of "
            "the same bytes (exllamav2's own table lands within 15 %); --runtime exllamav2 / exllamav3 prices "
            "ExLlama's own memory"
        )
    return None
