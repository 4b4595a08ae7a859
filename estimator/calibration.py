"""Constants the default method fits to public measurements, each with where it comes from.

Kept apart from the formulas so the accuracy report (``python -m benchmarks.accuracy``)
can show what each was fitted to, and so a test can pass a different set. The speed model
(estimator/speed.py) is a sum of physical terms — bytes ÷ peak bandwidth, layers run, FLOPs ÷
peak FLOPS — each priced by one of these constants; `python -m benchmarks.accuracy --fit`
re-derives them from tests/data/measurements.csv.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

MiB = 1024 * 1024


@dataclass(frozen=True)
class Calibration:
    # Decode: seconds per token = Σ bytes read ÷ (peak bandwidth × efficiency) + layers × a fixed
    # time per layer, + the host's share. Fitted (weighted least squares on relative error,
    # `python -m benchmarks.accuracy --fit`) on the 107 full-GPU decode rows (dense and MoE) of
    # tests/data/measurements.csv (llama-bench tg runs, 2023-12 … 2026-05 builds, 26 GPUs):
    # residual median 5.4 %, max 54 % (M1 Max Q4_K_M, whose May-2024 Metal K-quant kernels were
    # compute-bound). Efficiency per device class (speed.device_class: vendor, "-hbm" for HBM
    # boards, "-unified" for iGPUs sharing system RAM; "apple"); rows per class: nvidia 52,
    # apple 22, nvidia-hbm 15, amd-unified 8, nvidia-unified 6 (GB10), amd 4. A class without rows
    # falls back to its vendor, then 0.5 ("intel": none measured; set to the AMD discrete figure).
    gpu_decode_efficiency: Mapping[str, float] = field(
        default_factory=lambda: {"nvidia": 0.865, "nvidia-hbm": 0.55, "apple": 0.72, "amd": 0.59,
                                 "amd-unified": 0.84, "nvidia-unified": 0.86, "intel": 0.59}
    )
    # Fixed time per layer and token on a GPU (kernel launches, synchronisation, the small
    # non-matmul kernels): fitted with the efficiencies above, one value for every GPU.
    gpu_layer_seconds: float = 60e-6
    # Host RAM: llama.cpp's CPU threads reach this share of the peak bandwidth when there are
    # enough of them, and at most cpu_core_bytes_per_s each (few cores cannot fill many
    # channels: 24 EPYC cores reach ~150 of 461 GB/s). With the GPU constants fixed, grid-searched
    # on the 7 decode rows that put work on the CPU (5 partial offload, 2 CPU-only): residual
    # median 5.1 %, max 22.5 %.
    cpu_decode_efficiency: float = 0.50
    cpu_core_bytes_per_s: float = 6e9
    # Each crossing between GPU and CPU in a token (a layer split once, --n-cpu-moe in every
    # such layer): activations over PCIe, a synchronisation, the CPU threads waking. Same fit.
    cpu_layer_seconds: float = 300e-6
    # Prefill: seconds = FLOPs ÷ (tensor rate × efficiency) (speed.matmul_flops: the catalog's
    # FP16 figure, doubled for GeForce, whose figure is FP32-accumulate) + fixed reads of the
    # weights per micro-batch. Fitted the same way (`--fit`) on the dense, quantized-weight GPU
    # prefill rows with a FLOPS figure (pp512 and friends; nvidia 39, nvidia-hbm 9, amd 4,
    # amd-unified 2); Apple and GB10 have no FLOPS in data/gpus.yaml, so their rows are not
    # estimated, and "apple"/"intel"/"nvidia-unified" borrow the nearest fitted class until they
    # are. All 85 GPU prefill rows after the three fits: residual median 15.7 %, max 132 %
    # (llama.cpp's May-2024 MMQ kernels reached a smaller share of the big Ada/Hopper boards' peak;
    # MoE prompts on a July-2025 ROCm nightly for Strix Halo ran at less than half the fitted rate).
    gpu_prefill_efficiency: Mapping[str, float] = field(
        default_factory=lambda: {"nvidia": 0.425, "nvidia-hbm": 0.31, "amd": 0.40, "amd-unified": 0.61,
                                 "nvidia-unified": 0.425, "apple": 0.40, "intel": 0.40}
    )
    # F16/BF16 weights multiply through cuBLAS/hipBLAS GEMMs, faster than the quantized (MMQ)
    # kernels: their compute time × this factor. Fitted on the 20 float-weight prefill rows.
    prefill_float_factor: float = 0.60
    # Routed-expert GEMMs see only k/E of the micro-batch each, so they run below the dense
    # rate: their compute time × this factor. Fitted on the 9 MoE prefill rows.
    prefill_moe_factor: float = 1.86
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

    def decode_efficiency(self, device_class: str) -> float:
        table = self.gpu_decode_efficiency
        return table.get(device_class) or table.get(device_class.split("-")[0]) or 0.5

    def prefill_efficiency(self, device_class: str) -> float:
        table = self.gpu_prefill_efficiency
        return table.get(device_class) or table.get(device_class.split("-")[0]) or 0.3

    def host_bandwidth(self, peak_bytes_per_s: float, cores: int) -> float:
        """The RAM bandwidth llama.cpp's CPU threads reach on this host."""
        return min(peak_bytes_per_s * self.cpu_decode_efficiency, cores * self.cpu_core_bytes_per_s)



DEFAULT_CALIBRATION = Calibration()
