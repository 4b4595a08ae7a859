"""Where the tensors go: one GPU, several, part in host RAM, or the CPU alone.

Mirrors what llama.cpp does when it loads a model: whole repeating layers go to GPUs
(``-ngl``), split over several GPUs in proportion to their free memory (``-ts``), the rest
stays in host memory; a layer's KV cache lives with the layer. For MoE models it can instead
keep the routed experts of some layers in RAM (``--n-cpu-moe``) and everything else on the
GPU. The input embedding table always stays in host memory (llama.cpp runs the row lookup on
the CPU); the output head goes to a GPU only with every layer (``-ngl`` > n_layer). Every GPU
used holds a runtime reserve and a compute buffer (the one holding the head also the logits);
when layers stay on the CPU the host needs a compute buffer too.
"""

from __future__ import annotations

import math
from collections import namedtuple

from .budget import Device

# MemoryParts, DeviceShare and Placement are namedtuples, not frozen dataclasses: `recommend` builds one
# or more of each for every one of ~1,400 candidates, and a namedtuple costs a fraction of a
# frozen dataclass to build (whose __init__ sets each field through object.__setattr__), and to
# define when the module is imported.


class DeviceShare(
    namedtuple(
        "DeviceShare",
        (
            "device",  # budget.Device
            "layers",
            "weights_bytes",
            "kv_bytes",
            "overhead_bytes",
            "holds_head",
        ),
        defaults=(False,),
    )
):
    """What one GPU holds of a placed model."""

    __slots__ = ()

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.kv_bytes + self.overhead_bytes


class Placement(
    namedtuple(
        "Placement",
        (
            "mode",  # gpu | partial_offload | cpu | none
            "gpu_layers",
            "shares",  # a DeviceShare per GPU used
            "host_weights_bytes",  # weights in host RAM (embeddings, CPU layers, CPU experts)
            "host_kv_bytes",
            "host_overhead_bytes",
            "n_cpu_moe",  # layers whose routed experts stay in RAM
            "tensor_parallel",
        ),
        defaults=(0, False),
    )
):
    """Where a model's tensors go: the GPUs' shares and what stays in host RAM."""

    __slots__ = ()

    @property
    def host_bytes(self) -> int:
        return self.host_weights_bytes + self.host_kv_bytes + self.host_overhead_bytes

    def fits(self, host_available_bytes: int) -> bool:
        for share in self.shares:
            if share.total_bytes > share.device.free_bytes:
                return False
        return self.host_bytes <= host_available_bytes


NONE = Placement("none", 0, (), 0, 0, 0)


class MemoryParts(
    namedtuple(
        "MemoryParts",
        (
            "layers",
            "moe_layers",
            "weights",  # memory.WeightsSplit
            "kv",  # memory.KvLinear
            "cells",  # KV cells per layer: the context padded as llama.cpp pads it
            "kv_bytes",  # the KV cache at `cells`, kv.bytes(cells)
            "reserve_bytes",  # runtime reserve on every GPU used (CUDA context, cuBLAS workspace)
            "compute_gpu_bytes",  # compute buffer of a GPU without the output head
            "compute_head_bytes",  # compute buffer of the device that computes the logits
            "mask_bytes_per_cell",  # the part of each compute buffer that grows with the context
        ),
    )
):
    """The memory parts of one candidate, as placement needs them (a namedtuple too: one per candidate)."""

    __slots__ = ()

    @property
    def kv_per_layer(self) -> float:
        return self.kv_bytes / self.layers

    @property
    def overhead_per_gpu(self) -> int:
        """Reserve + compute buffer of a GPU that holds the head (the most any GPU needs)."""
        return self.reserve_bytes + self.compute_head_bytes

    @property
    def overhead_inner_gpu(self) -> int:
        return self.reserve_bytes + self.compute_gpu_bytes

    @property
    def compute_bytes(self) -> int:
        """The host's compute buffer when some layers (and the head) run on the CPU."""
        return self.compute_head_bytes

    @property
    def expert_bytes_per_layer(self) -> float:
        return self.weights.expert_bytes / self.moe_layers if self.moe_layers else 0.0

    def gpu_parts(self, n: int) -> tuple[int, int]:
        """(weights, kv) bytes that n offloaded layers put on the GPUs."""
        head = self.weights.head_bytes if n == self.layers else 0
        return int(n * self.weights.per_layer_bytes) + head, int(n * self.kv_per_layer)

    def host_parts(self, n: int) -> tuple[int, int]:
        """(weights, kv) bytes left in host RAM with n layers offloaded."""
        w = self.weights
        head = w.head_bytes - w.head_duplicate_bytes if n < self.layers else 0
        rest = self.layers - n
        return w.embedding_bytes + int(rest * w.per_layer_bytes) + head, int(rest * self.kv_per_layer)


def _proportional(n: int, capacities: list[float]) -> list[int]:
    """Whole layers in proportion to capacity, as llama.cpp's -ts does."""
    total = sum(capacities)
    if total <= 0 or n == 0:
        return [0] * len(capacities)
    counts = [math.floor(n * c / total) for c in capacities]
    order = sorted(range(len(capacities)), key=lambda i: -capacities[i])
    i = 0
    while sum(counts) < n:
        counts[order[i % len(order)]] += 1
        i += 1
    return counts


def layer_split(need: MemoryParts, devices: list[Device], n: int, mode: str) -> Placement:
    """n layers over the devices in proportion to free memory; the head with the last layers.

    llama.cpp offloads the last n layers; the device holding the last of them computes the
    logits (and holds the output head when every layer is offloaded).
    """
    caps = [max(0.0, d.free_bytes - need.overhead_per_gpu) for d in devices]
    counts = _proportional(n, caps)
    shares = []
    last = max((i for i, c in enumerate(counts) if c), default=-1)
    for i, (device, count) in enumerate(zip(devices, counts)):
        if not count:
            continue
        weights = int(count * need.weights.per_layer_bytes)
        head = i == last
        if head and n == need.layers:
            weights += need.weights.head_bytes
        overhead = need.overhead_per_gpu if head else need.overhead_inner_gpu
        shares.append(
            DeviceShare(
                device, count, weights, int(count * need.kv_per_layer), overhead, holds_head=head and n == need.layers
            )
        )
    host_w, host_kv = need.host_parts(n)
    return Placement(mode, n, tuple(shares), host_w, host_kv, need.compute_bytes if n < need.layers else 0)


def full_gpu(
    need: MemoryParts, devices: tuple[Device, ...], host_available: int, tensor_parallel: bool = False
) -> Placement | None:
    """Every layer on GPUs: one GPU if one holds it, else a layer split (or tensor parallel)."""
    if not devices:
        return None
    gpu_w, gpu_kv = need.gpu_parts(need.layers)
    host_w, _ = need.host_parts(need.layers)
    if tensor_parallel and len(devices) > 1:
        k = len(devices)
        shares = tuple(
            DeviceShare(d, need.layers, gpu_w // k, gpu_kv // k, need.overhead_per_gpu, holds_head=True)
            for d in devices
        )
        placed = Placement("gpu", need.layers, shares, host_w, 0, 0, tensor_parallel=True)
        return placed if placed.fits(host_available) else None
    ordered = sorted(devices, key=lambda d: -d.free_bytes)
    single = Placement(
        "gpu",
        need.layers,
        (DeviceShare(ordered[0], need.layers, gpu_w, gpu_kv, need.overhead_per_gpu, holds_head=True),),
        host_w,
        0,
        0,
    )
    if single.fits(host_available):
        return single
    if len(ordered) > 1:
        split = layer_split(need, ordered, need.layers, "gpu")
        if split.fits(host_available):
            return split
    return None


def _discrete(devices: tuple[Device, ...]) -> list[Device]:
    # A unified-memory GPU shares the host's RAM: offloading "to RAM" frees nothing there.
    return [d for d in sorted(devices, key=lambda d: -d.free_bytes) if not d.unified]


def partial_offload(need: MemoryParts, devices: tuple[Device, ...], host_available: int) -> Placement | None:
    """The most layers that fit on the GPUs, the rest in host RAM (llama.cpp -ngl N)."""
    gpus = _discrete(devices)
    if not gpus:
        return None
    capacity = sum(max(0.0, d.free_bytes - need.overhead_per_gpu) for d in gpus)
    per_layer = need.weights.per_layer_bytes + need.kv_per_layer
    n = min(need.layers - 1, int(capacity // per_layer)) if per_layer > 0 else 0
    while n > 0:
        placed = layer_split(need, gpus, n, "partial_offload")
        if all(s.total_bytes <= s.device.free_bytes for s in placed.shares):
            return placed if placed.host_bytes <= host_available else None
        n -= 1
    return None


def experts_in_ram(need: MemoryParts, device: Device, k: int) -> Placement:
    """Every layer on one GPU, the routed experts of k layers in RAM (llama.cpp --n-cpu-moe k)."""
    moved = int(k * need.expert_bytes_per_layer)
    gpu_w, gpu_kv = need.gpu_parts(need.layers)
    host_w, _ = need.host_parts(need.layers)
    share = DeviceShare(device, need.layers, gpu_w - moved, gpu_kv, need.overhead_per_gpu, holds_head=True)
    return Placement(
        "partial_offload" if k else "gpu",
        need.layers,
        (share,),
        host_w + moved,
        0,
        need.compute_gpu_bytes if k else 0,
        n_cpu_moe=k,
    )


def experts_offload(need: MemoryParts, devices: tuple[Device, ...], host_available: int) -> Placement | None:
    """MoE: the fewest layers' experts in RAM that let everything else fit on the largest GPU."""
    gpus = _discrete(devices)
    per_layer_experts = need.expert_bytes_per_layer
    if not gpus or not per_layer_experts:
        return None
    best = gpus[0]
    gpu_w, gpu_kv = need.gpu_parts(need.layers)
    over = gpu_w + gpu_kv + need.overhead_per_gpu - best.free_bytes
    k = max(1, math.ceil(over / per_layer_experts))
    if k > need.moe_layers:
        return None
    placed = experts_in_ram(need, best, k)
    return placed if placed.fits(host_available) else None


def cpu_only(need: MemoryParts, host_available: int) -> Placement | None:
    placed = Placement("cpu", 0, (), need.weights.total_bytes, need.kv_bytes, need.compute_bytes)
    return placed if placed.fits(host_available) else None


def forced_layers(need: MemoryParts, devices: tuple[Device, ...], n: int) -> Placement:
    """Exactly n layers on the GPUs (llama.cpp -ngl n), whether or not they fit."""
    n = max(0, min(n, need.layers))
    gpus = sorted(devices, key=lambda d: -d.free_bytes)
    if n == 0 or not gpus:
        return Placement("cpu", 0, (), need.weights.total_bytes, need.kv_bytes, need.compute_bytes)
    return layer_split(need, gpus, n, "gpu" if n == need.layers else "partial_offload")


def forced_experts(need: MemoryParts, devices: tuple[Device, ...], k: int) -> Placement:
    """Every layer on the largest GPU with the experts of k layers in RAM, whether or not it fits."""
    gpus = sorted(devices, key=lambda d: -d.free_bytes)
    if not gpus:
        return Placement("cpu", 0, (), need.weights.total_bytes, need.kv_bytes, need.compute_bytes)
    return experts_in_ram(need, gpus[0], max(0, min(k, need.moe_layers)))


def most_layers(need: MemoryParts, devices: tuple[Device, ...], host_available: int) -> int:
    """The largest -ngl split that loads (0 when not even one layer does)."""
    for n in range(need.layers, 0, -1):
        if forced_layers(need, devices, n).fits(host_available):
            return n
    return 0


def fewest_cpu_moe(need: MemoryParts, devices: tuple[Device, ...], host_available: int) -> int | None:
    """The smallest --n-cpu-moe that loads, or None when none does."""
    for k in range(need.moe_layers + 1):
        if forced_experts(need, devices, k).fits(host_available):
            return k
    return None
