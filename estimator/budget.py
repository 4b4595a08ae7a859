"""What a model can be placed on: the usable GPUs' free memory and the host's RAM.

Built from a hardware snapshot, with bandwidth and FLOPS the probe could not read filled
in from the GPU catalog (by PCI id, then by name).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

from ..catalog.errors import UsageError
from ..catalog.types import Catalog, GpuSpec
from .hardware import GpuSnapshot, HardwareSnapshot


@dataclass(frozen=True)
class Device:
    id: str
    name: str
    vendor: str
    free_bytes: int
    total_bytes: int
    bandwidth_bytes_per_s: float | None
    fp16_flops: float | None
    unified: bool = False
    memory_type: str | None = (
        None  # GDDR6X, HBM3, LPDDR5X, ... (the GPU catalog, else infer_memory): picks the efficiency class
    )
    kind: str | None = None  # consumer | workstation | datacenter | apple | apu (from the GPU catalog)
    architecture: str | None = None  # Ampere, Ada Lovelace, Hopper, CDNA3, Apple M3 … (the GPU catalog, when it says)
    link_bytes_per_s: float | None = None  # the host link's nominal rate per direction (pcie_link_bytes_per_s)


@dataclass(frozen=True)
class Budget:
    devices: tuple[Device, ...]
    host_available_bytes: int
    host_bandwidth_bytes_per_s: float | None
    cpu_cores: int
    host_bandwidth_assumed: bool = False  # the probe could not tell; ASSUMED_HOST_BANDWIDTH stands in
    cpu_arch: str | None = None  # "arm" cores each move less of the RAM bandwidth (calibration.host_bandwidth)
    cpu_class: str | None = None  # "embedded" cores take longer to drive each GPU layer (speed.decode_terms)

    @property
    def gpu_free_bytes(self) -> int:
        return sum(d.free_bytes for d in self.devices)

    @property
    def budget_bytes(self) -> int:
        """The memory a model should fit in: GPU memory if there is any, else RAM."""
        return self.gpu_free_bytes if self.devices else self.host_available_bytes


def spec_for(gpu: GpuSnapshot, catalog: Catalog) -> GpuSpec | None:
    """The catalog entry for a probed GPU: by PCI id, else by name (a MIG slice by its parent's)."""
    spec = catalog.gpu_by_pci_id(gpu.pci_id)
    if spec is not None:
        return spec
    name = cast(str, (gpu.mig or {}).get("parent_name") or gpu.name)  # the probe writes the parent's name
    try:
        return catalog.gpu(name)
    except UsageError:  # an unlisted or ambiguous name: no catalog facts for it
        return None


# What a GPU missing from the catalog is made of, from what the probe knows: its name and, for
# NVIDIA, its compute capability (every datacenter part with HBM has its own: P100 6.0, V100 7.0,
# A100/A30/A800 8.0, H100/H200/H800/H20/GH200 9.0, B200/B300/GB200 10.x; the SoCs with memory
# shared with their CPU too: Jetson TX2 6.2, Xavier 7.2, Orin 8.7, Thor 11.0, GB10 12.1).
# It picks the efficiency class (speed.device_class): an HBM board priced as a GDDR one comes
# out ~60 % too fast.
_NVIDIA_HBM_CC = {"6.0", "7.0", "8.0", "9.0", "10.0", "10.3"}
_NVIDIA_UNIFIED_CC = {"5.3", "6.2", "7.2", "8.7", "11.0", "12.1"}
_HBM_NAME = re.compile(
    r"\b(?:[AHPV]100|A800|A30|H20|H200|H800|GH200|G?B[123]00|Instinct|MI\d{2,3}[A-Z]*|"
    r"Data Center GPU Max)\b|HBM",
    re.IGNORECASE,
)
_UNIFIED_NAME = re.compile(
    r"\b(?:GB10|Jetson|Orin|Thor|Xavier)\b|Radeon\s*(?:\(TM\)\s*)?(?:Graphics\b|\d{3,4}[MS]\b)|"
    r"\bArc\S*\s+1[34]0[VT]\b|\bIris\b|\bUHD Graphics\b",
    re.IGNORECASE,
)


def infer_memory(vendor: str, name: str, compute_capability: str | None) -> tuple[str | None, bool]:
    """(memory type, unified) of a GPU the catalog lacks: "HBM" for datacenter boards, unified
    for SoCs and iGPUs, None (a discrete GDDR board) otherwise."""
    if vendor == "nvidia" and compute_capability:
        if compute_capability in _NVIDIA_HBM_CC:
            return "HBM", False
        if compute_capability in _NVIDIA_UNIFIED_CC:
            return None, True
    if _HBM_NAME.search(name or ""):
        return "HBM", False
    if vendor != "apple" and _UNIFIED_NAME.search(name or ""):
        return None, True
    return None, False


# PCIe bytes per second per lane and direction, by generation: 2.5 and 5 GT/s with 8b/10b encoding,
# 8, 16 and 32 GT/s with 128b/130b, 64 GT/s with FLIT (242 of 256 bytes) (hardware-notes §1.5).
PCIE_LANE_BYTES_PER_S = {1: 0.25e9, 2: 0.5e9, 3: 0.985e9, 4: 1.969e9, 5: 3.938e9, 6: 7.563e9}


def pcie_link_bytes_per_s(pcie: Mapping[str, object] | None) -> float | None:
    """The nominal rate per direction of a GPU's link to the host, from the probe's PCIe facts: the
    *max* generation and width the device and slot negotiate (the current ones drop at idle).
    None when the probe could not read them."""
    if not pcie:
        return None
    generation, width = pcie.get("max_generation"), pcie.get("max_width")
    if not isinstance(generation, int) or not isinstance(width, int) or width <= 0:
        return None
    lane = PCIE_LANE_BYTES_PER_S.get(generation)
    return lane * width if lane else None


# When the probe cannot read the link (no NVML, another vendor): PCIe 4.0 x16, a desktop slot.
ASSUMED_LINK_BYTES_PER_S = 16 * PCIE_LANE_BYTES_PER_S[4]


def _device_from_gpu(gpu: GpuSnapshot, catalog: Catalog) -> Device:
    spec = spec_for(gpu, catalog)
    bandwidth: float | None = gpu.memory_bandwidth_bytes_per_s or (spec.memory_bandwidth_bytes_per_s if spec else None)
    flops = spec.fp16_flops if spec else None
    if gpu.mig and gpu.mig.get("role") == "instance" and spec is not None:
        # A MIG slice gets a share of the parent's memory system and SMs, roughly its memory share.
        share = min(1.0, gpu.memory_total_bytes / spec.memory_bytes)
        if not gpu.memory_bandwidth_bytes_per_s:
            bandwidth = spec.memory_bandwidth_bytes_per_s * share
        flops = flops * share if flops else None
    inferred_memory, inferred_unified = (
        (None, False) if spec else infer_memory(gpu.vendor, gpu.name, gpu.compute_capability)
    )
    return Device(
        id=gpu.uuid or f"{gpu.vendor}:{gpu.index}",
        name=gpu.name,
        vendor=gpu.vendor,
        free_bytes=max(0, gpu.memory_free_bytes),
        total_bytes=gpu.memory_total_bytes,
        bandwidth_bytes_per_s=float(bandwidth) if bandwidth else None,
        fp16_flops=flops,
        unified=bool(gpu.unified_memory or (spec.unified_memory if spec else inferred_unified)),
        memory_type=spec.memory_type if spec else inferred_memory,
        kind=spec.kind if spec else None,
        architecture=spec.architecture if spec else None,
        link_bytes_per_s=pcie_link_bytes_per_s(gpu.pcie),
    )


# When nothing tells the host's RAM bandwidth: dual-channel DDR4-3200, 3200 MT/s × 8 bytes × 2
# channels (hardware-notes §3; llmfit's former fallback). Offload estimates say they assumed it.
ASSUMED_HOST_BANDWIDTH = 51.2e9


def budget_from_snapshot(snapshot: HardwareSnapshot, catalog: Catalog) -> Budget:
    devices = tuple(_device_from_gpu(g, catalog) for g in snapshot.usable_gpus)
    host = snapshot.host
    available = host.memory_available_bytes
    if host.memory_limit_bytes:
        available = min(available, host.memory_limit_bytes)
    known = host.memory_bandwidth_bytes_per_s
    return Budget(
        devices=devices,
        host_available_bytes=available,
        host_bandwidth_bytes_per_s=float(known) if known else ASSUMED_HOST_BANDWIDTH,
        cpu_cores=host.cpu_cores,
        host_bandwidth_assumed=not known,
        cpu_arch=host.cpu_arch,
        cpu_class=host.cpu_class,
    )


def device_from_spec(spec: GpuSpec, index: int = 0) -> Device:
    """A catalog GPU with all of its memory free (what `--gpu NAME` means)."""
    return Device(
        id=f"spec:{index}:{spec.name}",
        name=spec.name,
        vendor=spec.vendor,
        free_bytes=spec.memory_bytes,
        total_bytes=spec.memory_bytes,
        bandwidth_bytes_per_s=float(spec.memory_bandwidth_bytes_per_s),
        fp16_flops=spec.fp16_flops,
        unified=spec.unified_memory,
        memory_type=spec.memory_type,
        kind=spec.kind,
        architecture=spec.architecture,
    )
