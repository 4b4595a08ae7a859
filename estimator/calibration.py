"""Constants the default method fits to public measurements, each with where it comes from.

Kept apart from the formulas so the accuracy report (``python -m benchmarks.accuracy``)
can show what each was fitted to, and so a test can pass a different set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

MiB = 1024 * 1024


@dataclass(frozen=True)
class Calibration:
    # Share of peak memory bandwidth that llama.cpp's decode reaches, per GPU vendor.
    # Provisional values; the accuracy issue replaces them with a fit to tests/data/measurements.csv.
    gpu_decode_efficiency: Mapping[str, float] = field(
        default_factory=lambda: {"nvidia": 0.75, "amd": 0.60, "apple": 0.65, "intel": 0.50}
    )
    cpu_decode_efficiency: float = 0.60
    # Share of dense FP16 tensor FLOPS that prompt processing reaches (prefill is compute-bound).
    gpu_prefill_efficiency: Mapping[str, float] = field(
        default_factory=lambda: {"nvidia": 0.45, "amd": 0.30, "apple": 0.50, "intel": 0.30}
    )
    # CPU matmul throughput per core for prefill (FLOP/s): AVX2/AVX-512 FMA at ~3 GHz reaches
    # 50–100 GFLOP/s a core in llama.cpp's quantized kernels; provisional.
    cpu_flops_per_core: float = 60e9
    # Memory a GPU loses to the runtime before any tensor: CUDA context, cuBLAS workspace.
    # Ollama reserves 457 MiB per GPU for it (peers.md, "Ollama lets llama.cpp fit").
    runtime_reserve_bytes: int = 457 * MiB
    # Micro-batch llama.cpp processes at once (-ub default 512): sizes the compute buffer.
    n_ubatch: int = 512
    # Host-to-GPU copy rate for weights left in RAM, which llama.cpp streams to the GPU for
    # every prompt micro-batch: PCIe 4.0 x16 moves 31.5 GB/s per direction (hardware-notes
    # §1.5); about 80 % of it is reached.
    pcie_bytes_per_s: float = 25e9
    # Tensor-parallel scaling efficiency across GPUs (seed 002: "saturates at 80-90%").
    tensor_parallel_efficiency: float = 0.85


DEFAULT_CALIBRATION = Calibration()
