"""Intel discrete GPUs (Arc) through sysfs, where the kernel driver exposes local memory.

xe: device/tileN/physical_vram_size_bytes (summed over tiles); i915: cardN/lmem_total_bytes
(AlexsJones/llmfit PR #733). Neither driver exposes used memory to unprivileged readers
(debugfs vram_mm is root-only), so free is total minus an assumed reserve and says so.
Integrated GPUs share system RAM and are left to the CPU path.
"""

from __future__ import annotations

import re

from . import drm, gpu_bandwidth
from .document import BackendResult

MiB = 1 << 20
ASSUMED_RESERVE_BYTES = 512 * MiB  # (inferred) driver and display allocations on an idle card
_TILE = re.compile(r"tile\d+")


def probe(ctx, host: dict) -> BackendResult:
    result = BackendResult()
    if ctx.system != "Linux":
        return result
    for card in drm.cards(ctx, "0x8086"):
        d = card.device_dir
        tiles = [t for t in ctx.listdir(d) if _TILE.fullmatch(t)]
        sizes = [ctx.read_int(f"{d}/{t}/physical_vram_size_bytes") or 0 for t in tiles]
        total, source = sum(sizes), "sysfs xe tile*/physical_vram_size_bytes"
        available = None
        if not total:
            total = ctx.read_int(f"{drm.DRM}/{card.name}/lmem_total_bytes") or 0
            available = ctx.read_int(f"{drm.DRM}/{card.name}/lmem_avail_bytes")
            source = "sysfs i915 lmem_total_bytes"
        if not total:
            continue  # an integrated GPU: no local memory of its own
        spec = ctx.lookup_gpu(card.pci_id)
        bw, bw_source, bw_note = gpu_bandwidth.from_table(spec, card.pci_id)
        notes = [bw_note]
        if available is None:
            free = max(0, total - ASSUMED_RESERVE_BYTES)
            source += f"; free assumed = total − {ASSUMED_RESERVE_BYTES // MiB} MiB"
            notes.append("Intel drivers expose no unprivileged memory-usage counter: free memory is assumed, not read")
        else:
            free = min(available, total)
        result.gpus.append(
            {
                "index": len(result.gpus),
                "vendor": "intel",
                "name": spec.name if spec else f"Intel GPU {card.pci_id}",
                "uuid": None,
                "pci_id": card.pci_id,
                "pci_bus_id": card.pci_bus_id,
                "memory_total_bytes": total,
                "memory_free_bytes": free,
                "memory_used_bytes": total - free,
                "memory_source": source,
                "memory_bandwidth_bytes_per_s": bw,
                "bandwidth_source": bw_source,
                "compute_capability": None,
                "driver_version": None,
                "mig": None,
                "notes": notes,
            }
        )
    return result
